package pipeline

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"
)

// ErrFailed is returned by Run when at least one manager is not in step after the run.
var ErrFailed = errors.New("not every manager is in step")

// ErrInterrupted is the cause a caller gives when it cancels a run on a signal
// (context.WithCancelCause): the run starts nothing new, lets a reload already
// under way finish within Options.StopGrace or puts its files back, records
// everything, and returns an error wrapping the cause.
var ErrInterrupted = errors.New("interrupted")

// DefaultStopGrace is how long a reload under way may take after an interruption.
const DefaultStopGrace = 5 * time.Second

// Phases, as named in logs, errors and the state.
const (
	PhaseFetch  = "fetch"
	PhaseRender = "render"
	PhaseCheck  = "check"
	PhaseWrite  = "write"
	PhaseReload = "reload"
	PhaseLKG    = "lkg"
)

// BuildInfo identifies the running binary in butler_build_info.
type BuildInfo struct {
	Version, Revision, GoVersion string
}

// Options are the run's settings beyond the configuration, and its dependencies.
type Options struct {
	Managers []string      // only these managers; empty means all
	DryRun   bool          // print diffs, change nothing
	Force    bool          // write and reload even when nothing changed
	Splay    time.Duration // overrides [butler] splay when > 0
	Timeout  time.Duration // overrides [butler] timeout when > 0

	Now        func() time.Time
	Logger     *slog.Logger
	Stdout     io.Writer // where --dry-run prints its diffs
	Environ    []string  // for {{env.NAME}}
	Hostname   string    // for {{host.hostname}}
	Build      BuildInfo
	HTTPClient *http.Client                          // for fetches and HTTP reloads; nil = defaults
	Jitter     func(max time.Duration) time.Duration // the splay draw; nil = uniform random
	StopGrace  time.Duration                         // see ErrInterrupted; 0 = DefaultStopGrace
	// ConfigFetched is set when the configuration is a URL: false when the
	// kept copy is used because the fetch failed or the new one was invalid.
	ConfigFetched *bool

	// NotifyTLS is the TLS configuration of STARTTLS to the mail server; nil
	// means the system's roots (tests give their own CA).
	NotifyTLS *tls.Config
	// Pinger delivers the heartbeat; nil builds it from [notify] ping_url.
	Pinger interface {
		Start(ctx context.Context) error
		Finish(ctx context.Context, ok bool) error
	}
}

func (o *Options) defaults() {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Stdout == nil {
		o.Stdout = io.Discard
	}
	if o.StopGrace <= 0 {
		o.StopGrace = DefaultStopGrace
	}
	if o.Jitter == nil {
		o.Jitter = func(max time.Duration) time.Duration { return time.Duration(rand.Int64N(int64(max))) }
	}
}

// Result tells what a run did.
type Result struct {
	Start    time.Time
	Duration time.Duration
	Managers []ManagerResult
}

// ManagerResult is the outcome of one manager.
type ManagerResult struct {
	Name    string
	InStep  bool
	Outcome string   // unchanged, applied, failed, diff
	Phase   string   // the failed phase
	Err     error    // the failure
	Changed []string // paths that differed from disk

	diff string // the unified diff, in a dry run
}

// Run runs every phase once for the selected managers of cfg. It returns ErrLocked
// when another run holds the lock, an error wrapping ErrConfig for an unknown
// --manager, and an error wrapping ErrFailed when some manager is not in step.
func Run(ctx context.Context, cfg *Config, opts Options) (*Result, error) {
	opts.defaults()
	selected, err := selectManagers(cfg, opts.Managers)
	if err != nil {
		return nil, err
	}
	scrub := configScrubber(cfg)
	log := slog.New(newScrubHandler(opts.Logger.Handler(), scrub))

	splay := cfg.Butler.Splay
	if opts.Splay > 0 {
		splay = opts.Splay
	}
	if splay > 0 {
		wait := opts.Jitter(splay)
		log.Debug("splay", "wait", wait.String())
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, context.Cause(ctx)
		case <-t.C:
		}
	}
	timeout := cfg.Butler.Timeout
	if opts.Timeout > 0 {
		timeout = opts.Timeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	if opts.DryRun {
		return dryRun(ctx, cfg, selected, opts, log, scrub)
	}

	sd, err := OpenStateDir(cfg.Butler.StateDir)
	if err != nil {
		return nil, err
	}
	defer sd.Close()

	start := opts.Now()
	if err := sd.writeRunMarker(start, timeout); err != nil {
		log.Warn("cannot record the running sync for butler status: "+err.Error(), "phase", "state")
	}
	defer sd.removeRunMarker()
	st, warning, err := sd.LoadState(start)
	if err != nil {
		return nil, err
	}
	if warning != nil {
		log.Warn(warning.Error(), "phase", "state")
	}
	st.Prune(cfg)
	st.recordStart(start, cfg)
	st.ConfigFetched = opts.ConfigFetched
	tmp, err := sd.TmpDir()
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	pinger := opts.Pinger
	if pinger == nil && cfg.Notify.PingURL != "" {
		pinger = &Pinger{URL: cfg.Notify.PingURL, Client: opts.HTTPClient}
	}
	if pinger != nil {
		if err := pinger.Start(ctx); err != nil {
			log.Warn("heartbeat ping failed: "+err.Error(), "phase", "notify")
		}
	}

	shared := newRunShared(cfg, opts, log, scrub, st, sd, tmp)
	res := &Result{Start: start}
	res.Managers = shared.each(selected, func(r *managerRun) ManagerResult { return r.run(ctx) })

	end := opts.Now()
	res.Duration = end.Sub(start)
	success := true
	for _, mr := range res.Managers {
		success = success && mr.InStep
	}
	interrupted := context.Cause(ctx)
	if !errors.Is(interrupted, ErrInterrupted) {
		interrupted = nil
	}
	if interrupted != nil {
		success = false
		log.Warn("run interrupted: "+interrupted.Error(), "phase", "run")
	}
	recordRun(st, start, end, success)
	// Notifications and the last ping get a short time of their own: the run's
	// context may be over (deadline, signal).
	after, cancelAfter := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancelAfter()
	notifyChanges(after, cfg, st, opts, log, end)

	var errs []error
	if err := sd.SaveState(st); err != nil {
		log.Error(err.Error(), "phase", "state")
		errs = append(errs, err)
		success = false
		st.Run.Success = false
	} else {
		// The saved state now holds what the marks stood for.
		for _, m := range selected {
			if err := sd.ClearWriting(m.Name); err != nil {
				log.Warn(err.Error(), "phase", "state", "manager", m.Name)
			}
		}
	}
	if err := WriteMetrics(cfg.Butler.Textfile, st, opts.Build); err != nil {
		log.Error(err.Error(), "phase", "textfile")
		errs = append(errs, err)
		success = false
	}
	if pinger != nil {
		if err := pinger.Finish(after, success); err != nil {
			log.Warn("heartbeat ping failed: "+err.Error(), "phase", "notify")
		}
	}
	if interrupted != nil {
		errs = append(errs, interrupted)
	}
	if !success || len(errs) > 0 {
		return res, errors.Join(append([]error{ErrFailed}, errs...)...)
	}
	return res, nil
}

// notifyChanges judges every manager's health, and when some changed sends one
// message per channel with the changes and every current problem. A channel
// that fails keeps its undelivered changes and gets them with its next message,
// tried every run until delivered; a failure is logged and counted, and changes
// nothing else.
func notifyChanges(ctx context.Context, cfg *Config, st *State, opts Options, log *slog.Logger, now time.Time) {
	changes := st.judgeHealth(cfg, now)
	for _, c := range changes {
		log.Info(fmt.Sprintf("health %s -> %s: %s", c.From, c.To, c.Reason), "manager", c.Manager, "phase", "health")
	}
	channels := map[string]*Notifier{}
	if cfg.Notify.Webhook != nil {
		channels["webhook"] = &Notifier{Webhook: cfg.Notify.Webhook, HTTPClient: opts.HTTPClient}
	}
	if cfg.Notify.Email != nil {
		channels["email"] = &Notifier{Email: cfg.Notify.Email, TLSConfig: opts.NotifyTLS}
	}
	pending := map[string][]HealthChange{}
	for name := range channels {
		if p := append(st.Notify.Pending[name], changes...); len(p) > 0 {
			pending[name] = p
		}
	}
	problems := st.Problems(cfg)
	failed := make(map[string]error, len(pending))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, changes := range pending {
		wg.Go(func() {
			msg := Message{Host: opts.Hostname, Time: now, Changes: changes, Problems: problems}
			if err := channels[name].Send(ctx, msg)[name]; err != nil {
				mu.Lock()
				failed[name] = err
				mu.Unlock()
			}
		})
	}
	wg.Wait()

	// Keep what each channel did not deliver, bounded so that a channel down
	// for weeks does not grow the state without end.
	const keep = 200
	st.Notify.Pending = nil
	for name, err := range failed {
		if st.Notify.Failures == nil {
			st.Notify.Failures = map[string]int64{}
		}
		st.Notify.Failures[name]++
		log.Warn("notification not delivered (kept for the next run): "+err.Error(), "phase", "notify", "channel", name)
		p := pending[name]
		if len(p) > keep {
			p = p[len(p)-keep:]
		}
		if st.Notify.Pending == nil {
			st.Notify.Pending = map[string][]HealthChange{}
		}
		st.Notify.Pending[name] = p
	}
}

// recordRun sets the run metrics of st.
func recordRun(st *State, start, end time.Time, success bool) *State {
	st.Run.Start = start
	st.Run.Duration = end.Sub(start)
	st.Run.Success = success
	if success {
		st.Run.LastSuccess = end
	}
	return st
}

// RecordFailedRun writes the metrics of a run that could not start (a configuration
// error): the last state with butler_run_success 0. It is a best effort: it does
// nothing when the state directory is locked.
func RecordFailedRun(b Butler, build BuildInfo, now func() time.Time) error {
	if b.Textfile == "" {
		return nil
	}
	sd, err := OpenStateDir(b.StateDir)
	if err != nil {
		return err
	}
	defer sd.Close()
	start := now()
	st, _, err := sd.LoadState(start)
	if err != nil {
		return err
	}
	recordRun(st, start, now(), false)
	if err := sd.SaveState(st); err != nil {
		return err
	}
	return WriteMetrics(b.Textfile, st, build)
}

func selectManagers(cfg *Config, names []string) ([]*Manager, error) {
	if len(names) == 0 {
		return cfg.Managers, nil
	}
	var out []*Manager
	for _, m := range cfg.Managers {
		if slices.Contains(names, m.Name) {
			out = append(out, m)
		}
	}
	for _, n := range names {
		if cfg.Manager(n) == nil {
			return nil, fmt.Errorf("%w: --manager %s: no such manager in %s", ErrConfig, n, cfg.Source)
		}
	}
	return out, nil
}

// runShared is what the managers of one run share.
type runShared struct {
	opts    Options
	fetcher *Fetcher
	sem     chan struct{} // fetches at once, over all managers
	sd      *StateDir     // nil when the run writes nothing
	tmp     string        // staging area
	scrub   *Scrubber
	log     *slog.Logger
	st      *State
	history int // events kept per manager
}

func newRunShared(cfg *Config, opts Options, log *slog.Logger, scrub *Scrubber, st *State, sd *StateDir, tmp string) *runShared {
	return &runShared{
		opts: opts,
		fetcher: NewFetcher(FetcherConfig{
			Schemes:     cfg.Butler.Schemes,
			MaxFileSize: cfg.Butler.MaxFileSize,
			TempDir:     tmp,
			HTTPClient:  opts.HTTPClient,
		}),
		sem:     make(chan struct{}, cfg.Butler.Concurrency),
		sd:      sd,
		tmp:     tmp,
		scrub:   scrub,
		log:     log,
		st:      st,
		history: cfg.Health.History,
	}
}

// manager prepares the run of m, its state entries made beforehand so that
// managers running at once never write the same map.
func (s *runShared) manager(m *Manager) *managerRun {
	ms := s.st.Manager(m.Name)
	for _, f := range m.Files {
		ms.File(f.Path)
	}
	return &managerRun{runShared: s, m: m, ms: ms, log: s.log.With("manager", m.Name)}
}

// each runs phases for every manager at once and collects the results.
func (s *runShared) each(managers []*Manager, phases func(*managerRun) ManagerResult) []ManagerResult {
	runs := make([]*managerRun, len(managers))
	for i, m := range managers {
		runs[i] = s.manager(m)
	}
	results := make([]ManagerResult, len(managers))
	var wg sync.WaitGroup
	for i, r := range runs {
		wg.Go(func() { results[i] = phases(r) })
	}
	wg.Wait()
	return results
}

// managerRun carries one manager through the phases. It only touches its own
// ManagerState, so managers run concurrently.
type managerRun struct {
	*runShared
	m   *Manager
	ms  *ManagerState
	log *slog.Logger
}

// fail records a failed phase and returns the manager's result.
func (r *managerRun) fail(phase string, err error, changed []string) ManagerResult {
	err = fmt.Errorf("manager %s: %s: %w", r.m.Name, phase, err)
	r.ms.InStep = false
	r.ms.Phase = phase
	r.ms.Error = r.scrub.Scrub(err.Error())
	r.log.Error(r.ms.Error, "phase", phase)
	return ManagerResult{Name: r.m.Name, Outcome: "failed", Phase: phase, Err: err, Changed: changed}
}

func (r *managerRun) ok(outcome string, changed []string) ManagerResult {
	r.ms.InStep = true
	r.ms.Phase = ""
	r.ms.Error = ""
	return ManagerResult{Name: r.m.Name, InStep: true, Outcome: outcome, Changed: changed}
}

// run is the story of one manager's run: fetch, render and validate, check, then
// write, reload, and keep or restore the last-known-good copy.
func (r *managerRun) run(ctx context.Context) ManagerResult {
	r.ms.Ran = true
	if r.sd.Writing(r.m.Name) {
		// A run was killed while changing this manager's files: what it
		// wrote may not be loaded, nor kept, whatever the disk shows now.
		r.log.Warn("an earlier run stopped while changing the files; the manager is reloaded", "phase", PhaseWrite)
		r.ms.PendingReload = true
	}
	files, changed, phase, err := r.prepare(ctx)
	if err != nil {
		return r.fail(phase, err, nil)
	}
	// A run killed while writing leaves temporary files beside the targets;
	// this run holds the lock, so they are stale: clear them.
	if err := RemoveStaleTemps(r.m.Dest, files); err != nil {
		r.log.Warn(err.Error(), "phase", PhaseWrite)
	}
	hash := contentHash(files)

	if hash == r.ms.Refused && !r.opts.Force {
		// No reload storm: this exact content was refused before.
		return r.fail(PhaseReload, fmt.Errorf("this content was refused before (reload status %d) and is not applied again until the source or vars change; run with --force to try it anyway",
			r.ms.ReloadStatus), changed)
	}
	// The desired content is not the refused one (any more): the refusal is over.
	r.ms.Refused = ""
	if len(changed) == 0 && !r.ms.PendingReload && !r.opts.Force {
		r.log.Debug("unchanged", "phase", PhaseWrite)
		return r.ok("unchanged", nil)
	}

	if ctx.Err() != nil {
		// Interrupted or out of time: start nothing new.
		return r.fail(PhaseWrite, fmt.Errorf("nothing written: %w", context.Cause(ctx)), changed)
	}
	toWrite := files
	if !r.opts.Force {
		toWrite = selectFiles(files, changed)
	}
	if err := r.sd.MarkWriting(r.m.Name); err != nil {
		return r.fail(PhaseWrite, err, changed)
	}
	snap, err := r.write(toWrite)
	if err != nil {
		return r.fail(PhaseWrite, err, changed)
	}
	if r.m.Reload == nil {
		r.ms.Applied, r.ms.Refused, r.ms.PendingReload = hash, "", false
		return r.keep(files, changed)
	}
	return r.reload(ctx, files, hash, snap, changed)
}

// prepare runs the phases that change nothing: fetch, render and validate, the
// check command, and the comparison with what is on disk. On failure it names
// the phase that failed.
func (r *managerRun) prepare(ctx context.Context) (files []FileContent, changed []string, phase string, err error) {
	raw, err := r.fetchAll(ctx)
	r.recordFetchStreak(err)
	if err != nil {
		return nil, nil, PhaseFetch, err
	}
	if files, err = r.renderAll(raw); err != nil {
		return nil, nil, PhaseRender, err
	}
	if err := r.check(ctx, files); err != nil {
		return nil, nil, PhaseCheck, err
	}
	if changed, err = Changed(r.m.Dest, files); err != nil {
		return nil, nil, PhaseWrite, err
	}
	return files, changed, "", nil
}

// recordFetchStreak notes the start and the end of a run of failed fetches.
func (r *managerRun) recordFetchStreak(err error) {
	now := r.opts.Now()
	switch {
	case err != nil && r.ms.FetchFailingSince.IsZero():
		r.ms.FetchFailingSince = now
		r.event(EventFetchFailing, "fetches started failing: "+r.scrub.Scrub(err.Error()), nil)
	case err == nil && !r.ms.FetchFailingSince.IsZero():
		r.event(EventFetchRecovered, fmt.Sprintf("fetches succeed again after failing since %s", stamp(r.ms.FetchFailingSince)), nil)
		r.ms.FetchFailingSince = time.Time{}
	}
}

// event adds an entry to the manager's history.
func (r *managerRun) event(kind, msg string, files []string) {
	r.ms.addEvent(r.history, Event{Time: r.opts.Now(), Kind: kind, Message: msg, Files: files})
}

// fetchAll fetches every file of the manager, at most `concurrency` at once over
// all managers. It returns the first failure after every fetch has finished, so
// every file's metrics are set.
func (r *managerRun) fetchAll(ctx context.Context) (map[string][]byte, error) {
	out := make([]([]byte), len(r.m.Files))
	errs := make([]error, len(r.m.Files))
	var wg sync.WaitGroup
	for i, f := range r.m.Files {
		wg.Go(func() {
			select {
			case r.sem <- struct{}{}:
			case <-ctx.Done():
				errs[i] = fmt.Errorf("%s: %w", f.Path, ctx.Err())
				r.recordFetch(f, 0, errs[i])
				return
			}
			defer func() { <-r.sem }()
			data, status, err := r.fetcher.Fetch(ctx, f.Source, f.Headers)
			if err != nil {
				err = fmt.Errorf("%s: %w", f.Path, err)
			}
			errs[i] = err
			out[i] = data
			r.recordFetch(f, status, err)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	m := make(map[string][]byte, len(out))
	for i, f := range r.m.Files {
		m[f.Path] = out[i]
	}
	return m, nil
}

func (r *managerRun) recordFetch(f *File, status int, err error) {
	fs := r.ms.Files[f.Path]
	fs.Fetched = true
	fs.RemoteStatus = status
	fs.FetchesTotal++
	if err != nil {
		fs.FetchFailuresTotal++
		r.log.Warn("fetch failed", "file", f.Path, "phase", PhaseFetch, "source", RedactURL(f.Source), "status", status, "error", err.Error())
		return
	}
	fs.RemoteTime = r.opts.Now()
	r.log.Debug("fetched", "file", f.Path, "phase", PhaseFetch, "source", RedactURL(f.Source), "status", status)
}

// renderAll renders templates and validates every file; every file's metrics are
// set before the first failure is returned.
func (r *managerRun) renderAll(raw map[string][]byte) ([]FileContent, error) {
	data := TemplateData(r.m.Vars, r.m.Name, r.opts.Environ, r.opts.Hostname)
	var errs []error
	files := make([]FileContent, 0, len(r.m.Files))
	for _, f := range r.m.Files {
		fs := r.ms.Files[f.Path]
		fs.Rendered, fs.Method = true, f.Format
		out := raw[f.Path]
		fs.Mustache = true
		if f.Template {
			var err error
			out, err = Render(raw[f.Path], data, f.Delims)
			if err != nil {
				fs.Mustache, fs.Valid = false, false
				err = fmt.Errorf("%s: template: %w", f.Path, err)
				r.log.Warn("render failed", "file", f.Path, "phase", PhaseRender, "error", err.Error())
				errs = append(errs, err)
				continue
			}
		}
		if err := Validate(f.Format, out); err != nil {
			fs.Valid = false
			err = fmt.Errorf("%s: invalid %w", f.Path, err)
			r.log.Warn("validation failed", "file", f.Path, "phase", PhaseRender, "error", err.Error())
			errs = append(errs, err)
			continue
		}
		fs.Valid = true
		files = append(files, FileContent{Path: f.Path, Data: out, Mode: f.Mode})
	}
	return files, errors.Join(errs...)
}

// check runs the manager's check command in a staging directory that holds the
// rendered files at their paths.
func (r *managerRun) check(ctx context.Context, files []FileContent) error {
	if len(r.m.Check) == 0 {
		return nil
	}
	dir, err := os.MkdirTemp(r.tmp, r.m.Name+"-check-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for _, f := range files {
		p, err := SafeJoin(dir, f.Path)
		if err != nil {
			return err
		}
		if err := WriteFileAtomic(p, f.Data, f.Mode); err != nil {
			return err
		}
	}
	res := runCommand(ctx, r.m.Check, dir, r.m.CheckTimeout)
	switch {
	case res.StartErr != nil:
		return fmt.Errorf("cannot run %s: %w", r.m.Check[0], res.StartErr)
	case res.TimedOut:
		return fmt.Errorf("%s: %s (check_timeout %s)", r.m.Check[0], res.Reason, r.m.CheckTimeout)
	case !res.OK:
		return fmt.Errorf("%s refused the files (%v): %s", r.m.Check[0], res.Err, res.Output)
	}
	r.log.Debug("check passed", "phase", PhaseCheck)
	return nil
}

// write applies the changed files atomically and records the write metric.
func (r *managerRun) write(files []FileContent) (*Snapshot, error) {
	snap, err := Apply(r.m.Dest, files)
	for _, f := range files {
		fs := r.ms.Files[f.Path]
		fs.Written = true
		fs.WriteOK = err == nil
	}
	if err != nil {
		return nil, err
	}
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = f.Path
		r.log.Info("written", "file", f.Path, "phase", PhaseWrite, "dest", r.m.Dest)
	}
	r.ms.LastChange = r.opts.Now()
	r.event(EventApplied, fmt.Sprintf("wrote %d file(s) to %s", len(files), r.m.Dest), paths)
	return snap, nil
}

// reload asks the manager to load the written files and acts on the answer per
// the decision table of the specification.
func (r *managerRun) reload(ctx context.Context, files []FileContent, hash string, snap *Snapshot, changed []string) ManagerResult {
	rl := r.m.Reload
	var reloader Reloader
	if rl.URL != "" {
		reloader = &HTTPReloader{URL: rl.URL, Method: rl.Method, Headers: rl.Headers, Timeout: rl.Timeout, Retries: rl.Retries, Client: r.opts.HTTPClient}
	} else {
		reloader = &CommandReloader{Argv: rl.Command, Timeout: rl.Timeout}
	}
	// The files are written: a reload under way may finish within StopGrace
	// after an interruption or the run's deadline.
	rctx, cancel := graceContext(ctx, r.opts.StopGrace)
	defer cancel()
	res := reloader.Reload(rctx)
	r.ms.ReloadTime = r.opts.Now()
	r.ms.ReloadsTotal++
	r.ms.ReloadTimedOut = res.Status == 0
	msg := fmt.Sprintf("reload status %d", res.Status)
	if res.Detail != "" {
		msg += ": " + res.Detail
	}
	r.event(EventReload, r.scrub.Scrub(msg), nil)
	log := r.log.With("phase", PhaseReload, "status", res.Status)

	switch {
	case res.Status == 0 && ctx.Err() != nil:
		// Interrupted, and the reload did not finish in the grace period: put
		// the files back as they were, so the manager's disk matches what it runs.
		r.ms.Reloaded, r.ms.ReloadStatus = true, 0
		r.ms.ReloadFailuresTotal++
		r.ms.PendingReload = false
		if err := snap.Restore(); err != nil {
			return r.fail(PhaseLKG, fmt.Errorf("interrupted during the reload, and putting the files back failed: %w", err), changed)
		}
		r.event(EventLKGRestore, "interrupted during the reload: the files from before this run were put back", nil)
		return r.fail(PhaseReload, fmt.Errorf("interrupted (%v) before the reload answered; the files from before this run were put back", context.Cause(ctx)), changed)

	case slices.Contains(rl.Expect, res.Status):
		r.ms.Reloaded, r.ms.ReloadStatus = true, res.Status
		r.ms.Applied, r.ms.Refused, r.ms.PendingReload = hash, "", false
		log.Info("reloaded")
		return r.keep(files, changed)

	case res.Status == 0 && r.m.TimeoutOK:
		// The status keeps its previous value; the files stay; the LKG is unchanged.
		r.ms.Applied, r.ms.Refused, r.ms.PendingReload = hash, "", false
		log.Warn("reload got no response; timeout_ok is set, so the files stay and count as applied", "detail", res.Detail)
		return r.ok("applied", changed)

	case res.Status == 0:
		r.ms.Reloaded, r.ms.ReloadStatus = true, 0
		r.ms.ReloadFailuresTotal++
		r.ms.PendingReload = true
		return r.fail(PhaseReload, fmt.Errorf("no response (%s); the files stay and the reload is tried again next run", res.Detail), changed)

	default:
		r.ms.Reloaded, r.ms.ReloadStatus = true, res.Status
		r.ms.ReloadFailuresTotal++
		r.ms.Refused, r.ms.PendingReload = hash, false
		restored, err := r.restore(snap)
		if err != nil {
			return r.fail(PhaseLKG, fmt.Errorf("reload refused with status %d (%s), and putting the previous files back failed: %w", res.Status, res.Detail, err), changed)
		}
		return r.fail(PhaseReload, fmt.Errorf("refused with status %d (%s); %s put back", res.Status, res.Detail, restored), changed)
	}
}

// graceContext returns a context that ends grace after ctx ends (but not before),
// for work that should finish once started.
func graceContext(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	g, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(grace, cancel)
		context.AfterFunc(g, func() { t.Stop() })
	})
	return g, func() {
		stop()
		cancel()
	}
}

// keep records an applied change and stores it as the last-known-good copy.
func (r *managerRun) keep(files []FileContent, changed []string) ManagerResult {
	if r.m.LKG {
		if err := StoreLKG(r.sd.LKGDir(r.m.Name), files); err != nil {
			return r.fail(PhaseLKG, fmt.Errorf("applied, but storing the last-known-good copy failed: %w", err), changed)
		}
		r.ms.LKGTime = r.opts.Now()
		r.log.Debug("last-known-good stored", "phase", PhaseLKG)
	}
	return r.ok("applied", changed)
}

// restore puts back the last-known-good copy, or when there is none yet the files
// as they were before this run. It says which it did.
func (r *managerRun) restore(snap *Snapshot) (string, error) {
	// First undo this run's writes (files new this run are removed), then lay the
	// LKG copy over them.
	if snap != nil {
		if err := snap.Restore(); err != nil {
			return "", err
		}
	}
	if r.m.LKG {
		lkg, ok, err := LoadLKG(r.sd.LKGDir(r.m.Name))
		if err != nil {
			return "", err
		}
		if ok {
			if _, err := Apply(r.m.Dest, lkg); err != nil {
				return "", err
			}
			r.ms.LKGRestoresTotal++
			r.event(EventLKGRestore, "last-known-good files put back", nil)
			r.log.Warn("last-known-good copy restored", "phase", PhaseLKG)
			return "the last-known-good files were", nil
		}
	}
	r.event(EventLKGRestore, "no last-known-good copy yet: the files from before this run were put back", nil)
	r.log.Warn("no last-known-good copy yet: the files from before this run were put back", "phase", PhaseLKG)
	return "the files from before this run were", nil
}

func selectFiles(files []FileContent, paths []string) []FileContent {
	var out []FileContent
	for _, f := range files {
		if slices.Contains(paths, f.Path) {
			out = append(out, f)
		}
	}
	return out
}

// contentHash identifies the desired content of a manager: paths, modes and bytes.
func contentHash(files []FileContent) string {
	sorted := slices.Clone(files)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	h := sha256.New()
	for _, f := range sorted {
		h.Write([]byte(f.Path))
		h.Write([]byte{0})
		h.Write([]byte(strconv.FormatUint(uint64(f.Mode.Perm()), 8)))
		h.Write([]byte{0})
		h.Write([]byte(strconv.Itoa(len(f.Data))))
		h.Write([]byte{0})
		h.Write(f.Data)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// configScrubber knows every secret of the configuration: URL passwords and
// secret query values of sources and reload URLs, and all header values.
func configScrubber(cfg *Config) *Scrubber {
	s := NewScrubber()
	for _, m := range cfg.Managers {
		for _, f := range m.Files {
			s.Add(Secrets(f.Source)...)
			for _, v := range f.Headers {
				s.Add(v)
			}
		}
		if m.Reload != nil {
			s.Add(Secrets(m.Reload.URL)...)
			for _, v := range m.Reload.Headers {
				s.Add(v)
			}
		}
	}
	return s
}
