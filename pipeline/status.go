package pipeline

import "time"

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
