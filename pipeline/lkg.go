package pipeline

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// The last-known-good copy of a manager lives at dir (STATE/lkg/MANAGER),
// which is a symlink to a sibling directory ".MANAGER.lkg-DIGITS" holding the
// files. StoreLKG fills a new sibling, fsyncs its files and directories, then
// renames a new symlink over dir. rename is atomic, so after a crash at any
// moment dir points at either the complete old copy or the complete new one.
// Siblings dir does not point at (old versions, or the leftovers of a store
// that was interrupted) are ignored by LoadLKG and removed by the next
// StoreLKG. The "." in the sibling names cannot occur in a manager name, so
// the siblings of two managers never match each other's pattern.

const (
	lkgDirMode os.FileMode = 0o700
	// lkgVersionInfix and lkgLinkInfix follow ".MANAGER" in the names of
	// the version directories and of the symlink being prepared.
	lkgVersionInfix = ".lkg-"
	lkgLinkInfix    = ".lkgtmp-"
)

// StoreLKG replaces the last-known-good copy at dir as a whole with files:
// they are written into a fresh sibling directory (directories 0700, files
// with their Mode), everything is fsynced, then dir is switched to it in one
// atomic rename. The previous copy is removed after the switch. When dir is a
// plain directory (made by hand), it is moved aside and removed the same way.
// On error the previous copy stays in place.
func StoreLKG(dir string, files []FileContent) error {
	dir = filepath.Clean(dir)
	parent, name := filepath.Dir(dir), filepath.Base(dir)
	if name == "." || name == ".." || name == string(filepath.Separator) {
		return fmt.Errorf("store last-known-good: bad directory %q", dir)
	}
	if err := os.MkdirAll(parent, lkgDirMode); err != nil {
		return fmt.Errorf("store last-known-good: %w", err)
	}
	version, err := os.MkdirTemp(parent, "."+name+lkgVersionInfix)
	if err != nil {
		return fmt.Errorf("store last-known-good: %w", err)
	}
	swapped := false
	defer func() {
		if !swapped {
			_ = os.RemoveAll(version)
		}
	}()
	if err := lkgFill(version, files); err != nil {
		return fmt.Errorf("store last-known-good: %w", err)
	}
	// The version's entry in parent must be on disk before a link to it.
	if err := writeSyncDir(parent); err != nil {
		return fmt.Errorf("store last-known-good: %w", err)
	}
	vbase := filepath.Base(version)
	link := filepath.Join(parent, "."+name+lkgLinkInfix+strings.TrimPrefix(vbase, "."+name+lkgVersionInfix))
	if err := os.Symlink(vbase, link); err != nil {
		return fmt.Errorf("store last-known-good: %w", err)
	}
	aside, err := lkgMoveAsidePlainDir(dir, parent, name)
	if err != nil {
		_ = os.Remove(link)
		return fmt.Errorf("store last-known-good: %w", err)
	}
	if err := os.Rename(link, dir); err != nil {
		_ = os.Remove(link)
		if aside != "" {
			_ = os.Rename(aside, dir)
		}
		return fmt.Errorf("store last-known-good: %w", err)
	}
	swapped = true
	if err := writeSyncDir(parent); err != nil {
		return fmt.Errorf("store last-known-good: %w", err)
	}
	// Best effort: what is left behind is ignored by LoadLKG, and the next
	// StoreLKG tries again.
	lkgRemoveOthers(parent, name, vbase)
	return nil
}

// lkgFill writes files into the fresh directory root and fsyncs them and
// every directory under root.
func lkgFill(root string, files []FileContent) error {
	dirs := []string{root}
	for _, f := range files {
		rel, err := writeCleanRel(f.Path)
		if err != nil {
			return err
		}
		full := filepath.Join(root, rel)
		created, err := lkgMkdirAll(root, filepath.Dir(full))
		dirs = append(dirs, created...)
		if err != nil {
			return err
		}
		if err := lkgWriteFile(full, f.Data, f.Mode); err != nil {
			return fmt.Errorf("%s: %w", f.Path, err)
		}
	}
	for _, d := range dirs {
		if err := writeSyncDir(d); err != nil {
			return err
		}
	}
	return nil
}

// lkgMkdirAll creates dir and its missing parents below root with mode 0700
// and returns those it created.
func lkgMkdirAll(root, dir string) ([]string, error) {
	var missing []string
	for p := dir; p != root && len(p) > len(root); p = filepath.Dir(p) {
		fi, err := os.Lstat(p)
		if err == nil {
			if !fi.IsDir() {
				return nil, fmt.Errorf("%s is not a directory", p)
			}
			break
		}
		missing = append(missing, p)
	}
	slices.Reverse(missing)
	var created []string
	for _, p := range missing {
		if err := os.Mkdir(p, lkgDirMode); err != nil {
			return created, err
		}
		created = append(created, p)
		if err := os.Chmod(p, lkgDirMode); err != nil {
			return created, err
		}
	}
	return created, nil
}

// lkgWriteFile creates the new file path (it must not exist) with data and
// mode, and fsyncs it.
func lkgWriteFile(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode & writeModeMask)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// lkgMoveAsidePlainDir renames dir out of the way when it is a plain
// directory rather than the symlink StoreLKG makes, so that a symlink can be
// renamed over it; the moved copy then counts as an old version. It returns
// where the directory went, or "" when there was nothing to move.
func lkgMoveAsidePlainDir(dir, parent, name string) (string, error) {
	fi, err := os.Lstat(dir)
	if err != nil || !fi.IsDir() {
		return "", nil // absent, or a symlink (or file) the rename replaces
	}
	// A fresh directory picks a unique name; os.Rename does not replace
	// a directory, so it is removed again just before the rename (the run's
	// lock keeps other stores away meanwhile).
	aside, err := os.MkdirTemp(parent, "."+name+lkgVersionInfix)
	if err != nil {
		return "", err
	}
	if err := os.Remove(aside); err != nil {
		return "", err
	}
	if err := os.Rename(dir, aside); err != nil {
		return "", err
	}
	return aside, nil
}

// lkgRemoveOthers removes the versions and prepared links of the manager
// name in parent, except the version keep.
func lkgRemoveOthers(parent, name, keep string) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.Name() != keep && lkgOwned(name, e.Name()) {
			_ = os.RemoveAll(filepath.Join(parent, e.Name()))
		}
	}
}

// lkgOwned reports whether entry is a version directory or a prepared link
// of the manager name.
func lkgOwned(name, entry string) bool {
	for _, infix := range []string{lkgVersionInfix, lkgLinkInfix} {
		if rest, ok := strings.CutPrefix(entry, "."+name+infix); ok && lkgDigits(rest) {
			return true
		}
	}
	return false
}

// lkgDigits reports whether s is a non-empty string of ASCII digits.
func lkgDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// LoadLKG returns the last-known-good files stored at dir, sorted by Path,
// with their modes. ok is false when there is no copy: dir missing, or its
// link pointing at nothing. A copy that cannot be read, or a dir that is not
// what StoreLKG makes, gives ok false and an error.
func LoadLKG(dir string) (files []FileContent, ok bool, err error) {
	dir = filepath.Clean(dir)
	root, ok, err := lkgRoot(dir)
	if !ok || err != nil {
		return nil, false, err
	}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s is not a regular file", path)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		files = append(files, FileContent{Path: filepath.ToSlash(rel), Data: data, Mode: info.Mode() & writeModeMask})
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("load last-known-good %s: %w", dir, err)
	}
	slices.SortFunc(files, func(a, b FileContent) int { return strings.Compare(a.Path, b.Path) })
	return files, true, nil
}

// lkgRoot finds the directory holding the current copy at dir.
func lkgRoot(dir string) (string, bool, error) {
	fi, err := os.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("load last-known-good: %w", err)
	case fi.IsDir():
		return dir, true, nil // a plain directory, made by hand
	case fi.Mode()&fs.ModeSymlink == 0:
		return "", false, fmt.Errorf("load last-known-good: %s is not a directory", dir)
	}
	target, err := os.Readlink(dir)
	if err != nil {
		return "", false, fmt.Errorf("load last-known-good: %w", err)
	}
	name := filepath.Base(dir)
	if target != filepath.Base(target) || !strings.HasPrefix(target, "."+name+lkgVersionInfix) || !lkgOwned(name, target) {
		return "", false, fmt.Errorf("load last-known-good: %s points at %q, not at a stored copy", dir, target)
	}
	root := filepath.Join(filepath.Dir(dir), target)
	fi, err = os.Lstat(root)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("load last-known-good: %w", err)
	case !fi.IsDir():
		return "", false, fmt.Errorf("load last-known-good: %s is not a directory", root)
	}
	return root, true, nil
}
