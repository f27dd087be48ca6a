package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/gofrs/flock"
)

// ErrLocked is returned when another butler run holds the state directory's lock.
var ErrLocked = errors.New("another butler run holds the lock")

// stateVersion is the version of state.json this code reads and writes.
const stateVersion = 1

const (
	stateFileName = "state.json"
	lockFileName  = "lock"
	lkgDirName    = "lkg"
	tmpDirName    = "tmp"
	// crashWritingDir holds the marks of MarkWriting.
	crashWritingDir = "writing"
)

// State is what butler keeps between runs: the values behind every metric series,
// the counters, and what it needs to decide the next run (what was applied, what
// was refused, whether a reload is owed).
type State struct {
	Version int `json:"version"`
	// Run is the last completed run; zero before the first.
	Run RunState `json:"run"`
	// Managers holds one entry per configured manager, by name.
	Managers map[string]*ManagerState `json:"managers"`

	// StartupGrace is [health] startup_grace as of the last run, so that status
	// can judge health from the state directory alone.
	StartupGrace time.Duration `json:"startup_grace"`

	// FirstRun is the start of the first run recorded; RunStarts the starts of
	// the recent runs, oldest first, for the "auto" health windows.
	FirstRun  time.Time   `json:"first_run"`
	RunStarts []time.Time `json:"run_starts,omitempty"`

	// Notify holds health changes not yet delivered and the failure counters.
	Notify NotifyState `json:"notify"`

	// ConfigFetched is set when the configuration is a URL: whether this run
	// fetched a valid one (false: the kept copy was used).
	ConfigFetched *bool `json:"config_fetched,omitempty"`
}

// NotifyState is what the notifications keep between runs.
type NotifyState struct {
	// Pending holds, by channel, the changes that channel has not delivered.
	Pending  map[string][]HealthChange `json:"pending,omitempty"`
	Failures map[string]int64          `json:"failures,omitempty"` // by channel
}

// HealthChange is a manager's move from one health to another.
type HealthChange struct {
	Time    time.Time `json:"time"`
	Manager string    `json:"manager"`
	From    Level     `json:"from"`
	To      Level     `json:"to"`
	Reason  string    `json:"reason"`
}

// Event is one entry of a manager's history.
type Event struct {
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"` // health, applied, reload, lkg-restore, fetch-failing, fetch-recovered
	Message string    `json:"message"`
	Files   []string  `json:"files,omitempty"`
}

// RunState describes the last run.
type RunState struct {
	Start       time.Time     `json:"start"`
	Duration    time.Duration `json:"duration"`
	Success     bool          `json:"success"`
	LastSuccess time.Time     `json:"last_success"` // end of the last run with every manager in step
}

// ManagerState is what butler knows of one manager.
type ManagerState struct {
	Ran    bool `json:"ran"` // a run of this manager is recorded
	InStep bool `json:"in_step"`
	// Phase and Error describe the last failure; empty when in step.
	Phase string `json:"phase,omitempty"`
	Error string `json:"error,omitempty"`

	Files map[string]*FileState `json:"files"`

	// Reloaded is set once a reload status is known; ReloadStatus is only
	// meaningful then. ReloadTime is the last attempt, successful or not.
	Reloaded     bool      `json:"reloaded"`
	ReloadStatus int       `json:"reload_status"`
	ReloadTime   time.Time `json:"reload_time"`
	LKGTime      time.Time `json:"lkg_time"`

	// Applied is the hash of the content last applied and accepted; Refused the
	// hash of content whose reload was refused (not applied again until it
	// changes or --force); PendingReload is set when a reload timed out and
	// must be tried again next run.
	Applied       string `json:"applied,omitempty"`
	Refused       string `json:"refused,omitempty"`
	PendingReload bool   `json:"pending_reload,omitempty"`

	// ReloadTimedOut is set when the last reload got no response.
	ReloadTimedOut bool `json:"reload_timed_out,omitempty"`
	// FetchFailingSince is the start of the current run of failed fetches.
	FetchFailingSince time.Time `json:"fetch_failing_since"`
	// LastChange is when a change was last applied.
	LastChange time.Time `json:"last_change"`

	// Windows are the manager's configured health windows (0 = auto) as of
	// the last run.
	Windows Windows `json:"windows"`

	// Health as of the last run, and since when it has been so.
	Health       Level     `json:"health"`
	HealthReason string    `json:"health_reason,omitempty"`
	HealthSince  time.Time `json:"health_since"`
	Events       []Event   `json:"events,omitempty"` // oldest first, at most [health] history

	ReloadsTotal        uint64 `json:"reloads_total"`
	ReloadFailuresTotal uint64 `json:"reload_failures_total"`
	LKGRestoresTotal    uint64 `json:"lkg_restores_total"`
}

// FileState is what butler knows of one file of a manager.
type FileState struct {
	Fetched      bool      `json:"fetched"` // RemoteStatus is known
	RemoteStatus int       `json:"remote_status"`
	RemoteTime   time.Time `json:"remote_time"` // last successful fetch

	// Rendered is set once a render was attempted; Mustache and Valid are its
	// results, Method the format it was validated as.
	Rendered bool   `json:"rendered"`
	Mustache bool   `json:"mustache"`
	Method   string `json:"method"`
	Valid    bool   `json:"valid"`

	// Written is set once a write was attempted; WriteOK its result.
	Written bool `json:"written"`
	WriteOK bool `json:"write_ok"`

	FetchesTotal       uint64 `json:"fetches_total"`
	FetchFailuresTotal uint64 `json:"fetch_failures_total"`
}

// NewState returns an empty state.
func NewState() *State {
	return &State{Version: stateVersion, Managers: map[string]*ManagerState{}}
}

// Manager returns the state of manager name, creating it when missing.
func (s *State) Manager(name string) *ManagerState {
	ms, ok := s.Managers[name]
	if !ok {
		ms = &ManagerState{}
		s.Managers[name] = ms
	}
	if ms.Files == nil {
		ms.Files = map[string]*FileState{}
	}
	return ms
}

// File returns the state of the file at path, creating it when missing.
func (ms *ManagerState) File(path string) *FileState {
	fs, ok := ms.Files[path]
	if !ok {
		fs = &FileState{}
		ms.Files[path] = fs
	}
	return fs
}

// Prune drops the managers and files that cfg no longer configures, so their
// metric series disappear.
func (s *State) Prune(cfg *Config) {
	for name, ms := range s.Managers {
		m := cfg.Manager(name)
		if m == nil {
			delete(s.Managers, name)
			continue
		}
		for p := range ms.Files {
			if !m.hasFile(p) {
				delete(ms.Files, p)
			}
		}
	}
}

func (m *Manager) hasFile(path string) bool {
	for _, f := range m.Files {
		if f.Path == path {
			return true
		}
	}
	return false
}

// StateDir is butler's state directory: lock, state file, LKG copies, staging area.
type StateDir struct {
	Path string
	lock *flock.Flock
}

// OpenStateDir creates the state directory (0700: LKG copies may hold secrets) and
// takes its lock. It returns ErrLocked at once when another run holds it.
func OpenStateDir(path string) (*StateDir, error) {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	if err := os.Chmod(path, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	lock := flock.New(filepath.Join(path, lockFileName))
	ok, err := lock.TryLock()
	if err != nil {
		return nil, fmt.Errorf("state directory %s: lock: %w", path, err)
	}
	if !ok {
		return nil, fmt.Errorf("state directory %s: %w", path, ErrLocked)
	}
	return &StateDir{Path: path, lock: lock}, nil
}

// Close releases the lock.
func (d *StateDir) Close() error {
	return d.lock.Unlock()
}

// LKGDir is where the last-known-good copy of a manager is kept.
func (d *StateDir) LKGDir(manager string) string {
	return filepath.Join(d.Path, lkgDirName, manager)
}

// TmpDir returns the staging area, emptied of what an interrupted run left.
func (d *StateDir) TmpDir() (string, error) {
	p := filepath.Join(d.Path, tmpDirName)
	if err := os.RemoveAll(p); err != nil {
		return "", fmt.Errorf("state directory: clear %s: %w", p, err)
	}
	if err := os.Mkdir(p, 0o700); err != nil {
		return "", fmt.Errorf("state directory: %w", err)
	}
	return p, nil
}

// LoadState reads the state file. A missing file gives an empty state. A file that
// cannot be read as state is moved aside to state.json.corrupt-UNIXTIME and an empty
// state is returned with a non-nil warning for the log.
func (d *StateDir) LoadState(now time.Time) (st *State, warning error, err error) {
	p := filepath.Join(d.Path, stateFileName)
	data, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return NewState(), nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("state file %s: %w", p, err)
	}
	st = NewState()
	perr := json.Unmarshal(data, st)
	if perr == nil && st.Version != stateVersion {
		perr = fmt.Errorf("version %d, this butler reads version %d", st.Version, stateVersion)
	}
	if perr == nil {
		if st.Managers == nil {
			st.Managers = map[string]*ManagerState{}
		}
		return st, nil, nil
	}
	aside := p + ".corrupt-" + strconv.FormatInt(now.Unix(), 10)
	if err := os.Rename(p, aside); err != nil {
		return nil, nil, fmt.Errorf("state file %s is unreadable (%v) and could not be moved aside: %w", p, perr, err)
	}
	return NewState(), fmt.Errorf("state file %s is unreadable (%v): moved to %s, starting from empty state", p, perr, aside), nil
}

// SaveState writes the state file atomically and durably.
func (d *StateDir) SaveState(st *State) error {
	st.Version = stateVersion
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	data = append(data, '\n')
	// Under the lock, a temporary state file already there is one a killed
	// run left; without this they would pile up, one per killed save. Best
	// effort: a leftover is harmless, and the next save tries again.
	_ = RemoveStaleTemps(d.Path, []FileContent{{Path: stateFileName}})
	if err := WriteFileAtomic(filepath.Join(d.Path, stateFileName), data, 0o600); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	return nil
}

// MarkWriting records on disk, before a run changes any file of manager, that
// it is doing so. The state that tells what the manager runs is saved only at
// the end of the run, so a run killed after writing (before or after the
// reload, or while keeping the last-known-good copy) would otherwise leave
// files that look in step to the next run, which would neither reload them
// nor keep them. Run clears the marks once the state is saved.
func (d *StateDir) MarkWriting(manager string) error {
	dir := filepath.Join(d.Path, crashWritingDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("mark the files as being written: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, manager), os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("mark the files as being written: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("mark the files as being written: %w", err)
	}
	// The mark must be on disk before the first file is replaced.
	for _, p := range []string{dir, d.Path} {
		if err := writeSyncDir(p); err != nil {
			return fmt.Errorf("mark the files as being written: %w", err)
		}
	}
	return nil
}

// Writing reports whether a run that changed manager's files ended before
// saving the state (see MarkWriting).
func (d *StateDir) Writing(manager string) bool {
	_, err := os.Lstat(filepath.Join(d.Path, crashWritingDir, manager))
	return err == nil
}

// ClearWriting removes the mark of MarkWriting once the state is saved.
func (d *StateDir) ClearWriting(manager string) error {
	err := os.Remove(filepath.Join(d.Path, crashWritingDir, manager))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("clear the mark of files being written: %w", err)
	}
	return nil
}
