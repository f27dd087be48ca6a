package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/butler-sre/butler/pipeline/config"
	"github.com/butler-sre/butler/pipeline/redact"
	"github.com/butler-sre/butler/pipeline/source"
)

// expandDirs returns m with the files of its directory sources added, each
// at PATH/RELATIVE with the directory's settings: the listing of a directory
// decides the files of this run. An empty listing (unless allow_empty), one
// over max_files, or one that cannot be read fails the manager's fetch
// phase, so that a wrong prefix never wipes the files it had.
func expandDirs(ctx context.Context, lister Lister, m *config.Manager) (*config.Manager, error) {
	if len(m.Dirs) == 0 {
		return m, nil
	}
	cp := *m
	cp.Files = slices.Clone(m.Files)
	for _, d := range m.Dirs {
		files, err := listDir(ctx, lister, d)
		if err != nil {
			return nil, fmt.Errorf("dir %s: %w", d.Path, err)
		}
		cp.Files = append(cp.Files, files...)
	}
	return &cp, nil
}

// Lister lists a directory source in an object store: fetch.Fetcher.
type Lister interface {
	List(ctx context.Context, src string, limit int) ([]string, error)
}

// listDir lists the matching files of one directory source.
func listDir(ctx context.Context, lister Lister, d *config.Dir) ([]*config.File, error) {
	scheme, err := source.Scheme(d.Source)
	if err != nil {
		return nil, err
	}
	switch scheme {
	case "file":
		return listLocal(d)
	case "s3", "gcs", "git":
		return listStore(ctx, lister, d)
	}
	return nil, fmt.Errorf("directory sources over %s cannot be listed: use an s3 or gcs prefix, a git subdirectory or a local directory", scheme)
}

// listStore lists an s3 or gcs prefix or a git subdirectory; each object is
// a file fetched from its own source, conditionally like any other (the git
// files of a run share one checkout).
func listStore(ctx context.Context, lister Lister, d *config.Dir) ([]*config.File, error) {
	names, err := lister.List(ctx, d.Source, 100*d.MaxFiles)
	if err != nil {
		return nil, err
	}
	var rels []string
	for _, n := range names {
		if d.Matches(n) {
			rels = append(rels, n)
		}
	}
	if err := checkCount(d, rels, d.Source); err != nil {
		return nil, err
	}
	base, query, hasQuery := strings.Cut(d.Source, "?")
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	files := make([]*config.File, 0, len(rels))
	for _, rel := range rels {
		src := base + (&url.URL{Path: rel}).EscapedPath()
		if hasQuery {
			src += "?" + query
		}
		f, err := d.File(rel, src)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	return files, nil
}

// checkCount refuses an empty listing (unless allow_empty) and one over
// max_files, and sorts the paths.
func checkCount(d *config.Dir, rels []string, where string) error {
	switch {
	case len(rels) == 0 && !d.AllowEmpty:
		return fmt.Errorf("no file matches in %s (a wrong path must not wipe the files: set allow_empty = true if none is right)", redact.URL(where))
	case len(rels) > d.MaxFiles:
		return fmt.Errorf("%d files match in %s, more than max_files = %d", len(rels), redact.URL(where), d.MaxFiles)
	}
	slices.Sort(rels)
	return nil
}

// listLocal lists a local directory, refusing symlinks and special files.
func listLocal(d *config.Dir) ([]*config.File, error) {
	root := localPath(d.Source)
	var rels []string
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			if !e.IsDir() {
				return fmt.Errorf("%s is not a directory", root)
			}
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch {
		case e.Type()&fs.ModeSymlink != 0:
			return fmt.Errorf("%s is a symbolic link: butler does not follow symlinks", rel)
		case e.IsDir():
			return nil
		case !e.Type().IsRegular():
			return fmt.Errorf("%s is not a regular file", rel)
		}
		if d.Matches(rel) {
			rels = append(rels, rel)
		}
		return nil
	})
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("directory %s not found", root)
	case err != nil:
		return nil, err
	}
	if err := checkCount(d, rels, root); err != nil {
		return nil, err
	}
	files := make([]*config.File, 0, len(rels))
	for _, rel := range rels {
		f, err := d.File(rel, filepath.Join(root, filepath.FromSlash(rel)))
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	return files, nil
}

// localPath is the directory a file source names.
func localPath(src string) string {
	_, rest := source.SplitForced(src)
	if strings.HasPrefix(rest, "file://") {
		if u, err := url.Parse(rest); err == nil {
			return filepath.Clean(u.Path)
		}
	}
	if abs, err := filepath.Abs(rest); err == nil {
		return abs
	}
	return os.ExpandEnv(rest)
}
