package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
)

// dryRun fetches, renders and validates the selected managers and prints a unified
// diff of every file that would change. It writes nothing: not the managers'
// files, not the state, not the textfile, and reloads nothing.
func dryRun(ctx context.Context, cfg *Config, selected []*Manager, opts Options, log *slog.Logger, scrub *Scrubber) (*Result, error) {
	tmp, err := os.MkdirTemp("", "butler-dry-run-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	fetcher := NewFetcher(FetcherConfig{
		Schemes:     cfg.Butler.Schemes,
		MaxFileSize: cfg.Butler.MaxFileSize,
		TempDir:     tmp,
		HTTPClient:  opts.HTTPClient,
	})
	sem := make(chan struct{}, cfg.Butler.Concurrency)
	st := NewState() // thrown away: a dry run leaves the state alone
	start := opts.Now()
	res := &Result{Start: start, Managers: make([]ManagerResult, len(selected))}
	var wg sync.WaitGroup
	for i, m := range selected {
		ms := st.Manager(m.Name)
		for _, f := range m.Files {
			ms.File(f.Path)
		}
		r := &managerRun{m: m, ms: ms, opts: opts, fetcher: fetcher, sem: sem, tmp: tmp, scrub: scrub, log: log.With("manager", m.Name)}
		wg.Go(func() { res.Managers[i] = r.diff(ctx) })
	}
	wg.Wait()
	res.Duration = opts.Now().Sub(start)

	failed := false
	for _, mr := range res.Managers {
		if mr.Err != nil {
			failed = true
		}
		if mr.Outcome == "diff" {
			fmt.Fprint(opts.Stdout, scrub.Scrub(mr.diff))
		}
	}
	if failed {
		return res, ErrFailed
	}
	return res, nil
}

// diff runs the phases up to the check and computes the diff against the disk.
func (r *managerRun) diff(ctx context.Context) ManagerResult {
	raw, err := r.fetchAll(ctx)
	if err != nil {
		return r.fail(PhaseFetch, err, nil)
	}
	files, err := r.renderAll(raw)
	if err != nil {
		return r.fail(PhaseRender, err, nil)
	}
	if err := r.check(ctx, files); err != nil {
		return r.fail(PhaseCheck, err, nil)
	}
	changed, err := Changed(r.m.Dest, files)
	if err != nil {
		return r.fail(PhaseWrite, err, nil)
	}
	if len(changed) == 0 {
		return r.ok("unchanged", nil)
	}
	var out []byte
	for _, f := range selectFiles(files, changed) {
		p, err := SafeJoin(r.m.Dest, f.Path)
		if err != nil {
			return r.fail(PhaseWrite, err, changed)
		}
		old, err := os.ReadFile(p)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return r.fail(PhaseWrite, fmt.Errorf("%s: %w", f.Path, err), changed)
		}
		name := filepath.Join(r.m.Dest, f.Path)
		d := UnifiedDiff(name, name, old, f.Data)
		if d == "" {
			// Only the mode differs.
			d = fmt.Sprintf("--- %s\n+++ %s\n# mode becomes %04o\n", name, name, f.Mode.Perm())
		}
		out = append(out, d...)
	}
	res := r.ok("diff", changed)
	res.diff = string(out)
	return res
}

// RenderManager fetches and renders the files of one manager (only the file at
// path when path is not empty) and returns them as sync would write them. It
// changes nothing.
func RenderManager(ctx context.Context, cfg *Config, manager, path string, opts Options) ([]FileContent, error) {
	opts.defaults()
	m := cfg.Manager(manager)
	if m == nil {
		return nil, fmt.Errorf("%w: --manager %s: no such manager in %s", ErrConfig, manager, cfg.Source)
	}
	if path != "" {
		var only *File
		for _, f := range m.Files {
			if f.Path == path {
				only = f
			}
		}
		if only == nil {
			return nil, fmt.Errorf("%w: manager %s has no file %q", ErrConfig, manager, path)
		}
		cp := *m
		cp.Files = []*File{only}
		m = &cp
	}
	tmp, err := os.MkdirTemp("", "butler-render-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	ctx, cancel := context.WithTimeout(ctx, cfg.Butler.Timeout)
	defer cancel()
	scrub := configScrubber(cfg)
	st := NewState()
	ms := st.Manager(m.Name)
	for _, f := range m.Files {
		ms.File(f.Path)
	}
	r := &managerRun{
		m: m, ms: ms, opts: opts, tmp: tmp, scrub: scrub,
		log:     slog.New(newScrubHandler(opts.Logger.Handler(), scrub)).With("manager", m.Name),
		sem:     make(chan struct{}, cfg.Butler.Concurrency),
		fetcher: NewFetcher(FetcherConfig{Schemes: cfg.Butler.Schemes, MaxFileSize: cfg.Butler.MaxFileSize, TempDir: tmp, HTTPClient: opts.HTTPClient}),
	}
	raw, err := r.fetchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("manager %s: %s: %w", m.Name, PhaseFetch, scrubError(scrub, err))
	}
	files, err := r.renderAll(raw)
	if err != nil {
		return nil, fmt.Errorf("manager %s: %s: %w", m.Name, PhaseRender, scrubError(scrub, err))
	}
	return files, nil
}

// scrubError returns err with every known secret removed from its text.
func scrubError(s *Scrubber, err error) error {
	return errors.New(s.Scrub(err.Error()))
}
