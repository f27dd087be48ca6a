package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/butler-sre/butler/internal/fstest"
)

func TestRemoveStale(t *testing.T) {
	long := strings.Repeat("l", 120) + ".yml"
	names := []string{"a.yml", "rules/b.yml", long, "missing/c.yml", "../hostile.yml", "a.yml/under-a-file.yml"}
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
				fstest.WriteFile(t, filepath.Join(dest, tc.entry), "left behind", 0o600)
			}
			fstest.WriteFile(t, filepath.Join(dest, "a.yml"), "left behind", 0o600)
			if err := RemoveStale(openRoot(t, dest), names); err != nil {
				t.Fatal(err)
			}
			if got := fstest.Exists(t, filepath.Join(dest, tc.entry)); got == tc.removed {
				t.Errorf("%s exists = %v, want %v", tc.entry, got, !tc.removed)
			}
			if !fstest.Exists(t, filepath.Join(dest, "a.yml")) {
				t.Error("the target a.yml was removed")
			}
		})
	}
}

// TestRemoveStaleMatchesWriteFile removes the temporary files that
// WriteFile really makes, as a killed run leaves them.
func TestRemoveStaleMatchesWriteFile(t *testing.T) {
	for _, rel := range []string{"a.yml", "sub/b.yml", strings.Repeat("x", 200)} {
		t.Run(rel[:min(len(rel), 12)], func(t *testing.T) {
			dest := t.TempDir()
			root := openRoot(t, dest)
			dir := filepath.Dir(rel)
			if _, err := MkdirAll(root, dir, 0o755); err != nil {
				t.Fatal(err)
			}
			f, name, err := createTemp(root, dir, filepath.Base(rel))
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
			if err := RemoveStale(root, []string{rel}); err != nil {
				t.Fatal(err)
			}
			if fstest.Exists(t, filepath.Join(dest, name)) {
				t.Errorf("%s was not removed", name)
			}
		})
	}
}

// TestRemoveStaleNeverThroughSymlink: a directory of the names that is a
// symlink, leading out of the root or inside it, is never listed, so a file
// there named like a temporary survives.
func TestRemoveStaleNeverThroughSymlink(t *testing.T) {
	tests := []struct {
		name   string
		target func(base, dest string) string // what dest/sub points at
	}{
		{name: "outside the root", target: func(base, _ string) string { return filepath.Join(base, "outside") }},
		{name: "outside, relative", target: func(string, string) string { return "../outside" }},
		{name: "inside the root", target: func(string, string) string { return "real" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			dest := filepath.Join(base, "dest")
			fstest.WriteFile(t, filepath.Join(base, "outside/.a.yml.tmp123"), "left behind", 0o600)
			fstest.WriteFile(t, filepath.Join(base, "outside/deep/.b.yml.tmp5"), "left behind", 0o600)
			fstest.WriteFile(t, filepath.Join(dest, "real/.a.yml.tmp123"), "left behind", 0o600)
			fstest.WriteFile(t, filepath.Join(dest, "real/deep/.b.yml.tmp5"), "left behind", 0o600)
			fstest.Symlink(t, tt.target(base, dest), filepath.Join(dest, "sub"))
			outside := filepath.Join(base, "outside")
			before := fstest.Tree(t, outside)
			beforeReal := fstest.Tree(t, filepath.Join(dest, "real"))
			if err := RemoveStale(openRoot(t, dest), []string{"sub/a.yml", "sub/deep/b.yml"}); err != nil {
				t.Fatal(err)
			}
			fstest.SameTree(t, outside, before)
			fstest.SameTree(t, filepath.Join(dest, "real"), beforeReal)
		})
	}
}

// TestRemoveStaleManyNames cleans one directory holding many files and as
// many temporaries in one listing.
func TestRemoveStaleManyNames(t *testing.T) {
	const n = 2000
	dest := t.TempDir()
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("rules/r%04d.yml", i)
		fstest.WriteFile(t, filepath.Join(dest, names[i]), "left behind", 0o600)
		fstest.WriteFile(t, filepath.Join(dest, fmt.Sprintf("rules/.r%04d.yml.tmp%d", i, i)), "left behind", 0o600)
	}
	fstest.WriteFile(t, filepath.Join(dest, "rules/.foreign.yml.tmp1"), "left behind", 0o600)
	if err := RemoveStale(openRoot(t, dest), names); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(filepath.Join(dest, "rules"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != n+1 {
		t.Errorf("rules holds %d entries, want the %d files and the foreign temporary", len(entries), n)
	}
	for _, e := range entries {
		if base, ok := IsTemp(e.Name()); ok && base != "foreign.yml" {
			t.Errorf("%s left", e.Name())
		}
	}
	for _, name := range names {
		if !fstest.Exists(t, filepath.Join(dest, name)) {
			t.Fatalf("%s removed", name)
		}
	}
	if !fstest.Exists(t, filepath.Join(dest, "rules", ".foreign.yml.tmp1")) {
		t.Error("the temporary of a file not named was removed")
	}
}

// BenchmarkRemoveStale measures the sweep of a run with nothing stale: one
// directory of n files and n temporaries of other files, all listed and
// matched, none removed. Its time per name must not grow with n.
func BenchmarkRemoveStale(b *testing.B) {
	for _, n := range []int{100, 1000, 4000} {
		b.Run(fmt.Sprintf("names=%d", n), func(b *testing.B) {
			dest := b.TempDir()
			if err := os.Mkdir(filepath.Join(dest, "rules"), 0o755); err != nil {
				b.Fatal(err)
			}
			names := make([]string, n)
			for i := range names {
				names[i] = fmt.Sprintf("rules/r%05d.yml", i)
				for _, p := range []string{names[i], fmt.Sprintf("rules/.other%05d.yml.tmp1", i)} {
					if err := os.WriteFile(filepath.Join(dest, p), nil, 0o644); err != nil {
						b.Fatal(err)
					}
				}
			}
			root, err := os.OpenRoot(dest)
			if err != nil {
				b.Fatal(err)
			}
			defer root.Close()
			b.ReportAllocs()
			for b.Loop() {
				if err := RemoveStale(root, names); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/name")
		})
	}
}
