// Package fstest holds the file helpers of the tests of the packages that
// write files (atomicfile, write, lkg, state, textfile, pipeline): set a tree
// up, read a file back, and check what is there and what is not. Every helper
// fails the test on an error it did not expect. Tests only.
package fstest

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
)

// modeBits are the bits of a mode that butler sets on a file: permissions,
// setuid, setgid and sticky.
const modeBits = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// WriteFile creates the file path with data and exactly mode, whatever the
// umask, and its missing parent directories (0755).
func WriteFile(t testing.TB, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// TempDir returns a new temporary directory of the test, set up by setup
// unless it is nil.
func TempDir(t *testing.T, setup func(t *testing.T, dir string)) string {
	t.Helper()
	dir := t.TempDir()
	if setup != nil {
		setup(t, dir)
	}
	return dir
}

// Mkdir creates the directory path with mode (less the umask); its parent
// must exist.
func Mkdir(t testing.TB, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Mkdir(path, mode); err != nil {
		t.Fatal(err)
	}
}

// Symlink creates link, a symbolic link to target.
func Symlink(t testing.TB, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// Umask sets the umask of the process to mask until the test ends. A test
// that calls it must not run in parallel with others.
func Umask(t testing.TB, mask int) {
	old := syscall.Umask(mask)
	t.Cleanup(func() { syscall.Umask(old) })
}

// DirMode fails the test unless path is a directory whose permission bits
// are mode.
func DirMode(t testing.TB, path string, mode os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		t.Errorf("directory %s: %v", path, err)
	case !fi.IsDir() || fi.Mode().Perm() != mode:
		t.Errorf("directory %s: mode %v, want a directory of mode %v", path, fi.Mode(), mode)
	}
}

// Escape sets up the tree of a test of paths that must not lead out of a
// directory: under a new temporary directory, the directory name holding
// real/x.yml and outdir, a symlink to outside; beside it outside, holding
// secret; and name+"link", a symlink to name. It returns the paths of name,
// of its link and of outside.
func Escape(t *testing.T, name string) (dir, link, outside string) {
	t.Helper()
	base := t.TempDir()
	dir, link, outside = filepath.Join(base, name), filepath.Join(base, name+"link"), filepath.Join(base, "outside")
	WriteFile(t, filepath.Join(outside, "secret"), "s", 0o600)
	WriteFile(t, filepath.Join(dir, "real", "x.yml"), "x", 0o644)
	Symlink(t, outside, filepath.Join(dir, "outdir"))
	Symlink(t, dir, link)
	return dir, link, outside
}

// Read returns the content of the file path and its permission, setuid,
// setgid and sticky bits.
func Read(t testing.TB, path string) (string, os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data), fi.Mode() & modeBits
}

// Exists reports whether there is an entry at path, a symlink not followed.
func Exists(t testing.TB, path string) bool {
	t.Helper()
	_, err := os.Lstat(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

// Missing fails the test when there is an entry at path.
func Missing(t testing.TB, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s: want it absent, Lstat gave %v", path, err)
	}
}

// Inode returns the inode number of path.
func Inode(t testing.TB, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// Names returns the names of the entries of dir, sorted.
func Names(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// NoTemp fails the test for every entry under dir whose name isTemp
// recognises (atomicfile.IsTemp): a temporary file left behind.
func NoTemp(t testing.TB, dir string, isTemp func(name string) (base string, ok bool)) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if _, ok := isTemp(d.Name()); ok {
			t.Errorf("temporary file left behind: %s", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Tree describes every entry under dir, symlinks not followed: its kind,
// mode, and content or target. Two listings are equal when nothing under dir
// was created, renamed, removed or rewritten in between.
func Tree(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "symlink to " + target
		case d.IsDir():
			out[rel] = fmt.Sprintf("directory %v", info.Mode())
		default:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = fmt.Sprintf("file %v %q", info.Mode(), data)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// SameTree fails the test when dir no longer holds what before (a Tree of
// it) listed, naming each entry changed, gone or new.
func SameTree(t testing.TB, dir string, before map[string]string) {
	t.Helper()
	after := Tree(t, dir)
	if maps.Equal(before, after) {
		return
	}
	for _, k := range slices.Sorted(maps.Keys(before)) {
		if after[k] != before[k] {
			t.Errorf("%s: was %q, now %q", filepath.Join(filepath.Base(dir), k), before[k], after[k])
		}
	}
	for _, k := range slices.Sorted(maps.Keys(after)) {
		if _, ok := before[k]; !ok {
			t.Errorf("%s appeared: %q", filepath.Join(filepath.Base(dir), k), after[k])
		}
	}
}
