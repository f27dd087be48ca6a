package write

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/butler-sre/butler/internal/fstest"
	"github.com/butler-sre/butler/internal/undeletable"
	"github.com/butler-sre/butler/pipeline/atomicfile"
)

// stuckTestDest makes a removeTestDest with the file stuck/z.yml, which
// cannot be removed, and returns it and its Tree.
func stuckTestDest(t *testing.T) (string, map[string]string) {
	t.Helper()
	dest := removeTestDest(t)
	fstest.WriteFile(t, filepath.Join(dest, "stuck", "z.yml"), "z\n", 0o644)
	undeletable.Make(t, filepath.Join(dest, "stuck", "z.yml"))
	return dest, fstest.Tree(t, dest)
}

// TestRemoveFailureMidway: when a removal fails, the files removed before it
// are put back, and the error names the path that failed.
func TestRemoveFailureMidway(t *testing.T) {
	dest, before := stuckTestDest(t)
	d := openDest(t, dest)
	snap, err := d.Remove([]string{"top.yml", "rules/sub/b.yml", "rules/a.yml", "stuck/z.yml", "other/c.yml"})
	if err == nil || !strings.Contains(err.Error(), "remove stuck/z.yml") || snap != nil {
		t.Fatalf("Remove = %v, want an error naming stuck/z.yml", err)
	}
	if strings.Contains(err.Error(), "put back") {
		t.Errorf("the files removed before were not all put back: %v", err)
	}
	fstest.SameTree(t, dest, before)
	fstest.NoTemp(t, dest, atomicfile.IsTemp)
}

// TestUpdateRemovalFailure: when a removal fails, the files written before
// it are put back too: a manager's change is done whole or not at all.
func TestUpdateRemovalFailure(t *testing.T) {
	dest, before := stuckTestDest(t)
	d := openDest(t, dest)
	files := []File{file("top.yml", "new top\n"), file("fresh/n.yml", "n\n")}
	snap, err := d.Update(files, []string{"rules/a.yml", "stuck/z.yml"})
	if err == nil || !strings.Contains(err.Error(), "remove stuck/z.yml") || snap != nil {
		t.Fatalf("Update = %v, want an error naming stuck/z.yml", err)
	}
	fstest.SameTree(t, dest, before)
	if _, err := os.Lstat(filepath.Join(dest, "fresh")); err == nil {
		t.Error("fresh/ made by the writes is still there")
	}
}
