package pipeline

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// crashTouch creates the file rel under dir, with its parents.
func crashTouch(t *testing.T, dir, rel string) {
	t.Helper()
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("left behind"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func crashExists(t *testing.T, p string) bool {
	t.Helper()
	_, err := os.Lstat(p)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

func TestRemoveStaleTemps(t *testing.T) {
	long := strings.Repeat("l", 120) + ".yml"
	files := []FileContent{{Path: "a.yml"}, {Path: "rules/b.yml"}, {Path: long}, {Path: "missing/c.yml"}}
	tests := []struct {
		name    string
		entry   string // relative to dest
		dir     bool   // make a directory there rather than a file
		removed bool
	}{
		{name: "temporary of a file", entry: ".a.yml.tmp123456", removed: true},
		{name: "temporary in a subdirectory", entry: "rules/.b.yml.tmp9", removed: true},
		{name: "temporary of a long name", entry: "." + long[:99] + ".tmp42", removed: true},
		{name: "no digits", entry: ".a.yml.tmp"},
		{name: "not only digits", entry: ".a.yml.tmp12x"},
		{name: "another file's temporary", entry: ".c.yml.tmp1"},
		{name: "temporary of the file in another directory", entry: "rules/.a.yml.tmp5"},
		{name: "unrelated dotfile", entry: ".a.yml.swp"},
		{name: "the target itself", entry: "a.yml"},
		{name: "a directory named like a temporary", entry: ".a.yml.tmp7", dir: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dest := t.TempDir()
			if tc.dir {
				if err := os.MkdirAll(filepath.Join(dest, tc.entry), 0o755); err != nil {
					t.Fatal(err)
				}
			} else {
				crashTouch(t, dest, tc.entry)
			}
			crashTouch(t, dest, "a.yml")
			if err := RemoveStaleTemps(dest, files); err != nil {
				t.Fatal(err)
			}
			if got := crashExists(t, filepath.Join(dest, tc.entry)); got == tc.removed {
				t.Errorf("%s exists = %v, want %v", tc.entry, got, !tc.removed)
			}
			if !crashExists(t, filepath.Join(dest, "a.yml")) {
				t.Error("the target a.yml was removed")
			}
		})
	}
}

// TestRemoveStaleTempsMatchesWriteFileAtomic removes the temporary files that
// WriteFileAtomic really makes, as a killed run leaves them.
func TestRemoveStaleTempsMatchesWriteFileAtomic(t *testing.T) {
	for _, rel := range []string{"a.yml", "sub/b.yml", strings.Repeat("x", 200)} {
		t.Run(rel[:min(len(rel), 12)], func(t *testing.T) {
			dest := t.TempDir()
			full := filepath.Join(dest, rel)
			if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
				t.Fatal(err)
			}
			f, err := os.CreateTemp(filepath.Dir(full), crashTempPrefix(filepath.Base(full)))
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
			if err := RemoveStaleTemps(dest, []FileContent{{Path: rel}}); err != nil {
				t.Fatal(err)
			}
			if crashExists(t, f.Name()) {
				t.Errorf("%s was not removed", filepath.Base(f.Name()))
			}
		})
	}
}

// TestRunRemovesStaleTemps checks that a run clears what a killed run left
// beside the manager's files, even when nothing has changed since.
func TestRunRemovesStaleTemps(t *testing.T) {
	e := newRunEnv(t)
	cfg := e.parse(e.config(""))
	wantNoErr(t, func() error { _, err := e.run(cfg, nil); return err }())
	stale := []string{".prometheus.yml.tmp1234", "rules/.a.yml.tmp99"}
	kept := []string{".prometheus.yml.swp", "rules/.a.yml.tmpx"}
	for _, rel := range append(append([]string{}, stale...), kept...) {
		crashTouch(t, e.dest, rel)
	}
	res, err := e.run(cfg, nil)
	wantNoErr(t, err)
	if res.Managers[0].Outcome != "unchanged" {
		t.Errorf("outcome = %q, want unchanged", res.Managers[0].Outcome)
	}
	for _, rel := range stale {
		if crashExists(t, filepath.Join(e.dest, rel)) {
			t.Errorf("stale temporary %s is still there", rel)
		}
	}
	for _, rel := range kept {
		if !crashExists(t, filepath.Join(e.dest, rel)) {
			t.Errorf("%s was removed", rel)
		}
	}
}
