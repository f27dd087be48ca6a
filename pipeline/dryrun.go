package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
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
	// The state is thrown away: a dry run leaves it alone.
	shared := newRunShared(cfg, opts, log, scrub, NewState(), nil, tmp)
	start := opts.Now()
	res := &Result{Start: start}
	res.Managers = shared.each(selected, func(r *managerRun) ManagerResult { return r.diff(ctx) })
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
	files, changed, phase, err := r.prepare(ctx)
	if err != nil {
		return r.fail(phase, err, nil)
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
		d := UnifiedDiff(name, name+" (rendered)", old, f.Data)
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
	log := slog.New(newScrubHandler(opts.Logger.Handler(), scrub))
	r := newRunShared(cfg, opts, log, scrub, NewState(), nil, tmp).manager(m)
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
