package write

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/butler-sre/butler/internal/errtest"
	"github.com/butler-sre/butler/internal/fstest"
	"github.com/butler-sre/butler/pipeline/atomicfile"
)

// removeTestDest makes a dest of a manager whose rules are spread over
// directories of their own modes.
func removeTestDest(t *testing.T) string {
	t.Helper()
	dest := filepath.Join(t.TempDir(), "dest")
	fstest.WriteFile(t, filepath.Join(dest, "rules", "a.yml"), "a\n", 0o640)
	fstest.WriteFile(t, filepath.Join(dest, "rules", "sub", "b.yml"), "b\n", 0o600)
	fstest.WriteFile(t, filepath.Join(dest, "other", "c.yml"), "c\n", 0o644)
	fstest.WriteFile(t, filepath.Join(dest, "other", "d.yml"), "d\n", 0o644)
	fstest.WriteFile(t, filepath.Join(dest, "top.yml"), "top\n", 0o644)
	for dir, mode := range map[string]os.FileMode{"rules": 0o700, "rules/sub": 0o750} {
		if err := os.Chmod(filepath.Join(dest, dir), mode); err != nil {
			t.Fatal(err)
		}
	}
	return dest
}

// TestRemoveAndRestore: Remove deletes the files and the directories they
// leave empty, and its Snapshot brings every one back as it was.
func TestRemoveAndRestore(t *testing.T) {
	dest := removeTestDest(t)
	before := fstest.Tree(t, dest)
	d := openDest(t, dest)
	snap, err := d.Remove([]string{
		"rules/a.yml", "rules/sub/b.yml", "other/c.yml", "./top.yml",
		"missing.yml", "top.yml/under", "gone/x.yml", "rules/a.yml", // nothing there, or given twice
	})
	if err != nil {
		t.Fatalf("Remove: %v", err)
	}
	for _, p := range []string{"rules", "other/c.yml", "top.yml", "gone"} {
		fstest.Missing(t, filepath.Join(dest, p))
	}
	if data, _ := fstest.Read(t, filepath.Join(dest, "other", "d.yml")); data != "d\n" {
		t.Errorf("other/d.yml = %q: a file that was not named was touched", data)
	}
	if got := slices.Sorted(maps.Keys(fstest.Tree(t, dest))); !slices.Equal(got, []string{".", "other", "other/d.yml"}) {
		t.Errorf("after Remove, dest holds %q", got)
	}

	if err := snap.Restore(); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	fstest.SameTree(t, dest, before)
	fstest.NoTemp(t, dest, atomicfile.IsTemp)
}

// TestRemoveNothing: nothing to remove is no error, and a missing dest is
// not created.
func TestRemoveNothing(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "not-yet")
	d := openDest(t, missing)
	for _, paths := range [][]string{nil, {"a.yml", "rules/b.yml"}} {
		snap, err := d.Remove(paths)
		if err != nil {
			t.Fatalf("Remove(%q): %v", paths, err)
		}
		if err := snap.Restore(); err != nil {
			t.Fatalf("Restore: %v", err)
		}
		if got, err := d.Removable(paths); err != nil || len(got) != 0 {
			t.Errorf("Removable(%q) = %q, %v; want nothing", paths, got, err)
		}
	}
	fstest.Missing(t, missing)
}

// TestRemoveRefuses: a hostile path, a symlink anywhere on the path, or
// something other than a regular file removes nothing at all, inside dest or
// out of it.
func TestRemoveRefuses(t *testing.T) {
	tests := []struct {
		name    string
		path    string
		setup   func(t *testing.T, dest, outside string)
		errPart string
	}{
		{name: "dotdot", path: "../outside/victim.yml", errPart: `must not contain ".."`},
		{name: "absolute", path: filepath.Join("/", "etc", "passwd"), errPart: "must be relative"},
		{name: "empty", path: "", errPart: "empty path"},
		{name: "dest itself", path: ".", errPart: "names the directory itself"},
		{
			name: "symlinked directory to outside", path: "link/victim.yml",
			setup: func(t *testing.T, dest, outside string) {
				fstest.Symlink(t, outside, filepath.Join(dest, "link"))
			},
			errPart: "link is a symlink",
		},
		{
			name: "symlinked directory inside dest", path: "alias/c.yml",
			setup: func(t *testing.T, dest, outside string) {
				fstest.Symlink(t, "other", filepath.Join(dest, "alias"))
			},
			errPart: "alias is a symlink",
		},
		{
			name: "the file is a symlink", path: "victim.yml",
			setup: func(t *testing.T, dest, outside string) {
				fstest.Symlink(t, filepath.Join(outside, "victim.yml"), filepath.Join(dest, "victim.yml"))
			},
			errPart: "victim.yml is a symlink",
		},
		{name: "a directory", path: "other", errPart: "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dest := removeTestDest(t)
			outside := filepath.Join(filepath.Dir(dest), "outside")
			fstest.WriteFile(t, filepath.Join(outside, "victim.yml"), "not butler's\n", 0o644)
			if tt.setup != nil {
				tt.setup(t, dest, outside)
			}
			before, beforeOutside := fstest.Tree(t, dest), fstest.Tree(t, outside)
			d := openDest(t, dest)
			// top.yml comes first: it must still be there, since every path
			// is checked before the first removal.
			paths := []string{"top.yml", tt.path}
			_, err := d.Removable(paths)
			errtest.Want(t, "Removable", err, tt.errPart)
			snap, err := d.Remove(paths)
			errtest.Want(t, "Remove", err, tt.errPart)
			if snap != nil {
				t.Fatalf("Remove gave a snapshot with its error")
			}
			_, err = d.Update(nil, paths)
			errtest.Want(t, "Update", err, tt.errPart)
			fstest.SameTree(t, dest, before)
			fstest.SameTree(t, outside, beforeOutside)
		})
	}
}

// TestRemoveSymlinkSwappedIn: a directory replaced by a symlink to outside
// after the Dest was opened still leads no removal out of dest.
func TestRemoveSymlinkSwappedIn(t *testing.T) {
	dest := removeTestDest(t)
	outside := filepath.Join(filepath.Dir(dest), "outside")
	fstest.WriteFile(t, filepath.Join(outside, "c.yml"), "not butler's\n", 0o644)
	d := openDest(t, dest)
	if err := os.Rename(filepath.Join(dest, "other"), filepath.Join(dest, "moved")); err != nil {
		t.Fatal(err)
	}
	fstest.Symlink(t, outside, filepath.Join(dest, "other"))
	before := fstest.Tree(t, outside)
	_, err := d.Remove([]string{"other/c.yml"})
	errtest.Want(t, "Remove", err, "symlink")
	fstest.SameTree(t, outside, before)
}

func TestRemovable(t *testing.T) {
	dest := removeTestDest(t)
	before := fstest.Tree(t, dest)
	d := openDest(t, dest)
	got, err := d.Removable([]string{"missing.yml", "other/./c.yml", "rules/sub/b.yml", "top.yml/x"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"other/c.yml", "rules/sub/b.yml"}) {
		t.Errorf("Removable = %q", got)
	}
	fstest.SameTree(t, dest, before)
}

// TestRestoreAfterDirectoryMadeAgain: a directory removed with a file and
// made again by someone else before the restore is used as it is.
func TestRestoreAfterDirectoryMadeAgain(t *testing.T) {
	dest := removeTestDest(t)
	d := openDest(t, dest)
	snap, err := d.Remove([]string{"rules/a.yml", "rules/sub/b.yml"})
	if err != nil {
		t.Fatal(err)
	}
	fstest.WriteFile(t, filepath.Join(dest, "rules", "operator.yml"), "mine\n", 0o644)
	if err := snap.Restore(); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	for p, want := range map[string]string{"rules/a.yml": "a\n", "rules/sub/b.yml": "b\n", "rules/operator.yml": "mine\n"} {
		if data, _ := fstest.Read(t, filepath.Join(dest, p)); data != want {
			t.Errorf("%s = %q, want %q", p, data, want)
		}
	}
}

// TestUpdate: the new files are written, the unwanted ones removed, and the
// Snapshot puts back both.
func TestUpdate(t *testing.T) {
	dest := removeTestDest(t)
	before := fstest.Tree(t, dest)
	d := openDest(t, dest)
	files := []File{
		file("top.yml", "new top\n"),
		file("rules/sub/new.yml", "new\n"),
		{Path: "fresh/n.yml", Data: []byte("n\n"), Mode: 0o600},
	}
	snap, err := d.Update(files, []string{"rules/sub/b.yml", "rules/a.yml", "other/c.yml"})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	for _, f := range files {
		if data, mode := fstest.Read(t, filepath.Join(dest, f.Path)); data != string(f.Data) || mode != f.Mode {
			t.Errorf("%s: %q mode %v after Update", f.Path, data, mode)
		}
	}
	for _, p := range []string{"rules/a.yml", "rules/sub/b.yml", "other/c.yml"} {
		fstest.Missing(t, filepath.Join(dest, p))
	}
	if err := snap.Restore(); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	fstest.SameTree(t, dest, before)
	fstest.NoTemp(t, dest, atomicfile.IsTemp)
}

func TestUpdateRefusesPathWrittenAndRemoved(t *testing.T) {
	dest := removeTestDest(t)
	before := fstest.Tree(t, dest)
	d := openDest(t, dest)
	files := []File{file("top.yml", "new\n"), file("rules/a.yml", "x\n")}
	_, err := d.Update(files, []string{"other/c.yml", "./rules/a.yml"})
	errtest.Want(t, "Update", err, "rules/a.yml")
	errtest.Want(t, "Update", err, "also written")
	fstest.SameTree(t, dest, before)
}
