package state

import (
	"slices"
	"strings"

	"github.com/butler-sre/butler/pipeline/config"
)

// MarkWritten records paths as files butler wrote for the manager: they are
// its own to delete once no longer wanted.
func (ms *ManagerState) MarkWritten(paths []string) {
	for _, p := range paths {
		if i, found := slices.BinarySearch(ms.Owned, p); !found {
			ms.Owned = slices.Insert(ms.Owned, i, p)
		}
	}
}

// Forget drops paths from the files butler wrote, once they are deleted.
func (ms *ManagerState) Forget(paths []string) {
	drop := make(map[string]bool, len(paths))
	for _, p := range paths {
		drop[p] = true
	}
	ms.Owned = slices.DeleteFunc(ms.Owned, func(p string) bool { return drop[p] })
	if len(ms.Owned) == 0 {
		ms.Owned = nil
	}
}

// Unwanted returns the files butler wrote for the manager that are not in
// desired, sorted: the ones to delete. A file butler never wrote is never
// among them.
func (ms *ManagerState) Unwanted(desired []string) []string {
	want := make(map[string]bool, len(desired))
	for _, p := range desired {
		want[p] = true
	}
	var out []string
	for _, p := range ms.Owned {
		if !want[p] {
			out = append(out, p)
		}
	}
	return out
}

// KeepFiles drops the state of every file not in paths, so that the metric
// series of a file gone from a directory source disappear; call it with
// every file of the manager once its directories are listed.
func (ms *ManagerState) KeepFiles(paths []string) {
	want := make(map[string]bool, len(paths))
	for _, p := range paths {
		want[p] = true
	}
	for p := range ms.Files {
		if !want[p] {
			delete(ms.Files, p)
		}
	}
}

// inDirs reports whether the file at p lies under the path of one of dirs.
func inDirs(p string, dirs []*config.Dir) bool {
	for _, d := range dirs {
		if strings.HasPrefix(p, d.Path+"/") {
			return true
		}
	}
	return false
}
