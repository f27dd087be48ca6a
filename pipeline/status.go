package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"
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
	Health Level
	Reason string
	Since  time.Time // since when the health has been what it is; zero if not known

	LastFetch    time.Time // last successful fetch of every file; zero if never
	LastChange   time.Time // last applied change; zero if never
	LastReload   time.Time // last reload attempt; zero if never
	Reloaded     bool      // ReloadStatus is known
	ReloadStatus int
	LKG          time.Time // last-known-good stored; zero if never

	Events []Event // newest first
}

// Worst returns the worst health of the managers (UNKNOWN when there are none).
func (s *Status) Worst() Level {
	levels := make([]Level, len(s.Managers))
	for i, m := range s.Managers {
		levels[i] = m.Health
	}
	return Worst(levels...)
}

// runMarker is written to the state directory while a sync runs, so that status
// can tell a running sync, and a stuck one, without taking the lock.
type runMarker struct {
	PID     int           `json:"pid"`
	Start   time.Time     `json:"start"`
	Timeout time.Duration `json:"timeout"`
}

const runMarkerName = "running.json"

// writeRunMarker records the running sync; removeRunMarker clears it.
func (d *StateDir) writeRunMarker(start time.Time, timeout time.Duration) error {
	data, err := json.Marshal(runMarker{PID: os.Getpid(), Start: start, Timeout: timeout})
	if err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(d.Path, runMarkerName), data, 0o600)
}

func (d *StateDir) removeRunMarker() {
	_ = os.Remove(filepath.Join(d.Path, runMarkerName))
}

// readRunMarker returns the marker of a sync that is running now: its process is
// alive. A marker left by a killed run is ignored.
func readRunMarker(stateDir string) (runMarker, bool) {
	var m runMarker
	data, err := os.ReadFile(filepath.Join(stateDir, runMarkerName))
	if err != nil || json.Unmarshal(data, &m) != nil || m.PID <= 0 {
		return m, false
	}
	if err := syscall.Kill(m.PID, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return m, false
	}
	return m, true
}

// ReadStatus reads the state directory and judges every manager's health at now.
// It changes nothing and takes no lock. match selects managers by name (nil: all).
func ReadStatus(stateDir string, now time.Time, match func(string) bool) (*Status, error) {
	p := filepath.Join(stateDir, stateFileName)
	data, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return &Status{Now: now, StateDir: stateDir}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state file %s: %w", p, err)
	}
	st := NewState()
	if err := json.Unmarshal(data, st); err != nil {
		return nil, fmt.Errorf("state file %s is unreadable: %w (the next sync moves it aside)", p, err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("state file %s has version %d, this butler reads version %d", p, st.Version, stateVersion)
	}
	s := &Status{Now: now, StateDir: stateDir, ConfigFetched: st.ConfigFetched}
	if n := len(st.RunStarts); n > 0 {
		s.LastRun = st.RunStarts[n-1]
	}
	s.ExpectedInterval, _ = ExpectedInterval(st.RunStarts)
	marker, running := readRunMarker(stateDir)
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
		h := EvaluateHealth(HealthInput{
			Now: now, FirstRun: st.FirstRun, RunStarts: st.RunStarts, StartupGrace: st.StartupGrace,
			Windows: ms.Windows, Stuck: stuck, StuckSince: marker.Start, Manager: ms,
			ConfigStale: st.ConfigFetched != nil && !*st.ConfigFetched,
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
