package pipeline

import (
	"slices"
	"time"

	"github.com/butler-sre/butler/pipeline/health"
	"github.com/butler-sre/butler/pipeline/state"
)

// Status is what `butler status` shows. It is read from the state directory
// only: no network, no lock, so it works while a sync runs.
type Status struct {
	Now      time.Time
	StateDir string
	LastRun  time.Time // start of the last recorded run; zero when none
	// Running is set while a sync holds the lock.
	Running bool
	// ExpectedInterval is the median interval between runs, once six are known.
	ExpectedInterval time.Duration
	// ConfigFetched is nil unless the configuration is a URL; false when the last
	// run had to use the kept copy.
	ConfigFetched *bool
	Managers      []ManagerStatus // sorted by name
}

// ManagerStatus is one row of `butler status`.
type ManagerStatus struct {
	Name   string
	Health health.Level
	Reason string
	Since  time.Time // since when the health has been what it is; zero if not known

	LastFetch    time.Time // last successful fetch of every file; zero if never
	LastChange   time.Time // last applied change; zero if never
	LastReload   time.Time // last reload attempt; zero if never
	Reloaded     bool      // ReloadStatus is known
	ReloadStatus int
	LKG          time.Time // last-known-good stored; zero if never

	Events []state.Event // newest first
}

// Worst returns the worst health of the managers (UNKNOWN when there are none).
func (s *Status) Worst() health.Level {
	levels := make([]health.Level, len(s.Managers))
	for i, m := range s.Managers {
		levels[i] = m.Health
	}
	return health.Worst(levels...)
}

// ReadStatus reads the state directory and judges every manager's health at now.
// It changes nothing and takes no lock. match selects managers by name (nil: all).
func ReadStatus(stateDir string, now time.Time, match func(string) bool) (*Status, error) {
	st, err := state.Read(stateDir)
	if err != nil || st == nil {
		return &Status{Now: now, StateDir: stateDir}, err
	}
	s := &Status{Now: now, StateDir: stateDir, ConfigFetched: st.ConfigFetched}
	if n := len(st.RunStarts); n > 0 {
		s.LastRun = st.RunStarts[n-1]
	}
	s.ExpectedInterval, _ = health.ExpectedInterval(st.RunStarts)
	marker, running := state.ReadMarker(stateDir)
	s.Running = running
	stuck := running && marker.Timeout > 0 && now.Sub(marker.Start) > marker.Timeout

	names := make([]string, 0, len(st.Managers))
	for name := range st.Managers {
		if match == nil || match(name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		ms := st.Managers[name]
		h := health.Evaluate(health.Input{
			Now: now, FirstRun: st.FirstRun, RunStarts: st.RunStarts, StartupGrace: st.StartupGrace,
			Windows: ms.Windows, Stuck: stuck, StuckSince: marker.Start, Manager: ms.Facts(),
			ConfigStale: st.ConfigStale(),
		})
		row := ManagerStatus{
			Name: name, Health: h.Level, Reason: h.Reason,
			LastFetch: ms.LastFetchOK(), LastChange: ms.LastChange, LastReload: ms.ReloadTime,
			Reloaded: ms.Reloaded, ReloadStatus: ms.ReloadStatus, LKG: ms.LKGTime,
		}
		if h.Level == ms.Health {
			row.Since = ms.HealthSince
		}
		for i := len(ms.Events) - 1; i >= 0; i-- {
			row.Events = append(row.Events, ms.Events[i])
		}
		s.Managers = append(s.Managers, row)
	}
	return s, nil
}
