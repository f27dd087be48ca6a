package lkg

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/butler-sre/butler/internal/errtest"
	"github.com/butler-sre/butler/internal/fstest"
	"github.com/butler-sre/butler/internal/undeletable"
	"github.com/butler-sre/butler/pipeline/write"
)

// TestLKGStoreReportsUndeletableOldVersion: when the old version cannot be
// removed after the switch, Store says so; the new copy is the one loaded,
// and the next Store removes the leftover.
func TestLKGStoreReportsUndeletableOldVersion(t *testing.T) {
	parent, dir := lkgTestDir(t)
	v1 := []write.File{{Path: "a.yml", Data: []byte("v1"), Mode: 0o644}}
	lkgTestStore(t, dir, v1)
	oldVersion := lkgTestVersion(t, dir)
	undo := undeletable.Make(t, filepath.Join(parent, oldVersion, "a.yml"))

	v2 := []write.File{{Path: "a.yml", Data: []byte("v2"), Mode: 0o644}}
	errtest.Want(t, "Store", Store(dir, v2), "remove old copy")
	lkgTestLoad(t, dir, v2)
	if names := fstest.Names(t, parent); !slices.Contains(names, oldVersion) {
		t.Fatalf("parent holds %q: the old version went after all", names)
	}

	undo()
	v3 := []write.File{{Path: "a.yml", Data: []byte("v3"), Mode: 0o644}}
	lkgTestStore(t, dir, v3)
	lkgTestLoad(t, dir, v3)
	lkgTestOneVersion(t, parent)
}
