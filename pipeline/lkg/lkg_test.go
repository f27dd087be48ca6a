package lkg

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/butler-sre/butler/internal/fstest"
	"github.com/butler-sre/butler/pipeline/write"
)

// lkgTestFiles is a manager's set of files with nested paths and modes.
func lkgTestFiles() []write.File {
	return []write.File{
		{Path: "rules/a.yml", Data: []byte("groups: []\n"), Mode: 0o600},
		{Path: "prometheus.yml", Data: []byte("global: {}\n"), Mode: 0o644},
		{Path: "rules/sub/b.yml", Data: []byte("b\n"), Mode: 0o640},
		{Path: "rules.yml", Data: nil, Mode: 0o644},
	}
}

// lkgTestSorted returns files sorted by Path, as Load returns them.
func lkgTestSorted(files []write.File) []write.File {
	out := slices.Clone(files)
	slices.SortFunc(out, func(a, b write.File) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// lkgTestLoad loads dir and compares it with want.
func lkgTestLoad(t *testing.T, dir string, want []write.File) {
	t.Helper()
	got, ok, err := Load(dir)
	if err != nil || !ok {
		t.Fatalf("Load = ok %v, %v; want a copy", ok, err)
	}
	want = lkgTestSorted(want)
	if len(got) != len(want) {
		t.Fatalf("Load returned %d files, want %d: %v", len(got), len(want), got)
	}
	for i := range want {
		if got[i].Path != want[i].Path || string(got[i].Data) != string(want[i].Data) || got[i].Mode != want[i].Mode {
			t.Errorf("file %d: got %s %q %v, want %s %q %v", i,
				got[i].Path, got[i].Data, got[i].Mode, want[i].Path, want[i].Data, want[i].Mode)
		}
	}
}

// lkgTestDir returns a new parent directory and the path of a copy in it.
func lkgTestDir(t *testing.T) (parent, dir string) {
	parent = t.TempDir()
	return parent, filepath.Join(parent, "m")
}

// lkgTestStore stores files at dir, failing the test on an error.
func lkgTestStore(t *testing.T, dir string, files []write.File) {
	t.Helper()
	if err := Store(dir, files); err != nil {
		t.Fatalf("Store: %v", err)
	}
}

// lkgTestVersion returns the name of the version the link dir points to.
func lkgTestVersion(t *testing.T, dir string) string {
	t.Helper()
	target, err := os.Readlink(dir)
	if err != nil {
		t.Fatalf("dir is not the link Store documents: %v", err)
	}
	return target
}

// lkgTestOneVersion fails the test unless parent holds the link and one
// version: the old ones must be gone.
func lkgTestOneVersion(t *testing.T, parent string) {
	t.Helper()
	if names := fstest.Names(t, parent); len(names) != 2 {
		t.Errorf("%s holds %q, want the link and one version", filepath.Base(parent), names)
	}
}

func TestLKGRoundTrip(t *testing.T) {
	parent := filepath.Join(t.TempDir(), "lkg")
	dir := filepath.Join(parent, "prometheus")
	files := lkgTestFiles()
	lkgTestStore(t, dir, files)
	lkgTestLoad(t, dir, files)

	// Every directory of the copy is 0700: it may hold secrets.
	root := filepath.Join(parent, lkgTestVersion(t, dir))
	for _, d := range []string{parent, root, filepath.Join(root, "rules"), filepath.Join(root, "rules", "sub")} {
		fi, err := os.Stat(d)
		if err != nil {
			t.Errorf("%s: %v", d, err)
		} else if fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v; want 0700", d, fi.Mode().Perm())
		}
	}
	lkgTestOneVersion(t, parent)
}

func TestLKGReplace(t *testing.T) {
	tests := []struct {
		name   string
		first  []write.File
		second []write.File
	}{
		{name: "smaller set removes files", first: lkgTestFiles(), second: []write.File{
			{Path: "prometheus.yml", Data: []byte("v2\n"), Mode: 0o600},
		}},
		{name: "larger set", first: []write.File{{Path: "a.yml", Data: []byte("a"), Mode: 0o644}}, second: lkgTestFiles()},
		{name: "file becomes directory", first: []write.File{{Path: "rules", Data: []byte("r"), Mode: 0o644}},
			second: []write.File{{Path: "rules/a.yml", Data: []byte("a"), Mode: 0o644}}},
		{name: "empty set", first: lkgTestFiles(), second: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent, dir := lkgTestDir(t)
			lkgTestStore(t, dir, tt.first)
			lkgTestStore(t, dir, tt.second)
			lkgTestLoad(t, dir, tt.second)
			lkgTestOneVersion(t, parent)
		})
	}
}

func TestLKGInterruptedStore(t *testing.T) {
	parent, dir := lkgTestDir(t)
	other := filepath.Join(parent, "m-x") // a manager whose name starts like m's
	v1 := []write.File{{Path: "a.yml", Data: []byte("v1"), Mode: 0o644}}
	lkgTestStore(t, dir, v1)
	lkgTestStore(t, other, []write.File{{Path: "x.yml", Data: []byte("x"), Mode: 0o644}})
	// What a crash at various points of a store leaves: a half-filled
	// version directory, a prepared link not renamed yet.
	half := filepath.Join(parent, ".m.lkg-999")
	fstest.WriteFile(t, filepath.Join(half, "a.yml"), "half-writ", 0o644)
	fstest.Symlink(t, ".m.lkg-999", filepath.Join(parent, ".m.lkgtmp-999"))
	// Names that are not m's must survive m's clean-up.
	foreign := []string{".m.lkg-abc", "m.bak", ".m-x.lkg-1"}
	for _, name := range foreign {
		fstest.WriteFile(t, filepath.Join(parent, name), "keep", 0o644)
	}

	lkgTestLoad(t, dir, v1)

	v2 := []write.File{{Path: "a.yml", Data: []byte("v2"), Mode: 0o600}}
	lkgTestStore(t, dir, v2)
	lkgTestLoad(t, dir, v2)
	lkgTestLoad(t, other, []write.File{{Path: "x.yml", Data: []byte("x"), Mode: 0o644}})
	names := fstest.Names(t, parent)
	for _, gone := range []string{".m.lkg-999", ".m.lkgtmp-999"} {
		if slices.Contains(names, gone) {
			t.Errorf("leftover %s not cleaned: %q", gone, names)
		}
	}
	for _, kept := range foreign {
		if !slices.Contains(names, kept) {
			t.Errorf("%s was removed: %q", kept, names)
		}
	}
	var ours []string
	for _, n := range names {
		if owned("m", n) {
			ours = append(ours, n)
		}
	}
	if len(ours) != 1 {
		t.Errorf("versions of m left: %q, want exactly one", ours)
	}
}

func TestLKGFailedStoreKeepsOldCopy(t *testing.T) {
	tests := []struct {
		name  string
		files []write.File
	}{
		{name: "hostile path", files: []write.File{
			{Path: "a.yml", Data: []byte("new"), Mode: 0o644},
			{Path: "../../escape.yml", Data: []byte("x"), Mode: 0o644},
		}},
		{name: "duplicate path", files: []write.File{
			{Path: "a.yml", Data: []byte("new"), Mode: 0o644},
			{Path: "a.yml", Data: []byte("again"), Mode: 0o644},
		}},
		{name: "file and directory at one path", files: []write.File{
			{Path: "rules", Data: []byte("r"), Mode: 0o644},
			{Path: "rules/a.yml", Data: []byte("a"), Mode: 0o644},
		}},
	}
	old := []write.File{{Path: "a.yml", Data: []byte("old"), Mode: 0o644}}
	for _, tt := range tests {
		for _, how := range []string{"stored", "made by hand"} {
			t.Run(tt.name+", previous copy "+how, func(t *testing.T) {
				parent, dir := lkgTestDir(t)
				if how == "stored" {
					lkgTestStore(t, dir, old)
				} else {
					fstest.WriteFile(t, filepath.Join(dir, "a.yml"), "old", 0o644)
				}
				before := fstest.Names(t, parent)
				if err := Store(dir, tt.files); err == nil {
					t.Fatal("Store succeeded, want an error")
				}
				lkgTestLoad(t, dir, old)
				if names := fstest.Names(t, parent); !slices.Equal(names, before) {
					t.Errorf("parent holds %q after a failed store, want %q as before", names, before)
				}
				fstest.Missing(t, filepath.Join(filepath.Dir(parent), "escape.yml"))
			})
		}
	}
}

// TestLKGRemoveOthersErrors: a failure to clean the old copies is returned,
// never dropped.
func TestLKGRemoveOthersErrors(t *testing.T) {
	tests := []struct {
		name  string
		spoil func(t *testing.T, parent string, root *os.Root)
	}{
		{name: "directory removed", spoil: func(t *testing.T, parent string, _ *os.Root) {
			if err := os.RemoveAll(parent); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "root closed", spoil: func(_ *testing.T, _ string, root *os.Root) { root.Close() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent := filepath.Join(t.TempDir(), "lkg")
			lkgTestStore(t, filepath.Join(parent, "m"), lkgTestFiles())
			root, err := os.OpenRoot(parent)
			if err != nil {
				t.Fatal(err)
			}
			defer root.Close()
			tt.spoil(t, parent, root)
			if err := removeOthers(root, "m", ".m.lkg-1"); err == nil || !strings.Contains(err.Error(), "remove old copies") {
				t.Errorf("removeOthers = %v, want an error saying the old copies were not removed", err)
			}
		})
	}
}

// TestLKGRemovingOldVersionNeverFollowsSymlinks: a symlink planted in an old
// version leading out of the lkg directory is removed, not what it points at.
func TestLKGRemovingOldVersionNeverFollowsSymlinks(t *testing.T) {
	base := t.TempDir()
	parent := filepath.Join(base, "lkg")
	outside := filepath.Join(base, "outside")
	fstest.WriteFile(t, filepath.Join(outside, "keep.yml"), "keep", 0o644)
	dir := filepath.Join(parent, "m")
	lkgTestStore(t, dir, lkgTestFiles())
	for _, name := range []string{"evil", "rules/evil"} {
		fstest.Symlink(t, outside, filepath.Join(dir, name))
	}
	lkgTestStore(t, dir, lkgTestFiles())
	if data, err := os.ReadFile(filepath.Join(outside, "keep.yml")); err != nil || string(data) != "keep" {
		t.Errorf("outside/keep.yml: %q, %v; want it untouched", data, err)
	}
	lkgTestLoad(t, dir, lkgTestFiles())
}

func TestLoadWithoutCopy(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, dir string)
		wantErr string // "" when Load must report no copy without an error
	}{
		{name: "missing", setup: func(*testing.T, string) {}},
		{name: "missing parent", setup: func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Dir(dir)); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "link to a removed version", setup: func(t *testing.T, dir string) {
			fstest.Symlink(t, ".m.lkg-123", dir)
		}},
		{name: "a regular file", setup: func(t *testing.T, dir string) {
			fstest.WriteFile(t, dir, "junk", 0o644)
		}, wantErr: "not a directory"},
		{name: "link leading elsewhere", setup: func(t *testing.T, dir string) {
			fstest.Symlink(t, t.TempDir(), dir)
		}, wantErr: "not at a stored copy"},
		{name: "link to another manager's version", setup: func(t *testing.T, dir string) {
			fstest.Mkdir(t, filepath.Join(filepath.Dir(dir), ".n.lkg-1"), 0o700)
			fstest.Symlink(t, ".n.lkg-1", dir)
		}, wantErr: "not at a stored copy"},
		{name: "version holding a symlink", setup: func(t *testing.T, dir string) {
			lkgTestStore(t, dir, []write.File{{Path: "a.yml", Data: []byte("a"), Mode: 0o644}})
			secret := filepath.Join(t.TempDir(), "secret")
			fstest.WriteFile(t, secret, "secret", 0o600)
			fstest.Symlink(t, secret, filepath.Join(dir, "secret"))
		}, wantErr: "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "m")
			tt.setup(t, dir)
			files, ok, err := Load(dir)
			if ok || files != nil {
				t.Errorf("Load = %v, ok %v; want no copy", files, ok)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Load error %v, want none", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Load error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestLKGPlainDirectory(t *testing.T) {
	parent, dir := lkgTestDir(t)
	fstest.WriteFile(t, filepath.Join(dir, "sub", "old.yml"), "old", 0o640)
	lkgTestLoad(t, dir, []write.File{{Path: "sub/old.yml", Data: []byte("old"), Mode: 0o640}})

	files := lkgTestFiles()
	lkgTestStore(t, dir, files)
	lkgTestLoad(t, dir, files)
	if fi, err := os.Lstat(dir); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("dir after Store: %v, %v; want the link", fi, err)
	}
	lkgTestOneVersion(t, parent)
}

func TestLKGOwned(t *testing.T) {
	// A manager's name and an entry, and whether the entry is the manager's.
	owns := [][2]string{{"m", ".m.lkg-1"}, {"m", ".m.lkgtmp-42"}, {"m-x", ".m-x.lkg-7"}}
	others := [][2]string{{"m", ".m.lkg-"}, {"m", ".m.lkg-1x"}, {"m", ".m-x.lkg-1"}, {"m", "m"}}
	for _, c := range slices.Concat(owns, others) {
		want := slices.Contains(owns, c)
		t.Run(c[0]+" "+c[1], func(t *testing.T) {
			if got := owned(c[0], c[1]); got != want {
				t.Errorf("owned(%q, %q) = %v", c[0], c[1], got)
			}
		})
	}
}
