package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/butler-sre/butler/pipeline/atomicfile"
	"github.com/butler-sre/butler/pipeline/command"
	"github.com/butler-sre/butler/pipeline/config"
	"github.com/butler-sre/butler/pipeline/fetch"
	"github.com/butler-sre/butler/pipeline/health"
	"github.com/butler-sre/butler/pipeline/lkg"
	"github.com/butler-sre/butler/pipeline/reload"
	"github.com/butler-sre/butler/pipeline/render"
	"github.com/butler-sre/butler/pipeline/state"
	"github.com/butler-sre/butler/pipeline/verify"
	"github.com/butler-sre/butler/pipeline/write"
)

// Reloader asks a manager to load its configuration again: reload.HTTP and
// reload.Command.
type Reloader interface {
	Reload(ctx context.Context) reload.Result
}

// managerRun carries one manager through the phases. It only touches its own
// ManagerState, so managers run concurrently.
type managerRun struct {
	run *run // what the managers of the run share
	m   *config.Manager
	ms  *state.ManagerState
	log *slog.Logger // the run's logger with the manager's name

	mu     sync.Mutex
	signed map[string]verify.Result // by path: the signatures verified this run
}

// manager prepares the run of m, its state entries made beforehand so that
// managers running at once never write the same map.
func (r *run) manager(m *config.Manager) *managerRun {
	ms := r.st.Manager(m.Name)
	for _, f := range m.Files {
		ms.File(f.Path)
	}
	return &managerRun{run: r, m: m, ms: ms, log: r.log.With("manager", m.Name)}
}

// fail records a failed phase and returns the manager's result. logged says
// that the failure's details were logged already, file by file.
func (r *managerRun) fail(phase string, err error, changed []string, logged bool) ManagerResult {
	err = fmt.Errorf("manager %s: %s: %w", r.m.Name, phase, err)
	r.ms.InStep = false
	r.ms.Phase = phase
	r.ms.Error = r.run.scrub.Scrub(err.Error())
	if !logged {
		r.log.Error("manager failed", "phase", phase, "error", r.ms.Error)
	}
	return ManagerResult{Name: r.m.Name, Outcome: "failed", Phase: phase, Err: err, Changed: changed}
}

func (r *managerRun) ok(outcome string, changed []string) ManagerResult {
	if r.run.sd != nil {
		// What is on disk now is what butler wants there: butler owns it,
		// and what it no longer wants is gone (or kept, with prune = false,
		// and still known as butler's).
		if r.m.Prune {
			r.ms.Forget(r.ms.Unwanted(r.m.Paths()))
		}
		r.ms.MarkWritten(r.m.Paths())
		for p, res := range r.signed {
			if res.HasTimestamp {
				r.ms.Files[p].SignedAt = res.Timestamp
			}
		}
	}
	r.ms.InStep = true
	r.ms.Phase = ""
	r.ms.Error = ""
	return ManagerResult{Name: r.m.Name, InStep: true, Outcome: outcome, Changed: changed}
}

// phaseError is the failure of the phases that change nothing; logged is set
// when each file's failure was logged as it happened.
type phaseError struct {
	phase  string
	err    error
	logged bool
}

// prepared is what the phases that change nothing leave for the write.
type prepared struct {
	dest    *write.Dest
	files   []write.File
	changed []string // paths written or removed
	remove  []string // files butler wrote that are no longer wanted, to delete
	// known is set when every file was known to be in step without being
	// rendered: files and changed are empty then.
	known bool
}

// sync is the story of one manager's run: fetch, render and validate, check,
// then write, reload, and keep or restore the last-known-good copy.
func (r *managerRun) sync(ctx context.Context) ManagerResult {
	r.ms.Ran = true
	if err := r.expand(ctx); err != nil {
		return r.fail(PhaseFetch, err, nil, false)
	}
	r.pruneCache()
	if r.run.sd.Writing(r.m.Name) {
		// A run was killed while changing this manager's files: what it
		// wrote may not be loaded, nor kept, whatever the disk shows now.
		r.log.Warn("an earlier run stopped while changing the files; the manager is reloaded", "phase", PhaseWrite)
		r.ms.PendingReload = true
	}
	p, perr := r.prepare(ctx)
	if perr != nil {
		return r.fail(perr.phase, perr.err, nil, perr.logged)
	}
	defer p.dest.Close()
	// A run killed while writing leaves temporary files beside the targets;
	// this run holds the lock, so they are stale: clear them.
	if err := p.dest.RemoveStale(r.m.Paths()); err != nil {
		r.log.Warn("cannot remove stale temporary files", "phase", PhaseWrite, "error", err)
	}
	if p.known {
		r.log.Debug("unchanged", "phase", PhaseWrite)
		return r.ok("unchanged", nil)
	}
	hash := contentHash(p.files)

	if hash == r.ms.Refused && !r.run.opts.Force {
		// No reload storm: this exact content was refused before.
		return r.fail(PhaseReload, fmt.Errorf("this content was refused before (reload status %d) and is not applied again until the source or vars change; run with --force to try it anyway",
			r.ms.ReloadStatus), p.changed, false)
	}
	// The desired content is not the refused one (any more): the refusal is over.
	r.ms.Refused = ""
	if len(p.changed) == 0 && !r.ms.PendingReload && !r.run.opts.Force {
		r.log.Debug("unchanged", "phase", PhaseWrite)
		if r.ms.LKGPending && r.ms.Applied == hash {
			// What is on disk was applied, but its copy could not be stored.
			res := r.keep(p.files, nil)
			if res.InStep {
				res.Outcome = "unchanged"
			}
			return res
		}
		return r.ok("unchanged", nil)
	}
	if ctx.Err() != nil {
		// Interrupted or out of time: start nothing new.
		return r.fail(PhaseWrite, fmt.Errorf("nothing written: %w", context.Cause(ctx)), p.changed, false)
	}
	toWrite := p.files
	if !r.run.opts.Force {
		toWrite = write.Select(p.files, p.changed)
	}
	if err := r.run.sd.MarkWriting(r.m.Name); err != nil {
		return r.fail(PhaseWrite, err, p.changed, false)
	}
	snap, err := r.write(p.dest, toWrite, p.remove)
	if err != nil {
		return r.fail(PhaseWrite, err, p.changed, false)
	}
	if r.m.Reload == nil {
		r.ms.Applied, r.ms.Refused, r.ms.PendingReload = hash, "", false
		return r.keep(p.files, p.changed)
	}
	return r.reload(ctx, p, hash, snap)
}

// pruneCache drops the cache entries of sources the manager no longer has.
func (r *managerRun) pruneCache() {
	if r.run.cache == nil {
		return
	}
	keep := make(map[string]bool, len(r.m.Files))
	for _, f := range r.m.Files {
		keep[fetch.Key(f.Source, f.Headers)] = true
	}
	if err := r.run.cache.Prune(r.m.Name, keep); err != nil {
		r.log.Warn("cannot prune the cache", "phase", PhaseFetch, "error", err)
	}
}

// expand adds the files of the manager's directory sources (see expandDirs)
// and drops the state of files gone from their listings.
func (r *managerRun) expand(ctx context.Context) error {
	if len(r.m.Dirs) == 0 {
		return nil
	}
	m, err := expandDirs(ctx, r.run.fetcher, r.m)
	if err != nil {
		return err
	}
	r.m = m
	for _, f := range m.Files {
		r.ms.File(f.Path)
	}
	r.ms.KeepFiles(m.Paths())
	return nil
}

// prepare runs the phases that change nothing: fetch, render and validate,
// the check command, and the comparison with what is on disk. When the raw
// bodies and the template context are those of the last run and the disk
// still holds what that run left (see known), render, validation, the check
// and the comparison are not repeated: their result is known.
func (r *managerRun) prepare(ctx context.Context) (*prepared, *phaseError) {
	tmplData := render.TemplateData(r.m.Vars, r.m.Name, r.run.opts.Environ, r.run.opts.Hostname)
	tc := newTemplateContext(r.m, r.run.opts.Hostname, tmplData)
	raw, err := r.fetchAll(ctx, tc)
	r.recordFetchStreak(err)
	if err != nil {
		return nil, &phaseError{PhaseFetch, err, true}
	}
	dest, err := write.Open(r.m.Dest)
	if err != nil {
		return nil, &phaseError{phase: PhaseWrite, err: err}
	}
	var remove []string
	if r.m.Prune {
		// Only files butler wrote, and only those still there.
		if remove, err = dest.Removable(r.ms.Unwanted(r.m.Paths())); err != nil {
			_ = dest.Close()
			return nil, &phaseError{phase: PhaseWrite, err: err}
		}
	}
	if len(remove) == 0 && r.known(raw, dest) {
		return &prepared{dest: dest, known: true}, nil
	}
	p, perr := r.prepareAll(ctx, raw, tc, dest)
	if perr != nil {
		_ = dest.Close()
		return nil, perr
	}
	p.remove = remove
	p.changed = append(p.changed, remove...)
	return p, nil
}

// prepareAll is prepare's path when something may have changed.
func (r *managerRun) prepareAll(ctx context.Context, raw []fetched, tc *templateContext, dest *write.Dest) (*prepared, *phaseError) {
	if err := r.loadBodies(ctx, raw); err != nil {
		return nil, &phaseError{PhaseFetch, err, true}
	}
	files, err := r.renderAll(raw, tc.data)
	if err != nil {
		return nil, &phaseError{PhaseRender, err, true}
	}
	if err := r.check(ctx, files); err != nil {
		return nil, &phaseError{phase: PhaseCheck, err: err}
	}
	changed, err := dest.Changed(files)
	if err != nil {
		return nil, &phaseError{phase: PhaseWrite, err: err}
	}
	// What rendered and passed is known now; what is on disk already is
	// known to be in step from its stat until someone changes it.
	for i, f := range r.m.Files {
		fs := r.ms.Files[f.Path]
		fs.Input, fs.Output, fs.Env = raw[i].input, hashBytes(files[i].Data), nil
		if f.Template && raw[i].input != "" {
			// What this body may use of the environment, for the next runs.
			fs.Env = render.EnvNames(raw[i].body, r.run.opts.Environ)
			fs.Input = inputHash(f, raw[i].sum, tc.hash(fs.Env))
		}
		fs.Disk = write.Stat{}
	}
	r.recordDisk(dest, write.Select(files, notIn(paths(files), changed)))
	return &prepared{dest: dest, files: files, changed: changed}, nil
}

// known reports whether every file is in step without rendering it: its
// input is the one last rendered and passed, and the disk's stat is the one
// recorded once the file held that output. A run that owes a reload, holds a
// refused content, an LKG copy to store, or is forced never takes this path.
func (r *managerRun) known(raw []fetched, dest *write.Dest) bool {
	if r.run.opts.Force || r.ms.PendingReload || r.ms.Refused != "" || r.ms.LKGPending {
		return false
	}
	for i, f := range r.m.Files {
		fs := r.ms.Files[f.Path]
		if fs.Input == "" || fs.Input != raw[i].input || fs.Output == "" || !fs.Valid || !fs.Mustache || fs.Disk == (write.Stat{}) {
			r.log.Debug("rendered again", "file", f.Path, "phase", PhaseRender, "reason", "its input changed")
			return false
		}
		st, ok, err := dest.Stat(f.Path)
		if err != nil || !ok || st != fs.Disk {
			r.log.Debug("rendered again", "file", f.Path, "phase", PhaseRender, "reason", "the file on disk changed")
			return false
		}
	}
	return true
}

// recordDisk notes the stat of files that hold their desired content now.
func (r *managerRun) recordDisk(dest *write.Dest, files []write.File) {
	for _, f := range files {
		st, ok, err := dest.Stat(f.Path)
		if err == nil && ok {
			r.ms.Files[f.Path].Disk = st
		}
	}
}

// forgetDisk drops what is known of the disk: after a restore it holds
// other content than the desired one.
func (r *managerRun) forgetDisk() {
	for _, fs := range r.ms.Files {
		fs.Disk = write.Stat{}
	}
}

// recordFetchStreak notes the start and the end of a run of failed fetches.
func (r *managerRun) recordFetchStreak(err error) {
	now := r.run.opts.Now()
	switch {
	case err != nil && r.ms.FetchFailingSince.IsZero():
		r.ms.FetchFailingSince = now
		r.event(state.EventFetchFailing, "fetches started failing: "+r.run.scrub.Scrub(err.Error()), nil)
	case err == nil && !r.ms.FetchFailingSince.IsZero():
		r.event(state.EventFetchRecovered, fmt.Sprintf("fetches succeed again after failing since %s", health.Stamp(r.ms.FetchFailingSince)), nil)
		r.ms.FetchFailingSince = time.Time{}
	}
}

// event adds an entry to the manager's history.
func (r *managerRun) event(kind, msg string, files []string) {
	r.ms.AddEvent(r.run.cfg.Health.History, state.Event{Time: r.run.opts.Now(), Kind: kind, Message: msg, Files: files})
}

// fetched is one file's raw content as the fetch left it.
type fetched struct {
	body  []byte // nil while the cache holds it (see loadBodies)
	sum   string // hex sha256 of the body
	key   string // the cache entry's key
	input string // what the file renders from: body, template context, settings
}

// fetchAll fetches every file of the manager, at most `concurrency` at once over
// all managers, each conditional on the copy in the cache. It returns the
// failures after every fetch has finished, so every file's metrics are set.
func (r *managerRun) fetchAll(ctx context.Context, tc *templateContext) ([]fetched, error) {
	out := make([]fetched, len(r.m.Files))
	errs := make([]error, len(r.m.Files))
	// A few workers take the files in turn, rather than a goroutine (and
	// its stack) per file: a manager may have thousands.
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(len(r.m.Files), cap(r.run.sem)) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(r.m.Files); i = int(next.Add(1) - 1) {
				out[i], errs[i] = r.fetchFile(ctx, tc, r.m.Files[i])
			}
		})
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// fetchFile is fetchAll's work for one file, at most `concurrency` at once
// over all managers.
func (r *managerRun) fetchFile(ctx context.Context, tc *templateContext, f *config.File) (fetched, error) {
	select {
	case r.run.sem <- struct{}{}:
	case <-ctx.Done():
		err := fmt.Errorf("%s: %w", f.Path, ctx.Err())
		r.recordFetch(f, fetch.Result{}, err)
		return fetched{}, err
	}
	defer func() { <-r.run.sem }()
	got, err := r.fetchOne(ctx, f, !r.run.opts.Force)
	if err == nil && r.m.Verify != nil {
		err = r.verify(ctx, f, &got)
	}
	if err != nil {
		return got, err
	}
	fs := r.ms.Files[f.Path]
	got.input = inputHash(f, got.sum, tc.hash(fs.Env))
	if fs.Input == got.input && got.key != "" {
		got.body = nil // the cache holds it, should it be needed
	}
	return got, nil
}

// fetchOne fetches one file, conditional on the cached copy when cond is set,
// and keeps what it got in the cache. The body of a 304 stays in the cache
// until it is needed (loadBodies).
func (r *managerRun) fetchOne(ctx context.Context, f *config.File, cond bool) (fetched, error) {
	c := r.run.cache
	got := fetched{}
	var entry fetch.IndexEntry
	have := false
	if c != nil {
		got.key = fetch.Key(f.Source, f.Headers)
		if cond {
			entry, have = c.Lookup(r.m.Name, got.key)
		}
	}
	req := fetch.Request{Source: f.Source, Headers: f.Headers}
	if have {
		req.If = entry.Validators
	}
	res, err := r.run.fetcher.Get(ctx, req)
	if err == nil && res.NotModified && res.Checksum != nil {
		// ?checksum= holds for the body actually used, cached or not.
		var body []byte
		if body, err = c.Body(r.m.Name, got.key); err == nil {
			err = res.Checksum.Verify(body)
			got.body = body
		} else {
			c.Forget(r.m.Name, got.key)
			return r.fetchOne(ctx, f, false) // a plain fetch instead
		}
	}
	if err != nil {
		err = fmt.Errorf("%s: %w", f.Path, err)
		r.recordFetch(f, res, err)
		return fetched{}, err
	}
	r.recordFetch(f, res, nil)
	if res.NotModified {
		got.sum = entry.SHA256
		return got, nil
	}
	got.body, got.sum = res.Body, hashBytes(res.Body)
	switch {
	case c == nil:
	case res.Validators.IsZero():
		// Nothing to be conditional on next time: no entry to keep.
		c.Forget(r.m.Name, got.key)
		got.key = ""
	case !have || got.sum != entry.SHA256 || res.Validators != entry.Validators:
		if err := c.Store(r.m.Name, got.key, res.Validators, res.Body); err != nil {
			r.log.Warn("cannot keep the fetched body in the cache", "file", f.Path, "phase", PhaseFetch, "error", err)
			c.Forget(r.m.Name, got.key)
			got.key = ""
		}
	}
	return got, nil
}

// verify checks the file's minisign signature, fetched from its source with
// the [verify] suffix, over the raw bytes, and refuses a file signed before
// the one last applied (a replay). It records butler_verify.
func (r *managerRun) verify(ctx context.Context, f *config.File, got *fetched) error {
	fs := r.ms.Files[f.Path]
	fs.Verified, fs.VerifyOK = true, false
	if got.body == nil {
		body, err := r.run.cache.Body(r.m.Name, got.key)
		if err != nil || hashBytes(body) != got.sum {
			fresh, ferr := r.fetchOne(ctx, f, false)
			if ferr != nil {
				return ferr
			}
			*got, body = fresh, fresh.body
		}
		got.body = body
	}
	sigSrc := r.m.Verify.SignatureSource(f.Source)
	res, err := r.run.fetcher.Get(ctx, fetch.Request{Source: sigSrc, Headers: f.Headers})
	if err != nil {
		return fmt.Errorf("%s: signature %s: %w", f.Path, path.Base(f.Path)+r.m.Verify.Suffix, err)
	}
	if len(res.Body) > verify.MaxSignatureSize {
		return fmt.Errorf("%s: signature: larger than %d bytes", f.Path, verify.MaxSignatureSize)
	}
	result, err := r.m.Verify.Keys.Verify(got.body, res.Body)
	if err == nil {
		err = verify.CheckReplay(fs.SignedAt, result)
	}
	if err != nil {
		err = fmt.Errorf("%s: %w", f.Path, err)
		r.log.Warn("signature refused", "file", f.Path, "phase", PhaseFetch, "error", err)
		return err
	}
	fs.VerifyOK = true
	r.mu.Lock()
	if r.signed == nil {
		r.signed = map[string]verify.Result{}
	}
	r.signed[f.Path] = result
	r.mu.Unlock()
	r.log.Debug("signature verified", "file", f.Path, "phase", PhaseFetch, "key", result.KeyID)
	return nil
}

// loadBodies brings back the bodies fetchAll left in the cache; an entry
// gone or spoiled since costs a plain fetch.
func (r *managerRun) loadBodies(ctx context.Context, raw []fetched) error {
	var errs []error
	for i, f := range r.m.Files {
		if raw[i].body != nil {
			continue
		}
		if raw[i].key != "" {
			body, err := r.run.cache.Body(r.m.Name, raw[i].key)
			if err == nil && hashBytes(body) == raw[i].sum {
				raw[i].body = body
				continue
			}
			r.log.Debug("cache entry not used", "file", f.Path, "phase", PhaseFetch, "error", err)
			r.run.cache.Forget(r.m.Name, raw[i].key)
		}
		got, err := r.fetchOne(ctx, f, false)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		got.input = raw[i].input
		if got.sum != raw[i].sum {
			got.input = "" // it changed meanwhile: render it as new
		}
		raw[i] = got
	}
	return errors.Join(errs...)
}

func (r *managerRun) recordFetch(f *config.File, res fetch.Result, err error) {
	fs := r.ms.Files[f.Path]
	fs.Fetched = true
	fs.RemoteStatus = res.Status
	fs.FetchesTotal++
	fs.BytesTotal += uint64(res.Bytes)
	if err != nil {
		fs.FetchFailuresTotal++
		r.log.Warn("fetch failed", "file", f.Path, "phase", PhaseFetch, "status", res.Status, "error", err)
		return
	}
	if res.NotModified {
		fs.NotModifiedTotal++
	}
	fs.RemoteTime = r.run.opts.Now()
	r.log.Debug("fetched", "file", f.Path, "phase", PhaseFetch, "status", res.Status, "bytes", res.Bytes)
}

// renderAll renders templates and validates every file; every file's metrics are
// set before the failures are returned.
func (r *managerRun) renderAll(raw []fetched, data map[string]any) ([]write.File, error) {
	var errs []error
	files := make([]write.File, 0, len(r.m.Files))
	for i, f := range r.m.Files {
		fs := r.ms.Files[f.Path]
		fs.Rendered, fs.Method = true, f.Format
		out := raw[i].body
		fs.Mustache = true
		if f.Template {
			var err error
			out, err = render.Render(raw[i].body, data, f.Delims)
			if err != nil {
				fs.Mustache, fs.Valid = false, false
				err = fmt.Errorf("%s: template: %w", f.Path, err)
				r.log.Warn("render failed", "file", f.Path, "phase", PhaseRender, "error", err)
				errs = append(errs, err)
				continue
			}
		}
		if err := render.Validate(f.Format, out); err != nil {
			fs.Valid = false
			err = fmt.Errorf("%s: invalid %w", f.Path, err)
			r.log.Warn("validation failed", "file", f.Path, "phase", PhaseRender, "error", err)
			errs = append(errs, err)
			continue
		}
		fs.Valid = true
		files = append(files, write.File{Path: f.Path, Data: out, Mode: f.Mode})
	}
	return files, errors.Join(errs...)
}

// check runs the manager's check command in a staging directory that holds the
// rendered files at their paths.
func (r *managerRun) check(ctx context.Context, files []write.File) error {
	if len(r.m.Check) == 0 {
		return nil
	}
	dir, err := os.MkdirTemp(r.run.tmp, r.m.Name+"-check-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := stage(dir, files); err != nil {
		return err
	}
	res := command.Run(ctx, r.m.Check, dir, r.m.CheckTimeout)
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

// stage writes files at their paths under the fresh directory dir.
func stage(dir string, files []write.File) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	for _, f := range files {
		if err := atomicfile.WriteFile(root, f.Path, f.Data, f.Mode, write.DirMode); err != nil {
			return err
		}
	}
	return nil
}

// write applies the changed files atomically and records the write metric.
func (r *managerRun) write(dest *write.Dest, files []write.File, remove []string) (*write.Snapshot, error) {
	snap, err := dest.Update(files, remove)
	for _, f := range files {
		fs := r.ms.Files[f.Path]
		fs.Written = true
		fs.WriteOK = err == nil
	}
	if err != nil {
		r.forgetDisk()
		return nil, err
	}
	r.recordDisk(dest, files)
	for _, f := range files {
		r.log.Info("written", "file", f.Path, "phase", PhaseWrite, "dest", r.m.Dest)
	}
	for _, p := range remove {
		r.log.Info("removed: no longer wanted", "file", p, "phase", PhaseWrite, "dest", r.m.Dest)
	}
	r.ms.LastChange = r.run.opts.Now()
	msg := fmt.Sprintf("wrote %d file(s) to %s", len(files), r.m.Dest)
	if len(remove) > 0 {
		msg += fmt.Sprintf(", removed %d", len(remove))
	}
	r.event(state.EventApplied, msg, append(paths(files), remove...))
	return snap, nil
}

// reloader builds the manager's reloader.
func (r *managerRun) reloader() Reloader {
	rl := r.m.Reload
	if rl.URL != "" {
		return &reload.HTTP{URL: rl.URL, Method: rl.Method, Headers: rl.Headers, Timeout: rl.Timeout, Retries: rl.Retries, Client: r.run.opts.HTTPClient}
	}
	return &reload.Command{Argv: rl.Command, Timeout: rl.Timeout}
}

// reload asks the manager to load the written files and acts on the answer per
// the decision after a reload.
func (r *managerRun) reload(ctx context.Context, p *prepared, hash string, snap *write.Snapshot) ManagerResult {
	// The files are written: a reload under way may finish within StopGrace
	// after an interruption or the run's deadline.
	rctx, cancel := graceContext(ctx, r.run.opts.StopGrace)
	defer cancel()
	res := r.reloader().Reload(rctx)
	r.ms.ReloadTime = r.run.opts.Now()
	r.ms.ReloadsTotal++
	r.ms.ReloadTimedOut = res.Status == 0
	msg := fmt.Sprintf("reload status %d", res.Status)
	if res.Detail != "" {
		msg += ": " + res.Detail
	}
	r.event(state.EventReload, r.run.scrub.Scrub(msg), nil)
	log := r.log.With("phase", PhaseReload, "status", res.Status)

	switch {
	case res.Status == 0 && ctx.Err() != nil:
		// Interrupted, and the reload did not finish in the grace period: put
		// the files back as they were, so the manager's disk matches what it runs.
		r.ms.Reloaded, r.ms.ReloadStatus = true, 0
		r.ms.ReloadFailuresTotal++
		r.ms.PendingReload = false
		r.forgetDisk()
		if err := snap.Restore(); err != nil {
			return r.fail(PhaseLKG, fmt.Errorf("interrupted during the reload, and putting the files back failed: %w", err), p.changed, false)
		}
		r.event(state.EventLKGRestore, "interrupted during the reload: the files from before this run were put back", nil)
		return r.fail(PhaseReload, fmt.Errorf("interrupted (%v) before the reload answered; the files from before this run were put back", context.Cause(ctx)), p.changed, false)

	case slices.Contains(r.m.Reload.Expect, res.Status):
		r.ms.Reloaded, r.ms.ReloadStatus = true, res.Status
		r.ms.Applied, r.ms.Refused, r.ms.PendingReload = hash, "", false
		log.Info("reloaded")
		return r.keep(p.files, p.changed)

	case res.Status == 0 && r.m.TimeoutOK:
		// The status keeps its previous value; the files stay; the LKG is unchanged.
		r.ms.Applied, r.ms.Refused, r.ms.PendingReload = hash, "", false
		log.Warn("reload got no response; timeout_ok is set, so the files stay and count as applied", "detail", res.Detail)
		return r.ok("applied", p.changed)

	case res.Status == 0:
		r.ms.Reloaded, r.ms.ReloadStatus = true, 0
		r.ms.ReloadFailuresTotal++
		r.ms.PendingReload = true
		return r.fail(PhaseReload, fmt.Errorf("no response (%s); the files stay and the reload is tried again next run", res.Detail), p.changed, false)

	default:
		r.ms.Reloaded, r.ms.ReloadStatus = true, res.Status
		r.ms.ReloadFailuresTotal++
		r.ms.Refused, r.ms.PendingReload = hash, false
		restored, err := r.restore(p.dest, snap)
		if err != nil {
			return r.fail(PhaseLKG, fmt.Errorf("reload refused with status %d (%s), and putting the previous files back failed: %w", res.Status, res.Detail, err), p.changed, false)
		}
		return r.fail(PhaseReload, fmt.Errorf("refused with status %d (%s); %s put back", res.Status, res.Detail, restored), p.changed, false)
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
func (r *managerRun) keep(files []write.File, changed []string) ManagerResult {
	if !r.m.LKG {
		r.ms.LKGPending = false
		return r.ok("applied", changed)
	}
	err := lkg.Store(r.run.sd.LKGDir(r.m.Name), files)
	if err != nil && !errors.Is(err, lkg.ErrCleanup) {
		r.ms.LKGPending = true
		return r.fail(PhaseLKG, fmt.Errorf("applied, but storing the last-known-good copy failed (the next run tries again): %w", err), changed, false)
	}
	if err != nil {
		r.log.Warn("last-known-good stored, but old copies remain", "phase", PhaseLKG, "error", err)
	}
	r.ms.LKGPending = false
	r.ms.LKGTime = r.run.opts.Now()
	r.log.Debug("last-known-good stored", "phase", PhaseLKG)
	return r.ok("applied", changed)
}

// restore puts back the last-known-good copy, or when there is none yet the files
// as they were before this run. It says which it did.
func (r *managerRun) restore(dest *write.Dest, snap *write.Snapshot) (string, error) {
	// First undo this run's writes (files new this run are removed), then lay the
	// LKG copy over them. The disk holds other content than the desired one
	// from now on.
	r.forgetDisk()
	if err := snap.Restore(); err != nil {
		return "", err
	}
	if r.m.LKG {
		files, ok, err := lkg.Load(r.run.sd.LKGDir(r.m.Name))
		if err != nil {
			return "", err
		}
		if ok {
			if _, err := dest.Apply(files); err != nil {
				return "", err
			}
			r.ms.LKGRestoresTotal++
			r.event(state.EventLKGRestore, "last-known-good files put back", nil)
			r.log.Warn("last-known-good copy restored", "phase", PhaseLKG)
			return "the last-known-good files were", nil
		}
	}
	r.event(state.EventLKGRestore, "no last-known-good copy yet: the files from before this run were put back", nil)
	r.log.Warn("no last-known-good copy yet: the files from before this run were put back", "phase", PhaseLKG)
	return "the files from before this run were", nil
}

// paths returns the Path of each file.
func paths(files []write.File) []string {
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = f.Path
	}
	return out
}

// inputHash identifies what a file renders from: the raw body, the template
// context and every setting of the file that decides its output.
func inputHash(f *config.File, bodySum, ctxHash string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%t\x00%q\x00%s\x00%o\x00", bodySum, f.Path, f.Template, f.Delims, f.Format, f.Mode)
	if f.Template {
		h.Write([]byte(ctxHash)) // a file that is not a template does not depend on it
	}
	return hex.EncodeToString(h.Sum(nil))
}

// templateContext is what a manager's templates render with (data), and
// what identifies it for the files that use some of it (hash).
type templateContext struct {
	data map[string]any
	env  map[string]string
	// base identifies the vars, the manager and host names, and which
	// environment variables are set (a template may fall back to another
	// name when one is not): all but the values of the environment.
	base string

	mu     sync.Mutex
	hashes map[string]string // hash by its names, joined: most files share theirs
}

func newTemplateContext(m *config.Manager, hostname string, data map[string]any) *templateContext {
	env, _ := data["env"].(map[string]string)
	return &templateContext{
		data: data,
		env:  env,
		base: hashJSON(map[string]any{"vars": m.Vars, "manager": m.Name, "host": hostname, "env": slices.Sorted(maps.Keys(env))}),
	}
}

// hash identifies the context as seen by a template that may use the
// values of the environment variables names (see render.EnvNames).
func (c *templateContext) hash(names []string) string {
	key := strings.Join(names, "\x00")
	c.mu.Lock()
	defer c.mu.Unlock()
	if h, ok := c.hashes[key]; ok {
		return h
	}
	if c.hashes == nil {
		c.hashes = map[string]string{}
	}
	c.hashes[key] = c.hashNames(names)
	return c.hashes[key]
}

// hashNames is hash, computed.
func (c *templateContext) hashNames(names []string) string {
	h := sha256.New()
	h.Write([]byte(c.base))
	for _, n := range names {
		v, set := c.env[n]
		fmt.Fprintf(h, "\x00%s\x00%t\x00%s", n, set, v)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// hashJSON is the hex sha256 of v as JSON (maps in key order).
func hashJSON(v any) string {
	data, err := json.Marshal(v)
	if err != nil {
		return "" // never equal to a recorded input: the file is rendered
	}
	return hashBytes(data)
}

// hashBytes is the hex sha256 of data.
func hashBytes(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// notIn returns the elements of all that are not in some.
func notIn(all, some []string) []string {
	skip := make(map[string]bool, len(some))
	for _, s := range some {
		skip[s] = true
	}
	var out []string
	for _, a := range all {
		if !skip[a] {
			out = append(out, a)
		}
	}
	return out
}
