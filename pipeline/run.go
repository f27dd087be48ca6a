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
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/butler-sre/butler/pipeline/config"
	"github.com/butler-sre/butler/pipeline/fetch"
	"github.com/butler-sre/butler/pipeline/health"
	"github.com/butler-sre/butler/pipeline/notify"
	"github.com/butler-sre/butler/pipeline/redact"
	"github.com/butler-sre/butler/pipeline/state"
	"github.com/butler-sre/butler/pipeline/write"
)

// ErrFailed is returned by Run when at least one manager is not in step after the run.
var ErrFailed = errors.New("not every manager is in step")

// ErrStateOwned is returned when the state directory keeps the state of
// another configuration: each configuration needs a state_dir of its own,
// or their runs would erase each other's state.
var ErrStateOwned = errors.New("the state directory belongs to another configuration")

// ErrInterrupted is the cause a caller gives when it cancels a run on a signal
// (context.WithCancelCause): the run starts nothing new, lets a reload already
// under way finish within Options.StopGrace or puts its files back, records
// everything, and returns an error wrapping the cause.
var ErrInterrupted = errors.New("interrupted")

// DefaultStopGrace is how long a reload under way may take after an interruption.
const DefaultStopGrace = 5 * time.Second

// afterRunTimeout bounds the notifications and the last ping, which run after
// the run's own context may be over (deadline, signal).
const afterRunTimeout = 15 * time.Second

// pendingKept bounds the undelivered changes a channel keeps, so that a
// channel down for weeks does not grow the state without end.
const pendingKept = 200

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

// Pinger is the heartbeat of a run; notify.Pinger is the real one.
type Pinger interface {
	Start(ctx context.Context) error
	Finish(ctx context.Context, ok bool) error
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
	// KeepConfig is a remote configuration that was fetched and passed the
	// checks: the run keeps it in the state directory once it holds the lock,
	// with KeepConfigSignature when it was signed.
	KeepConfig, KeepConfigSignature []byte

	// NotifyTLS is the TLS configuration of STARTTLS to the mail server; nil
	// means the system's roots (tests give their own CA).
	NotifyTLS *tls.Config
	// Pinger delivers the heartbeat; nil builds it from [notify] ping_url.
	Pinger Pinger
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

// Run runs every phase once for the selected managers of cfg: the story of
// one run. It returns an error wrapping state.ErrLocked when another run holds
// the lock, one wrapping config.ErrInvalid for an unknown --manager, and one
// wrapping ErrFailed when some manager is not in step.
func Run(ctx context.Context, cfg *config.Config, opts Options) (*Result, error) {
	opts.defaults()
	selected, err := selectManagers(cfg, opts.Managers)
	if err != nil {
		return nil, err
	}
	scrub := configScrubber(cfg)
	log := slog.New(redact.NewHandler(opts.Logger.Handler(), scrub))
	if err := splay(ctx, cfg, opts, log); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, runTimeout(cfg, opts))
	defer cancel()
	if opts.DryRun {
		return dryRun(ctx, cfg, selected, opts, log, scrub)
	}

	r, err := begin(cfg, opts, log, scrub)
	if err != nil {
		return nil, err
	}
	defer r.close()
	r.pingStart(ctx)
	res := &Result{Start: r.start}
	res.Managers = r.each(selected, func(m *managerRun) ManagerResult { return m.sync(ctx) })
	return res, r.finish(ctx, res, selected)
}

// splay waits a random time in [0, splay) before the run starts.
func splay(ctx context.Context, cfg *config.Config, opts Options, log *slog.Logger) error {
	max := cfg.Butler.Splay
	if opts.Splay > 0 {
		max = opts.Splay
	}
	if max <= 0 {
		return nil
	}
	wait := opts.Jitter(max)
	log.Debug("splay", "wait", wait.String())
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

// runTimeout is the deadline of the whole run.
func runTimeout(cfg *config.Config, opts Options) time.Duration {
	if opts.Timeout > 0 {
		return opts.Timeout
	}
	return cfg.Butler.Timeout
}

// run is one sync run: what its managers share, and what it records.
type run struct {
	cfg     *config.Config
	opts    Options
	log     *slog.Logger
	scrub   *redact.Scrubber
	start   time.Time
	sd      *state.Dir // nil in a dry run or a render: nothing is written
	st      *state.State
	tmp     string // staging area
	fetcher *fetch.Fetcher
	cache   *fetch.Cache  // nil in a dry run or a render: they keep nothing
	sem     chan struct{} // fetches at once, over all managers
	pinger  Pinger
}

// begin takes the lock, marks the run as under way, loads the state and
// prepares the staging area.
func begin(cfg *config.Config, opts Options, log *slog.Logger, scrub *redact.Scrubber) (_ *run, err error) {
	sd, err := state.Open(cfg.Butler.StateDir)
	if err != nil {
		return nil, err
	}
	var cache *fetch.Cache
	defer func() {
		if err != nil {
			if cache != nil {
				_ = cache.Close()
			}
			_ = sd.Close()
		}
	}()
	start := opts.Now()
	if len(opts.KeepConfig) > 0 {
		err := sd.WriteFile(keptConfigName, opts.KeepConfig)
		if err == nil && len(opts.KeepConfigSignature) > 0 {
			err = sd.WriteFile(keptSigName, opts.KeepConfigSignature)
		}
		if err != nil {
			log.Error("cannot keep the configuration for the runs that cannot fetch it", "phase", "config", "error", err)
		}
	}
	if err := sd.WriteMarker(start, runTimeout(cfg, opts)); err != nil {
		log.Warn("cannot record the running sync for butler status", "phase", "state", "error", err)
	}
	// Every run reads the state and the cache's indexes: at once.
	cache, cacheErr := fetch.OpenCache(sd.CacheDir())
	var indexes sync.WaitGroup
	if cacheErr == nil {
		indexes.Go(func() {
			names := make([]string, len(cfg.Managers))
			for i, m := range cfg.Managers {
				names[i] = m.Name
			}
			cache.Load(names)
		})
	}
	st, warning, err := sd.Load(start)
	indexes.Wait()
	if err != nil {
		return nil, err
	}
	if warning != nil {
		log.Warn("state file moved aside", "phase", "state", "error", warning)
	}
	if st.Owner != "" && st.Owner != cfg.Identity {
		return nil, fmt.Errorf("%w: %s keeps the state of %s, not of %s: give each configuration its own [butler] state_dir (or --state-dir)",
			ErrStateOwned, cfg.Butler.StateDir, st.Owner, cfg.Identity)
	}
	st.Owner = cfg.Identity
	st.Prune(cfg)
	st.RecordStart(start, cfg)
	st.ConfigFetched = opts.ConfigFetched
	tmp, err := sd.TmpDir()
	if err != nil {
		return nil, err
	}
	r := newRun(cfg, opts, log, scrub, st, tmp)
	r.start, r.sd = start, sd
	if cacheErr != nil {
		log.Warn("cannot use the cache: every fetch is a plain one", "phase", PhaseFetch, "error", cacheErr)
	} else {
		r.cache = cache
		r.pruneCache()
	}
	r.pinger = opts.Pinger
	if r.pinger == nil && cfg.Notify.PingURL != "" {
		r.pinger = &notify.Pinger{URL: cfg.Notify.PingURL, Client: opts.HTTPClient}
	}
	return r, nil
}

// newRun prepares what the managers of one run share.
func newRun(cfg *config.Config, opts Options, log *slog.Logger, scrub *redact.Scrubber, st *state.State, tmp string) *run {
	return &run{
		cfg: cfg, opts: opts, log: log, scrub: scrub, st: st, tmp: tmp,
		fetcher: fetch.New(fetch.Config{
			Schemes:     cfg.Butler.Schemes,
			MaxFileSize: cfg.Butler.MaxFileSize,
			TempDir:     tmp,
			HTTPClient:  opts.HTTPClient,
			Concurrency: cfg.Butler.Concurrency,
		}),
		sem: make(chan struct{}, cfg.Butler.Concurrency),
	}
}

// pruneCache drops the cache of managers no longer configured; each
// manager prunes its own entries once it knows its files (pruneEntries).
// It is best effort: a stale entry is only disk space.
func (r *run) pruneCache() {
	names, err := r.cache.Managers()
	if err != nil {
		r.log.Warn("cannot prune the cache", "phase", PhaseFetch, "error", err)
		return
	}
	for _, name := range names {
		if r.cfg.Manager(name) != nil {
			continue
		}
		if err := r.cache.Prune(name, nil); err != nil {
			r.log.Warn("cannot prune the cache", "phase", PhaseFetch, "manager", name, "error", err)
		}
	}
}

// close clears the staging area and the run marker and releases the lock.
func (r *run) close() {
	if err := r.fetcher.Close(); err != nil {
		r.log.Warn("cannot remove the git checkouts", "phase", PhaseFetch, "error", err)
	}
	if r.cache != nil {
		_ = r.cache.Close()
	}
	if err := r.sd.RemoveMarker(); err != nil {
		r.log.Warn("cannot clear the running sync", "phase", "state", "error", err)
	}
	if err := os.RemoveAll(r.tmp); err != nil {
		r.log.Warn("cannot clear the staging area", "phase", "state", "error", err)
	}
	if err := r.sd.Close(); err != nil {
		r.log.Warn("cannot release the state directory", "phase", "state", "error", err)
	}
}

// pingStart announces the run to the heartbeat.
func (r *run) pingStart(ctx context.Context) {
	if r.pinger == nil {
		return
	}
	if err := r.pinger.Start(ctx); err != nil {
		r.log.Warn("heartbeat ping failed", "phase", "notify", "error", err)
	}
}

// each runs phases for every manager at once and collects the results.
func (r *run) each(managers []*config.Manager, phases func(*managerRun) ManagerResult) []ManagerResult {
	runs := make([]*managerRun, len(managers))
	for i, m := range managers {
		runs[i] = r.manager(m)
	}
	results := make([]ManagerResult, len(managers))
	var wg sync.WaitGroup
	for i, m := range runs {
		wg.Go(func() { results[i] = phases(m) })
	}
	wg.Wait()
	return results
}

// finish records the run: health and notifications, the state, the marks,
// the textfile and the last ping. It returns the run's error.
func (r *run) finish(ctx context.Context, res *Result, selected []*config.Manager) error {
	end := r.opts.Now()
	res.Duration = end.Sub(r.start)
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
		r.log.Warn("run interrupted", "phase", "run", "error", interrupted)
	}
	r.st.RecordRun(r.start, end, success)
	if r.cache != nil {
		if err := r.cache.Save(); err != nil {
			r.log.Warn("cannot save the cache index: the next fetches are plain ones", "phase", PhaseFetch, "error", err)
		}
	}
	after, cancel := context.WithTimeout(context.WithoutCancel(ctx), afterRunTimeout)
	defer cancel()
	r.notify(after, end)

	var errs []error
	// The textfile is written while the state is saved, and replaces the
	// old one once the state is.
	metrics := stageMetrics(r.cfg.Butler.Textfile, r.st, r.opts.Build)
	saveErr := r.sd.Save(r.st)
	metrics.wait()
	if saveErr != nil {
		r.log.Error("cannot save the state", "phase", "state", "error", saveErr)
		errs = append(errs, saveErr)
		success = false
		r.st.Run.Success = false
	} else {
		// The saved state now holds what the marks stood for.
		for _, m := range selected {
			if err := r.sd.ClearWriting(m.Name); err != nil {
				r.log.Warn("cannot clear the writing mark", "phase", "state", "manager", m.Name, "error", err)
			}
		}
	}
	if err := metrics.finish(r.st, saveErr != nil); err != nil {
		r.log.Error("cannot write the textfile", "phase", "textfile", "error", err)
		errs = append(errs, err)
		success = false
	}
	if r.pinger != nil {
		if err := r.pinger.Finish(after, success); err != nil {
			r.log.Warn("heartbeat ping failed", "phase", "notify", "error", err)
		}
	}
	if interrupted != nil {
		errs = append(errs, interrupted)
	}
	if !success || len(errs) > 0 {
		return errors.Join(append([]error{ErrFailed}, errs...)...)
	}
	return nil
}

// channels are the configured notification channels.
func (r *run) channels() []notify.Channel {
	var out []notify.Channel
	n := r.cfg.Notify
	if n.Webhook != nil {
		prefix := config.DefaultSubject
		if n.Email != nil {
			prefix = n.Email.Subject
		}
		out = append(out, &notify.Webhook{Config: *n.Webhook, SubjectPrefix: prefix, Client: r.opts.HTTPClient})
	}
	if n.Email != nil {
		out = append(out, &notify.Email{Config: *n.Email, TLSConfig: r.opts.NotifyTLS})
	}
	return out
}

// notify judges every manager's health, and when some changed sends one
// message per channel with the changes and every current problem. A channel
// that fails keeps its undelivered changes and gets them with its next
// message, tried every run until delivered; a failure is logged and counted,
// and changes nothing else.
func (r *run) notify(ctx context.Context, now time.Time) {
	changes := r.st.Judge(r.cfg, now)
	for _, c := range changes {
		r.log.Info("health changed", "manager", c.Manager, "phase", "health", "from", c.From.String(), "to", c.To.String(), "reason", c.Reason)
	}
	problems := r.st.Problems(r.cfg)
	old := r.st.Notify.Pending
	r.st.Notify.Pending = nil
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, ch := range r.channels() {
		pending := append(slices.Clone(old[ch.Name()]), changes...)
		if len(pending) == 0 {
			continue
		}
		wg.Go(func() {
			msg := notify.Message{Host: r.opts.Hostname, Time: now, Changes: pending, Problems: problems}
			err := ch.Send(ctx, msg)
			if err == nil {
				return
			}
			r.log.Warn("notification not delivered, kept for the next run", "phase", "notify", "channel", ch.Name(), "error", err)
			if len(pending) > pendingKept {
				pending = pending[len(pending)-pendingKept:]
			}
			mu.Lock()
			defer mu.Unlock()
			if r.st.Notify.Failures == nil {
				r.st.Notify.Failures = map[string]int64{}
			}
			r.st.Notify.Failures[ch.Name()]++
			if r.st.Notify.Pending == nil {
				r.st.Notify.Pending = map[string][]health.Change{}
			}
			r.st.Notify.Pending[ch.Name()] = pending
		})
	}
	wg.Wait()
}

// RecordFailedRun writes the metrics of a run that could not start (a configuration
// error): the last state with butler_run_success 0. It is a best effort: it does
// nothing when the state directory is locked.
func RecordFailedRun(b config.Butler, build BuildInfo, now func() time.Time) error {
	if b.Textfile == "" {
		return nil
	}
	sd, err := state.Open(b.StateDir)
	if err != nil {
		return err
	}
	defer sd.Close()
	start := now()
	st, _, err := sd.Load(start)
	if err != nil {
		return err
	}
	st.RecordRun(start, now(), false)
	if err := sd.Save(st); err != nil {
		return err
	}
	return WriteMetrics(b.Textfile, st, build)
}

func selectManagers(cfg *config.Config, names []string) ([]*config.Manager, error) {
	if len(names) == 0 {
		return cfg.Managers, nil
	}
	var out []*config.Manager
	for _, m := range cfg.Managers {
		if slices.Contains(names, m.Name) {
			out = append(out, m)
		}
	}
	for _, n := range names {
		if cfg.Manager(n) == nil {
			return nil, fmt.Errorf("%w: --manager %s: no such manager in %s", config.ErrInvalid, n, cfg.Source)
		}
	}
	return out, nil
}

// contentHash identifies the desired content of a manager: paths, modes and bytes.
func contentHash(files []write.File) string {
	sorted := slices.Clone(files)
	slices.SortFunc(sorted, func(a, b write.File) int { return strings.Compare(a.Path, b.Path) })
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
func configScrubber(cfg *config.Config) *redact.Scrubber {
	s := redact.NewScrubber()
	for _, m := range cfg.Managers {
		for _, f := range m.Files {
			s.Add(redact.Secrets(f.Source)...)
			for _, v := range f.Headers {
				s.Add(v)
			}
		}
		if m.Reload != nil {
			s.Add(redact.Secrets(m.Reload.URL)...)
			for _, v := range m.Reload.Headers {
				s.Add(v)
			}
		}
	}
	if w := cfg.Notify.Webhook; w != nil {
		s.Add(redact.Secrets(w.URL)...)
		for _, v := range w.Headers {
			s.Add(v)
		}
	}
	if e := cfg.Notify.Email; e != nil {
		s.Add(notify.EmailSecrets(*e)...)
	}
	s.Add(redact.Secrets(cfg.Notify.PingURL)...)
	return s
}
