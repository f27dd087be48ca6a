package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	udiff "github.com/aymanbagabas/go-udiff"

	"github.com/butler-sre/butler/pipeline/config"
	"github.com/butler-sre/butler/pipeline/redact"
	"github.com/butler-sre/butler/pipeline/render"
	"github.com/butler-sre/butler/pipeline/state"
	"github.com/butler-sre/butler/pipeline/write"
)

// dryRun fetches, renders and validates the selected managers and prints a unified
// diff of every file that would change. It writes nothing: not the managers'
// files, not the state, not the textfile, and reloads nothing.
func dryRun(ctx context.Context, cfg *config.Config, selected []*config.Manager, opts Options, log *slog.Logger, scrub *redact.Scrubber) (*Result, error) {
	tmp, err := os.MkdirTemp("", "butler-dry-run-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	// The state is read (which files butler wrote, so that their deletion
	// shows) and thrown away: a dry run leaves it alone.
	st, err := state.Read(cfg.Butler.StateDir)
	if err != nil || st == nil {
		st = state.New()
	}
	r := newRun(cfg, opts, log, scrub, st, tmp)
	defer r.fetcher.Close()
	start := opts.Now()
	res := &Result{Start: start}
	res.Managers = r.each(selected, func(m *managerRun) ManagerResult { return m.diff(ctx) })
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
	if err := r.expand(ctx); err != nil {
		return r.fail(PhaseFetch, err, nil, false)
	}
	p, perr := r.prepare(ctx)
	if perr != nil {
		return r.fail(perr.phase, perr.err, nil, perr.logged)
	}
	defer p.dest.Close()
	if len(p.changed) == 0 {
		return r.ok("unchanged", nil)
	}
	var out []byte
	for _, f := range write.Select(p.files, p.changed) {
		old, exists, err := p.dest.Read(f.Path)
		if err != nil {
			return r.fail(PhaseWrite, fmt.Errorf("%s: %w", f.Path, err), p.changed, false)
		}
		name := filepath.Join(r.m.Dest, f.Path)
		out = append(out, unifiedDiff(name, exists, old, f)...)
	}
	for _, rel := range p.remove {
		old, _, err := p.dest.Read(rel)
		if err != nil {
			return r.fail(PhaseWrite, fmt.Errorf("%s: %w", rel, err), p.changed, false)
		}
		out = append(out, deletionDiff(filepath.Join(r.m.Dest, rel), old)...)
	}
	res := r.ok("diff", p.changed)
	res.diff = string(out)
	return res
}

// unifiedDiff is the diff that turns old (when exists) into f, in the form
// `diff -u` and `patch` know; a file that does not exist yet is diffed from
// /dev/null.
func unifiedDiff(name string, exists bool, old []byte, f write.File) string {
	from := name
	if !exists {
		from = "/dev/null"
	}
	to := name + " (rendered)"
	switch {
	case bytes.IndexByte(old, 0) >= 0 || bytes.IndexByte(f.Data, 0) >= 0:
		if exists && bytes.Equal(old, f.Data) {
			return modeDiff(name, f)
		}
		return "Binary files " + from + " and " + to + " differ\n"
	case exists && bytes.Equal(old, f.Data):
		return modeDiff(name, f)
	case !exists && len(f.Data) == 0:
		return fmt.Sprintf("--- %s\n+++ %s\n# new empty file\n", from, to)
	}
	return udiff.Unified(from, to, string(old), string(f.Data))
}

// deletionDiff is the diff that deletes the file name holding old: to
// /dev/null, as diff -u and patch write and read it.
func deletionDiff(name string, old []byte) string {
	if bytes.IndexByte(old, 0) >= 0 {
		return "Binary files " + name + " and /dev/null differ\n"
	}
	if len(old) == 0 {
		return fmt.Sprintf("--- %s\n+++ /dev/null\n# empty file deleted\n", name)
	}
	return udiff.Unified(name, "/dev/null", string(old), "")
}

// modeDiff says that only the mode differs.
func modeDiff(name string, f write.File) string {
	return fmt.Sprintf("--- %s\n+++ %s\n# mode becomes %04o\n", name, name, f.Mode.Perm())
}

// RenderManager fetches and renders the files of one manager (only the file at
// path when path is not empty) and returns them as sync would write them. It
// changes nothing.
func RenderManager(ctx context.Context, cfg *config.Config, manager, path string, opts Options) ([]write.File, error) {
	opts.defaults()
	m := cfg.Manager(manager)
	if m == nil {
		return nil, fmt.Errorf("%w: --manager %s: no such manager in %s", config.ErrInvalid, manager, cfg.Source)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Butler.Timeout)
	defer cancel()
	tmp, err := os.MkdirTemp("", "butler-render-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	scrub := configScrubber(cfg)
	log := slog.New(redact.NewHandler(opts.Logger.Handler(), scrub))
	run := newRun(cfg, opts, log, scrub, state.New(), tmp)
	defer run.fetcher.Close()
	m, err = expandDirs(ctx, run.fetcher, m)
	if err != nil {
		return nil, fmt.Errorf("manager %s: %s: %w", manager, PhaseFetch, err)
	}
	if path != "" {
		var only *config.File
		for _, f := range m.Files {
			if f.Path == path {
				only = f
			}
		}
		if only == nil {
			return nil, fmt.Errorf("%w: manager %s has no file %q", config.ErrInvalid, manager, path)
		}
		cp := *m
		cp.Files = []*config.File{only}
		m = &cp
	}
	r := run.manager(m)
	tc := newTemplateContext(m, opts.Hostname, render.TemplateData(m.Vars, m.Name, opts.Environ, opts.Hostname))
	raw, err := r.fetchAll(ctx, tc)
	if err != nil {
		return nil, fmt.Errorf("manager %s: %s: %s", m.Name, PhaseFetch, scrub.Scrub(err.Error()))
	}
	files, err := r.renderAll(raw, tc.data)
	if err != nil {
		return nil, fmt.Errorf("manager %s: %s: %s", m.Name, PhaseRender, scrub.Scrub(err.Error()))
	}
	return files, nil
}
