package lkg

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/butler-sre/butler/pipeline/internal/fstest"
	"github.com/butler-sre/butler/pipeline/internal/undeletable"
	"github.com/butler-sre/butler/pipeline/write"
)

// TestLKGStoreReportsUndeletableOldVersion: when the old version cannot be
// removed after the switch, Store says so; the new copy is the one loaded,
// and the next Store removes the leftover.
func TestLKGStoreReportsUndeletableOldVersion(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "m")
	v1 := []write.File{{Path: "a.yml", Data: []byte("v1"), Mode: 0o644}}
	if err := Store(dir, v1); err != nil {
		t.Fatal(err)
	}
	oldVersion, err := os.Readlink(dir)
	if err != nil {
		t.Fatal(err)
	}
	undo := undeletable.Make(t, filepath.Join(parent, oldVersion, "a.yml"))

	v2 := []write.File{{Path: "a.yml", Data: []byte("v2"), Mode: 0o644}}
	err = Store(dir, v2)
	if err == nil || !strings.Contains(err.Error(), "remove old copy") {
		t.Fatalf("Store = %v, want an error saying the old copy was not removed", err)
	}
	lkgTestLoad(t, dir, v2)
	if names := fstest.Names(t, parent); !slices.Contains(names, oldVersion) {
		t.Fatalf("parent holds %q: the old version went after all", names)
	}

	undo()
	v3 := []write.File{{Path: "a.yml", Data: []byte("v3"), Mode: 0o644}}
	if err := Store(dir, v3); err != nil {
		t.Fatal(err)
	}
	lkgTestLoad(t, dir, v3)
	if names := fstest.Names(t, parent); len(names) != 2 {
		t.Errorf("parent holds %q, want the link and one version", names)
	}
}
