// Package state is butler's state directory: the lock, state.json, the marks
// of a run under way, and the places of the last-known-good copies and the
// staging area.
//
// Guarantees:
//   - One run at a time: Open takes an flock for the whole run and fails at
//     once, wrapping ErrLocked, when another run holds it.
//   - state.json is written atomically and durably through an os.Root of the
//     directory (0700: copies may hold secrets); a file that is not state at
//     all is moved aside under a name of its own and the run starts empty.
//   - A run that changes a manager's files marks it first (MarkWriting), so a
//     run killed before saving the state is noticed by the next one.
//   - A manager's state records the files butler wrote for it (Owned):
//     Unwanted never names a file butler did not write.
package state

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	jsonv1 "github.com/go-json-experiment/json/v1"
	"github.com/gofrs/flock"

	"github.com/butler-sre/butler/pipeline/atomicfile"
	"github.com/butler-sre/butler/pipeline/config"
	"github.com/butler-sre/butler/pipeline/health"
	"github.com/butler-sre/butler/pipeline/write"
)

// ErrLocked is returned when another butler run holds the state directory's lock.
var ErrLocked = errors.New("another butler run holds the lock")

// Version is the version of state.json this code writes; it reads every
// version from 1 up to it (see migrate).
const Version = 2

// Names in the state directory.
const (
	FileName     = "state.json"
	lockName     = "lock"
	lkgDirName   = "lkg"
	cacheDirName = "cache"
	tmpDirName   = "tmp"
	writingDir   = "writing" // the marks of MarkWriting
	markerName   = "running.json"
	dirMode      = 0o700
	fileMode     = 0o600
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

	// Owner is the identity of the configuration whose runs keep this state
	// (config.Config.Identity): two configurations never share one.
	Owner string `json:"owner,omitempty"`

	// ConfigFetched is set when the configuration is a URL: whether this run
	// fetched a valid one (false: the kept copy was used).
	ConfigFetched *bool `json:"config_fetched,omitempty"`
}

// NotifyState is what the notifications keep between runs.
type NotifyState struct {
	// Pending holds, by channel, the changes that channel has not delivered.
	Pending  map[string][]health.Change `json:"pending,omitempty"`
	Failures map[string]int64           `json:"failures,omitempty"` // by channel
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

	// Owned are the paths under dest that butler wrote for the manager,
	// sorted: the only files it ever deletes (see Unwanted).
	Owned []string `json:"owned,omitempty"`

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
	// LKGPending is set when applied content could not be stored as the
	// last-known-good copy: the next run stores it, changed or not.
	LKGPending bool `json:"lkg_pending,omitempty"`

	// ReloadTimedOut is set when the last reload got no response.
	ReloadTimedOut bool `json:"reload_timed_out,omitempty"`
	// FetchFailingSince is the start of the current run of failed fetches.
	FetchFailingSince time.Time `json:"fetch_failing_since"`
	// LastChange is when a change was last applied.
	LastChange time.Time `json:"last_change"`

	// Windows are the manager's configured health windows (0 = auto) as of
	// the last run.
	Windows config.Windows `json:"windows"`

	// Health as of the last run, and since when it has been so.
	Health       health.Level `json:"health"`
	HealthReason string       `json:"health_reason,omitempty"`
	HealthSince  time.Time    `json:"health_since"`
	Events       []Event      `json:"events,omitempty"` // oldest first, at most [health] history

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

	// SignedAt is the signing time (the trusted comment's timestamp) of the
	// version last applied, for the replay check; zero when not known.
	SignedAt time.Time `json:"signed_at,omitzero"`

	FetchesTotal       uint64 `json:"fetches_total"`
	FetchFailuresTotal uint64 `json:"fetch_failures_total"`
	NotModifiedTotal   uint64 `json:"not_modified_total,omitempty"` // fetches answered 304
	BytesTotal         uint64 `json:"bytes_total,omitempty"`        // body bytes received

	// Verified is set once a signature was checked ([verify]); VerifyOK is
	// its result.
	Verified bool `json:"verified,omitempty"`
	VerifyOK bool `json:"verify_ok,omitempty"`

	// Input identifies what the file was last rendered from (the raw body,
	// the template context and the file's settings) and Output what that
	// gave; Disk is the stat of the file at dest once it held Output. When
	// the next run's Input and the disk's stat are the same, the file is
	// known to be in step without rendering, validating or reading it.
	// Env names the environment variables the template may use (see
	// render.EnvNames): only their values are part of Input, so a variable
	// that changes every run (systemd's INVOCATION_ID) does not make every
	// file render again.
	Input  string     `json:"input,omitempty"`
	Output string     `json:"output,omitempty"`
	Disk   write.Stat `json:"disk,omitzero"`
	Env    []string   `json:"env,omitempty"`
}

// New returns an empty state.
func New() *State {
	return &State{Version: Version, Managers: map[string]*ManagerState{}}
}

// Manager returns the state of manager name, creating it when missing.
func (s *State) Manager(name string) *ManagerState {
	ms, ok := s.Managers[name]
	if !ok || ms == nil {
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
	if !ok || fs == nil {
		fs = &FileState{}
		ms.Files[path] = fs
	}
	return fs
}

// Prune drops the managers and files that cfg no longer configures, so their
// metric series disappear. The files under a configured dir's path are kept:
// which are still there is known only once the directory is listed (see
// KeepFiles). It is linear in the number of files (times the dirs).
func (s *State) Prune(cfg *config.Config) {
	for name, ms := range s.Managers {
		m := cfg.Manager(name)
		if m == nil {
			delete(s.Managers, name)
			continue
		}
		want := make(map[string]bool, len(m.Files))
		for _, f := range m.Files {
			want[f.Path] = true
		}
		for p := range ms.Files {
			if !want[p] && !inDirs(p, m.Dirs) {
				delete(ms.Files, p)
			}
		}
	}
}

// Facts are what the health rules need to know of the manager.
func (ms *ManagerState) Facts() *health.Facts {
	return &health.Facts{
		Ran: ms.Ran, InStep: ms.InStep, Error: ms.Error,
		Refused: ms.Refused != "", ReloadStatus: ms.ReloadStatus, ReloadTimedOut: ms.ReloadTimedOut,
		FetchFailingSince: ms.FetchFailingSince, LastFetchOK: ms.LastFetchOK(),
	}
}

// LastFetchOK is the time every file of the manager was last fetched
// successfully: the oldest of the files' last successes (zero if any never was).
func (ms *ManagerState) LastFetchOK() time.Time {
	var oldest time.Time
	for _, fs := range ms.Files {
		if fs.RemoteTime.IsZero() {
			return time.Time{}
		}
		if oldest.IsZero() || fs.RemoteTime.Before(oldest) {
			oldest = fs.RemoteTime
		}
	}
	return oldest
}

// Event kinds of a manager's history.
const (
	EventHealth         = "health"
	EventApplied        = "applied"
	EventReload         = "reload"
	EventLKGRestore     = "lkg-restore"
	EventFetchFailing   = "fetch-failing"
	EventFetchRecovered = "fetch-recovered"
)

// AddEvent appends an event to the manager's history, dropping the oldest
// beyond limit: old events go, never the state.
func (ms *ManagerState) AddEvent(limit int, e Event) {
	ms.Events = append(ms.Events, e)
	if limit > 0 && len(ms.Events) > limit {
		ms.Events = append([]Event(nil), ms.Events[len(ms.Events)-limit:]...)
	}
}

// RecordStart notes a run's start for the health windows.
func (s *State) RecordStart(start time.Time, cfg *config.Config) {
	if s.FirstRun.IsZero() {
		s.FirstRun = start
	}
	s.RunStarts = append(s.RunStarts, start)
	if n := len(s.RunStarts); n > health.RunStartsKept {
		s.RunStarts = append([]time.Time(nil), s.RunStarts[n-health.RunStartsKept:]...)
	}
	s.StartupGrace = cfg.Health.StartupGrace
	for _, m := range cfg.Managers {
		if ms, ok := s.Managers[m.Name]; ok {
			ms.Windows = m.Windows
		}
	}
}

// RecordRun sets the run metrics.
func (s *State) RecordRun(start, end time.Time, success bool) {
	s.Run.Start = start
	s.Run.Duration = end.Sub(start)
	s.Run.Success = success
	if success {
		s.Run.LastSuccess = end
	}
}

// Judge evaluates every configured manager at now, records what changed as
// events, and returns the changes.
func (s *State) Judge(cfg *config.Config, now time.Time) []health.Change {
	var changes []health.Change
	for _, m := range cfg.Managers {
		ms, ok := s.Managers[m.Name]
		if !ok {
			continue
		}
		h := health.Evaluate(health.Input{
			Now: now, FirstRun: s.FirstRun, RunStarts: s.RunStarts, StartupGrace: s.StartupGrace,
			Windows: m.Windows, Manager: ms.Facts(), ConfigStale: s.ConfigStale(),
		})
		if ms.HealthSince.IsZero() {
			// The first judgement of this manager: nothing changed yet.
			ms.Health, ms.HealthReason, ms.HealthSince = h.Level, h.Reason, now
			ms.AddEvent(cfg.Health.History, Event{Time: now, Kind: EventHealth, Message: fmt.Sprintf("health %s: %s", h.Level, h.Reason)})
			continue
		}
		if h.Level != ms.Health {
			c := health.Change{Time: now, Manager: m.Name, From: ms.Health, To: h.Level, Reason: h.Reason}
			changes = append(changes, c)
			ms.AddEvent(cfg.Health.History, Event{Time: now, Kind: EventHealth, Message: fmt.Sprintf("health %s -> %s: %s", c.From, c.To, h.Reason)})
			ms.HealthSince = now
		}
		ms.Health, ms.HealthReason = h.Level, h.Reason
	}
	return changes
}

// ConfigStale reports whether the last run used the kept copy of a remote
// configuration.
func (s *State) ConfigStale() bool {
	return s.ConfigFetched != nil && !*s.ConfigFetched
}

// Problems lists every manager whose health is not OK, worst first then by name.
func (s *State) Problems(cfg *config.Config) []health.Problem {
	var out []health.Problem
	for _, m := range cfg.Managers {
		ms, ok := s.Managers[m.Name]
		if !ok || ms.Health == health.OK {
			continue
		}
		out = append(out, health.Problem{Manager: m.Name, Level: ms.Health, Reason: ms.HealthReason, Since: ms.HealthSince})
	}
	health.SortProblems(out)
	return out
}

// Dir is butler's state directory: lock, state file, LKG copies, staging area.
// Every file butler writes in it goes through an os.Root of it.
type Dir struct {
	Path string
	root *os.Root
	lock *flock.Flock
}

// Open creates the state directory (0700: LKG copies may hold secrets) and
// takes its lock. It returns an error wrapping ErrLocked at once when another
// run holds it.
func Open(path string) (*Dir, error) {
	if err := os.MkdirAll(path, dirMode); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	if err := os.Chmod(path, dirMode); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	lock := flock.New(filepath.Join(path, lockName))
	ok, err := lock.TryLock()
	if err != nil {
		return nil, fmt.Errorf("state directory %s: lock: %w", path, err)
	}
	if !ok {
		return nil, fmt.Errorf("state directory %s: %w", path, ErrLocked)
	}
	root, err := os.OpenRoot(path)
	if err != nil {
		_ = lock.Unlock()
		return nil, fmt.Errorf("state directory: %w", err)
	}
	return &Dir{Path: path, root: root, lock: lock}, nil
}

// Close releases the lock.
func (d *Dir) Close() error {
	err := d.root.Close()
	if uerr := d.lock.Unlock(); err == nil {
		err = uerr
	}
	return err
}

// LKGDir is where the last-known-good copy of a manager is kept.
func (d *Dir) LKGDir(manager string) string {
	return filepath.Join(d.Path, lkgDirName, manager)
}

// CacheDir is where the fetched bodies and their validators are kept.
func (d *Dir) CacheDir() string {
	return filepath.Join(d.Path, cacheDirName)
}

// TmpDir returns the staging area, emptied of what an interrupted run left.
func (d *Dir) TmpDir() (string, error) {
	if err := d.root.RemoveAll(tmpDirName); err != nil {
		return "", fmt.Errorf("state directory: clear %s: %w", tmpDirName, err)
	}
	if err := d.root.Mkdir(tmpDirName, dirMode); err != nil {
		return "", fmt.Errorf("state directory: %w", err)
	}
	return filepath.Join(d.Path, tmpDirName), nil
}

// WriteFile writes name (relative to the state directory) atomically and
// durably, mode 0600, after removing the temporaries a killed run left of it.
func (d *Dir) WriteFile(name string, data []byte) error {
	// Under the lock, a temporary file already there is one a killed run
	// left; without this they would pile up, one per killed write. Best
	// effort: a leftover is harmless, and the next write tries again.
	_ = atomicfile.RemoveStale(d.root, []string{name})
	return atomicfile.WriteFile(d.root, name, data, fileMode, dirMode)
}

// Load reads the state file. A missing file gives an empty state. A file
// that cannot be read as state is moved aside to state.json.corrupt-UNIXTIME
// and an empty state is returned with a non-nil warning for the log.
func (d *Dir) Load(now time.Time) (st *State, warning error, err error) {
	data, err := d.root.ReadFile(FileName)
	if errors.Is(err, fs.ErrNotExist) {
		return New(), nil, nil
	}
	var perr error
	if err != nil {
		if !errors.Is(err, syscall.EISDIR) {
			return nil, nil, fmt.Errorf("state file %s: %w", filepath.Join(d.Path, FileName), err)
		}
		perr = errors.New("it is a directory")
	} else if st, perr = Parse(data); perr == nil {
		return st, nil, nil
	} else if errors.Is(perr, ErrNewer) {
		return nil, nil, fmt.Errorf("state file %s: %w", filepath.Join(d.Path, FileName), perr)
	}
	aside, err := d.moveAside(now)
	if err != nil {
		return nil, nil, fmt.Errorf("state file %s is unreadable (%v) and could not be moved aside: %w", filepath.Join(d.Path, FileName), perr, err)
	}
	return New(), fmt.Errorf("state file %s is unreadable (%v): moved to %s, starting from empty state", filepath.Join(d.Path, FileName), perr, aside), nil
}

// moveAside renames the state file to a name of its own, never over an
// earlier corrupt copy.
func (d *Dir) moveAside(now time.Time) (string, error) {
	base := FileName + ".corrupt-" + strconv.FormatInt(now.Unix(), 10)
	name := base
	for i := 1; ; i++ {
		_, err := d.root.Lstat(name)
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err != nil {
			return "", err
		}
		name = base + "-" + strconv.Itoa(i)
	}
	if err := d.root.Rename(FileName, name); err != nil {
		return "", err
	}
	return filepath.Join(d.Path, name), atomicfile.SyncDir(d.root, ".")
}

// ErrNewer marks a state file written by a newer butler: this one refuses to
// run rather than discard what it cannot read.
var ErrNewer = errors.New("the state file was written by a newer butler")

// Parse decodes a state file, migrating an older version in place (every
// counter, hash and refusal kept). Entries that are null are dropped. A file
// of a newer version is an error wrapping ErrNewer that names both versions;
// anything else that is not butler state is an error of its own.
func Parse(data []byte) (*State, error) {
	// A file of this version, the common case, is decoded in one pass, by
	// the faster decoder.
	st := New()
	st.Version = 0 // what the file says, or nothing
	if jsonv2.Unmarshal(data, st, jsonV1) == nil && st.Version == Version {
		return normalize(st), nil
	}
	return parseV1(data)
}

// jsonV1 makes go-json-experiment/json read and write what encoding/json
// does: the same bytes out, the same values in. It decodes state.json in
// about half the time (a test holds the two to the same results), which
// every run pays for.
var jsonV1 = jsonv1.DefaultOptionsV1()

// parseV1 is Parse by encoding/json alone: the older versions, and every
// file the fast path refuses, so that errors read as they always have.
func parseV1(data []byte) (*State, error) {
	st := New()
	st.Version = 0
	if json.Unmarshal(data, st) == nil && st.Version == Version {
		return normalize(st), nil
	}
	var head struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, err
	}
	switch {
	case head.Version == nil:
		return nil, errors.New("no version field: not a butler state file")
	case *head.Version > Version:
		return nil, fmt.Errorf("%w: version %d, this butler reads versions up to %d (upgrade butler, or move the file away to start from empty state)", ErrNewer, *head.Version, Version)
	case *head.Version < 1:
		return nil, fmt.Errorf("version %d is not a butler state version", *head.Version)
	}
	data, err := migrate(*head.Version, data)
	if err != nil {
		return nil, fmt.Errorf("migrate from version %d: %w", *head.Version, err)
	}
	st = New()
	if err := json.Unmarshal(data, st); err != nil {
		return nil, err
	}
	return normalize(st), nil
}

// normalize makes a decoded state what the run expects: this version, no
// nil maps or entries, owned paths sorted and each once.
func normalize(st *State) *State {
	st.Version = Version
	if st.Managers == nil {
		st.Managers = map[string]*ManagerState{}
	}
	for name, ms := range st.Managers {
		if ms == nil {
			delete(st.Managers, name)
			continue
		}
		if ms.Files == nil {
			ms.Files = map[string]*FileState{} // ms.File adds to it
		}
		for p, fs := range ms.Files {
			if fs == nil {
				delete(ms.Files, p)
			}
		}
		// Sorted and each path once, as MarkWritten keeps it.
		slices.Sort(ms.Owned)
		ms.Owned = slices.Compact(ms.Owned)
	}
	return st
}

// migrate turns a state file of version from into the current version's
// shape, one version at a time.
//
// Version 1 came in two shapes: notify.pending was a list of the changes no
// channel had delivered, and later a map of them by channel. Version 2 is the
// map; a list becomes the backlog of every channel.
func migrate(from int, data []byte) ([]byte, error) {
	if from >= Version {
		return data, nil
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if raw, ok := doc["notify"]; ok && from == 1 {
		var n map[string]json.RawMessage
		if err := json.Unmarshal(raw, &n); err != nil {
			return nil, fmt.Errorf("notify: %w", err)
		}
		if p, ok := n["pending"]; ok && len(p) > 0 && p[0] == '[' {
			by, err := json.Marshal(map[string]json.RawMessage{"webhook": p, "email": p})
			if err != nil {
				return nil, err
			}
			n["pending"] = by
		}
		out, err := json.Marshal(n)
		if err != nil {
			return nil, err
		}
		doc["notify"] = out
	}
	doc["version"] = json.RawMessage(strconv.Itoa(Version))
	return json.Marshal(doc)
}

// Read reads the state file at stateDir without taking the lock, for `butler
// status`; a missing file gives nil and no error.
func Read(stateDir string) (*State, error) {
	p := filepath.Join(stateDir, FileName)
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state file %s: %w", p, err)
	}
	st, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("state file %s is unreadable: %w (the next sync moves it aside)", p, err)
	}
	return st, nil
}

// Save writes the state file atomically and durably. It only reads st
// (the run writes the textfile from it meanwhile), except to set the
// version of a state not made by New or Parse.
func (d *Dir) Save(st *State) error {
	if st.Version != Version {
		st.Version = Version
	}
	// Encode writes what Marshal would and a final newline, straight to the
	// temporary file: no second copy of a large state in memory.
	_ = atomicfile.RemoveStale(d.root, []string{FileName})
	err := atomicfile.WriteFileFunc(d.root, FileName, func(w *bufio.Writer) error {
		if err := jsonv2.MarshalWrite(w, st, jsonV1); err != nil {
			return err
		}
		return w.WriteByte('\n')
	}, fileMode, dirMode)
	if err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	return nil
}

// MarkWriting records on disk, before a run changes any file of manager, that
// it is doing so. The state that tells what the manager runs is saved only at
// the end of the run, so a run killed after writing (before or after the
// reload, or while keeping the last-known-good copy) would otherwise leave
// files that look in step to the next run, which would neither reload them
// nor keep them. The run clears the marks once the state is saved.
func (d *Dir) MarkWriting(manager string) error {
	if _, err := atomicfile.MkdirAll(d.root, writingDir, dirMode); err != nil {
		return fmt.Errorf("mark the files as being written: %w", err)
	}
	f, err := d.root.OpenFile(filepath.Join(writingDir, manager), os.O_WRONLY|os.O_CREATE, fileMode)
	if err != nil {
		return fmt.Errorf("mark the files as being written: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("mark the files as being written: %w", err)
	}
	// The mark must be on disk before the first file is replaced.
	for _, p := range []string{writingDir, "."} {
		if err := atomicfile.SyncDir(d.root, p); err != nil {
			return fmt.Errorf("mark the files as being written: %w", err)
		}
	}
	return nil
}

// Writing reports whether a run that changed manager's files ended before
// saving the state (see MarkWriting).
func (d *Dir) Writing(manager string) bool {
	_, err := d.root.Lstat(filepath.Join(writingDir, manager))
	return err == nil
}

// ClearWriting removes the mark of MarkWriting once the state is saved.
func (d *Dir) ClearWriting(manager string) error {
	err := d.root.Remove(filepath.Join(writingDir, manager))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("clear the mark of files being written: %w", err)
	}
	return nil
}

// Marker is written to the state directory while a sync runs, so that status
// can tell a running sync, and a stuck one, without taking the lock.
type Marker struct {
	PID     int           `json:"pid"`
	Start   time.Time     `json:"start"`
	Timeout time.Duration `json:"timeout"`
}

// WriteMarker records the running sync; RemoveMarker clears it.
func (d *Dir) WriteMarker(start time.Time, timeout time.Duration) error {
	data, err := json.Marshal(Marker{PID: os.Getpid(), Start: start, Timeout: timeout})
	if err != nil {
		return err
	}
	// Atomic, so status never reads half a marker, but not durable: after
	// a crash the marker is stale whether or not it reached the disk, and
	// every run would pay two fsyncs for it.
	_ = atomicfile.RemoveStale(d.root, []string{markerName})
	return atomicfile.Replace(d.root, markerName, data, fileMode, dirMode)
}

// RemoveMarker clears the mark of WriteMarker.
func (d *Dir) RemoveMarker() error {
	if err := d.root.Remove(markerName); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", markerName, err)
	}
	return nil
}

// ReadMarker returns the marker of a sync that is running now: its process
// is alive. A marker left by a killed run is ignored.
func ReadMarker(stateDir string) (Marker, bool) {
	var m Marker
	data, err := os.ReadFile(filepath.Join(stateDir, markerName))
	if err != nil || json.Unmarshal(data, &m) != nil || m.PID <= 0 {
		return m, false
	}
	if err := syscall.Kill(m.PID, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return m, false
	}
	return m, true
}
