// Package lkg keeps the last-known-good copy of each manager's files.
//
// The copy of a manager lives at STATE/lkg/MANAGER, a symlink to a sibling
// directory ".MANAGER.lkg-DIGITS" holding the files. Store fills a new
// sibling, fsyncs its files and directories, then renames a new symlink over
// the old one.
//
// Guarantees:
//   - A copy is replaced as a whole: after a crash at any moment the name
//     points at either the complete old copy or the complete new one.
//   - A failed Store leaves the previous copy in place and loaded by Load.
//   - Every name is resolved inside the lkg directory through an os.Root, and
//     Load reads only regular files of the copy: a symlink planted in it is an
//     error, never followed.
//   - Siblings the name does not point at (old versions, leftovers of an
//     interrupted store) are ignored by Load and removed by the next Store.
//     The "." in their names cannot occur in a manager name, so two managers'
//     siblings never match each other's pattern.
package lkg

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/butler-sre/butler/pipeline/atomicfile"
	"github.com/butler-sre/butler/pipeline/write"
)

const (
	dirMode os.FileMode = 0o700
	// versionInfix and linkInfix follow ".MANAGER" in the names of the
	// version directories and of the symlink being prepared.
	versionInfix = ".lkg-"
	linkInfix    = ".lkgtmp-"
)

// ErrCleanup marks a Store that put the new copy in place (Load returns it)
// but could not remove the old ones.
var ErrCleanup = errors.New("the new copy is stored, but old copies could not be removed")

// Store replaces the last-known-good copy at dir as a whole with files: they
// are written into a fresh sibling directory (directories 0700, files with
// their Mode), everything is fsynced, then dir is switched to it in one
// atomic rename. The previous copy is removed after the switch. When dir is a
// plain directory (made by hand), it is moved aside and removed the same way.
// On an error that does not wrap ErrCleanup, the previous copy stays in place.
func Store(dir string, files []write.File) (err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("store last-known-good: %w", err)
		}
	}()
	parent, name, err := split(dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(parent, dirMode); err != nil {
		return err
	}
	root, err := os.OpenRoot(parent)
	if err != nil {
		return err
	}
	defer root.Close()

	version, err := mkdirUnique(root, "."+name+versionInfix)
	if err != nil {
		return err
	}
	swapped := false
	defer func() {
		if !swapped {
			_ = root.RemoveAll(version)
		}
	}()
	if err := fill(root, version, files); err != nil {
		return err
	}
	// The version's entry in parent must be on disk before a link to it.
	if err := atomicfile.SyncDir(root, "."); err != nil {
		return err
	}
	link := "." + name + linkInfix + strings.TrimPrefix(version, "."+name+versionInfix)
	if err := root.Symlink(version, link); err != nil {
		return err
	}
	aside, err := moveAsidePlainDir(root, name)
	if err != nil {
		return errors.Join(err, removeIgnoringMissing(root, link))
	}
	if err := root.Rename(link, name); err != nil {
		errs := []error{err, removeIgnoringMissing(root, link)}
		if aside != "" {
			if rerr := root.Rename(aside, name); rerr != nil {
				errs = append(errs, fmt.Errorf("put the moved copy back: %w", rerr))
			}
		}
		return errors.Join(errs...)
	}
	swapped = true
	if err := atomicfile.SyncDir(root, "."); err != nil {
		return err
	}
	// What is left behind is ignored by Load, and the next Store tries again;
	// but a failure is said, never dropped.
	if err := removeOthers(root, name, version); err != nil {
		return fmt.Errorf("%w: %w", ErrCleanup, err)
	}
	return nil
}

// split checks dir and returns its parent and its base name.
func split(dir string) (parent, name string, err error) {
	dir = filepath.Clean(dir)
	parent, name = filepath.Dir(dir), filepath.Base(dir)
	if name == "." || name == ".." || name == string(filepath.Separator) {
		return "", "", fmt.Errorf("bad directory %q", dir)
	}
	return parent, name, nil
}

// mkdirUnique makes a new directory named prefix followed by random digits.
func mkdirUnique(root *os.Root, prefix string) (string, error) {
	name, err := atomicfile.UniqueName(prefix, "create a directory "+prefix+"*", func(name string) error {
		return root.Mkdir(name, dirMode)
	})
	if err != nil {
		return "", err
	}
	return name, root.Chmod(name, dirMode)
}

// fill writes files into the fresh directory version and fsyncs them and
// every directory under it.
func fill(root *os.Root, version string, files []write.File) error {
	dirs := []string{version}
	for _, f := range files {
		rel, err := atomicfile.CleanRel(f.Path)
		if err != nil {
			return err
		}
		full := path.Join(version, rel)
		created, err := atomicfile.MkdirAll(root, path.Dir(full), dirMode)
		dirs = append(dirs, created...)
		if err != nil {
			return err
		}
		if err := writeNew(root, full, f.Data, f.Mode); err != nil {
			return fmt.Errorf("%s: %w", f.Path, err)
		}
	}
	for _, d := range dirs {
		if err := atomicfile.SyncDir(root, d); err != nil {
			return err
		}
	}
	return nil
}

// writeNew creates the new file name (it must not exist) with data and mode,
// and fsyncs it.
func writeNew(root *os.Root, name string, data []byte, mode os.FileMode) error {
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode & atomicfile.ModeMask)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// moveAsidePlainDir renames name out of the way when it is a plain directory
// rather than the symlink Store makes, so that a symlink can be renamed over
// it; the moved copy then counts as an old version. It returns where the
// directory went, or "" when there was nothing to move.
func moveAsidePlainDir(root *os.Root, name string) (string, error) {
	fi, err := root.Lstat(name)
	if err != nil || !fi.IsDir() {
		return "", nil // absent, or a symlink (or file) the rename replaces
	}
	return atomicfile.UniqueName("."+name+versionInfix, "move "+name+" aside", func(aside string) error {
		if _, err := root.Lstat(aside); err == nil {
			return fs.ErrExist
		}
		return root.Rename(name, aside)
	})
}

// removeOthers removes the versions and prepared links of the manager name,
// except the version keep.
func removeOthers(root *os.Root, name, keep string) error {
	d, err := root.Open(".")
	if err != nil {
		return fmt.Errorf("remove old copies: %w", err)
	}
	entries, err := d.ReadDir(-1)
	_ = d.Close()
	if err != nil {
		return fmt.Errorf("remove old copies: %w", err)
	}
	var errs []error
	for _, e := range entries {
		if e.Name() != keep && owned(name, e.Name()) {
			if err := root.RemoveAll(e.Name()); err != nil {
				errs = append(errs, fmt.Errorf("remove old copy: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}

func removeIgnoringMissing(root *os.Root, name string) error {
	if err := root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// owned reports whether entry is a version directory or a prepared link of
// the manager name.
func owned(name, entry string) bool {
	for _, infix := range []string{versionInfix, linkInfix} {
		if rest, ok := strings.CutPrefix(entry, "."+name+infix); ok && atomicfile.Digits(rest) {
			return true
		}
	}
	return false
}

// Load returns the last-known-good files stored at dir, sorted by Path, with
// their modes. ok is false when there is no copy: dir missing, or its link
// pointing at nothing. A copy that cannot be read, or a dir that is not what
// Store makes, gives ok false and an error.
func Load(dir string) (files []write.File, ok bool, err error) {
	parent, name, err := split(dir)
	if err != nil {
		return nil, false, fmt.Errorf("load last-known-good: %w", err)
	}
	root, err := os.OpenRoot(parent)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("load last-known-good: %w", err)
	}
	defer root.Close()
	top, ok, err := current(root, name)
	if !ok || err != nil {
		return nil, false, err
	}
	copyRoot, err := root.OpenRoot(top)
	if err != nil {
		return nil, false, fmt.Errorf("load last-known-good: %w", err)
	}
	defer copyRoot.Close()
	err = fs.WalkDir(copyRoot.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s is not a regular file", p)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		data, err := copyRoot.ReadFile(p)
		if err != nil {
			return err
		}
		files = append(files, write.File{Path: p, Data: data, Mode: info.Mode() & atomicfile.ModeMask})
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("load last-known-good %s: %w", dir, err)
	}
	slices.SortFunc(files, func(a, b write.File) int { return strings.Compare(a.Path, b.Path) })
	return files, true, nil
}

// current finds the directory holding the current copy of name.
func current(root *os.Root, name string) (string, bool, error) {
	fi, err := root.Lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("load last-known-good: %w", err)
	case fi.IsDir():
		return name, true, nil // a plain directory, made by hand
	case fi.Mode()&fs.ModeSymlink == 0:
		return "", false, fmt.Errorf("load last-known-good: %s is not a directory", name)
	}
	target, err := root.Readlink(name)
	if err != nil {
		return "", false, fmt.Errorf("load last-known-good: %w", err)
	}
	if target != path.Base(target) || !owned(name, target) || !strings.HasPrefix(target, "."+name+versionInfix) {
		return "", false, fmt.Errorf("load last-known-good: %s points at %q, not at a stored copy", name, target)
	}
	fi, err = root.Lstat(target)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("load last-known-good: %w", err)
	case !fi.IsDir():
		return "", false, fmt.Errorf("load last-known-good: %s is not a directory", target)
	}
	return target, true, nil
}
