package pipeline

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// lkgTestFiles is a manager's set of files with nested paths and modes.
func lkgTestFiles() []FileContent {
	return []FileContent{
		{Path: "rules/a.yml", Data: []byte("groups: []\n"), Mode: 0o600},
		{Path: "prometheus.yml", Data: []byte("global: {}\n"), Mode: 0o644},
		{Path: "rules/sub/b.yml", Data: []byte("b\n"), Mode: 0o640},
		{Path: "rules.yml", Data: nil, Mode: 0o644},
	}
}

// lkgTestSorted returns files sorted by Path, as LoadLKG returns them.
func lkgTestSorted(files []FileContent) []FileContent {
	out := slices.Clone(files)
	slices.SortFunc(out, func(a, b FileContent) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// lkgTestLoad loads dir and compares it with want.
func lkgTestLoad(t *testing.T, dir string, want []FileContent) {
	t.Helper()
	got, ok, err := LoadLKG(dir)
	if err != nil || !ok {
		t.Fatalf("LoadLKG = ok %v, %v; want a copy", ok, err)
	}
	want = lkgTestSorted(want)
	if len(got) != len(want) {
		t.Fatalf("LoadLKG returned %d files, want %d: %v", len(got), len(want), got)
	}
	for i := range want {
		if got[i].Path != want[i].Path || string(got[i].Data) != string(want[i].Data) || got[i].Mode != want[i].Mode {
			t.Errorf("file %d: got %s %q %v, want %s %q %v", i,
				got[i].Path, got[i].Data, got[i].Mode, want[i].Path, want[i].Data, want[i].Mode)
		}
	}
}

// lkgTestEntries lists the names in dir.
func lkgTestEntries(t *testing.T, dir string) []string {
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

func TestLKGRoundTrip(t *testing.T) {
	parent := filepath.Join(t.TempDir(), "lkg")
	dir := filepath.Join(parent, "prometheus")
	files := lkgTestFiles()
	if err := StoreLKG(dir, files); err != nil {
		t.Fatalf("StoreLKG: %v", err)
	}
	lkgTestLoad(t, dir, files)

	// Every directory of the copy is 0700: it may hold secrets.
	target, err := os.Readlink(dir)
	if err != nil {
		t.Fatalf("dir is not the link StoreLKG documents: %v", err)
	}
	root := filepath.Join(parent, target)
	for _, d := range []string{parent, root, filepath.Join(root, "rules"), filepath.Join(root, "rules", "sub")} {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v, mode %v; want 0700", d, err, fi.Mode().Perm())
		}
	}
	if names := lkgTestEntries(t, parent); len(names) != 2 {
		t.Errorf("lkg holds %q, want the link and one version", names)
	}
}

func TestLKGReplace(t *testing.T) {
	tests := []struct {
		name   string
		first  []FileContent
		second []FileContent
	}{
		{name: "smaller set removes files", first: lkgTestFiles(), second: []FileContent{
			{Path: "prometheus.yml", Data: []byte("v2\n"), Mode: 0o600},
		}},
		{name: "larger set", first: []FileContent{{Path: "a.yml", Data: []byte("a"), Mode: 0o644}}, second: lkgTestFiles()},
		{name: "file becomes directory", first: []FileContent{{Path: "rules", Data: []byte("r"), Mode: 0o644}},
			second: []FileContent{{Path: "rules/a.yml", Data: []byte("a"), Mode: 0o644}}},
		{name: "empty set", first: lkgTestFiles(), second: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "m")
			if err := StoreLKG(dir, tt.first); err != nil {
				t.Fatal(err)
			}
			if err := StoreLKG(dir, tt.second); err != nil {
				t.Fatal(err)
			}
			lkgTestLoad(t, dir, tt.second)
			if names := lkgTestEntries(t, parent); len(names) != 2 {
				t.Errorf("parent holds %q, want the link and one version: the old one must be gone", names)
			}
		})
	}
}

func TestLKGInterruptedStore(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "m")
	other := filepath.Join(parent, "m-x") // a manager whose name starts like m's
	v1 := []FileContent{{Path: "a.yml", Data: []byte("v1"), Mode: 0o644}}
	if err := StoreLKG(dir, v1); err != nil {
		t.Fatal(err)
	}
	if err := StoreLKG(other, []FileContent{{Path: "x.yml", Data: []byte("x"), Mode: 0o644}}); err != nil {
		t.Fatal(err)
	}
	// What a crash at various points of a store leaves: a half-filled
	// version directory, a prepared link not renamed yet.
	half := filepath.Join(parent, ".m.lkg-999")
	writeTestFile(t, filepath.Join(half, "a.yml"), "half-writ", 0o644)
	if err := os.Symlink(".m.lkg-999", filepath.Join(parent, ".m.lkgtmp-999")); err != nil {
		t.Fatal(err)
	}
	// Names that are not m's must survive m's clean-up.
	foreign := []string{".m.lkg-abc", "m.bak", ".m-x.lkg-1"}
	for _, name := range foreign {
		writeTestFile(t, filepath.Join(parent, name), "keep", 0o644)
	}

	lkgTestLoad(t, dir, v1)

	v2 := []FileContent{{Path: "a.yml", Data: []byte("v2"), Mode: 0o600}}
	if err := StoreLKG(dir, v2); err != nil {
		t.Fatal(err)
	}
	lkgTestLoad(t, dir, v2)
	lkgTestLoad(t, other, []FileContent{{Path: "x.yml", Data: []byte("x"), Mode: 0o644}})
	names := lkgTestEntries(t, parent)
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
		if lkgOwned("m", n) {
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
		files []FileContent
	}{
		{name: "hostile path", files: []FileContent{
			{Path: "a.yml", Data: []byte("new"), Mode: 0o644},
			{Path: "../../escape.yml", Data: []byte("x"), Mode: 0o644},
		}},
		{name: "duplicate path", files: []FileContent{
			{Path: "a.yml", Data: []byte("new"), Mode: 0o644},
			{Path: "a.yml", Data: []byte("again"), Mode: 0o644},
		}},
		{name: "file and directory at one path", files: []FileContent{
			{Path: "rules", Data: []byte("r"), Mode: 0o644},
			{Path: "rules/a.yml", Data: []byte("a"), Mode: 0o644},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "m")
			old := []FileContent{{Path: "a.yml", Data: []byte("old"), Mode: 0o644}}
			if err := StoreLKG(dir, old); err != nil {
				t.Fatal(err)
			}
			if err := StoreLKG(dir, tt.files); err == nil {
				t.Fatal("StoreLKG succeeded, want an error")
			}
			lkgTestLoad(t, dir, old)
			if names := lkgTestEntries(t, parent); len(names) != 2 {
				t.Errorf("parent holds %q after a failed store, want the link and the old version", names)
			}
			writeTestMissing(t, filepath.Join(filepath.Dir(parent), "escape.yml"))
		})
	}
}

func TestLoadLKGWithoutCopy(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, dir string)
		wantErr string // "" when LoadLKG must report no copy without an error
	}{
		{name: "missing", setup: func(*testing.T, string) {}},
		{name: "missing parent", setup: func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Dir(dir)); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "link to a removed version", setup: func(t *testing.T, dir string) {
			if err := os.Symlink(".m.lkg-123", dir); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "a regular file", setup: func(t *testing.T, dir string) {
			writeTestFile(t, dir, "junk", 0o644)
		}, wantErr: "not a directory"},
		{name: "link leading elsewhere", setup: func(t *testing.T, dir string) {
			if err := os.Symlink("/etc", dir); err != nil {
				t.Fatal(err)
			}
		}, wantErr: "not at a stored copy"},
		{name: "link to another manager's version", setup: func(t *testing.T, dir string) {
			if err := os.Mkdir(filepath.Join(filepath.Dir(dir), ".n.lkg-1"), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(".n.lkg-1", dir); err != nil {
				t.Fatal(err)
			}
		}, wantErr: "not at a stored copy"},
		{name: "version holding a symlink", setup: func(t *testing.T, dir string) {
			if err := StoreLKG(dir, []FileContent{{Path: "a.yml", Data: []byte("a"), Mode: 0o644}}); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("/etc/passwd", filepath.Join(dir, "passwd")); err != nil {
				t.Fatal(err)
			}
		}, wantErr: "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "m")
			tt.setup(t, dir)
			files, ok, err := LoadLKG(dir)
			if ok || files != nil {
				t.Errorf("LoadLKG = %v, ok %v; want no copy", files, ok)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("LoadLKG error %v, want none", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("LoadLKG error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestLKGPlainDirectory(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "m")
	writeTestFile(t, filepath.Join(dir, "sub", "old.yml"), "old", 0o640)
	lkgTestLoad(t, dir, []FileContent{{Path: "sub/old.yml", Data: []byte("old"), Mode: 0o640}})

	files := lkgTestFiles()
	if err := StoreLKG(dir, files); err != nil {
		t.Fatal(err)
	}
	lkgTestLoad(t, dir, files)
	if fi, err := os.Lstat(dir); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("dir after StoreLKG: %v, %v; want the link", fi, err)
	}
	if names := lkgTestEntries(t, parent); len(names) != 2 {
		t.Errorf("parent holds %q, want the link and one version", names)
	}
}

func TestLKGOwned(t *testing.T) {
	tests := []struct {
		name, entry string
		want        bool
	}{
		{"m", ".m.lkg-1", true},
		{"m", ".m.lkgtmp-42", true},
		{"m", ".m.lkg-", false},
		{"m", ".m.lkg-1x", false},
		{"m", ".m-x.lkg-1", false},
		{"m", "m", false},
		{"m-x", ".m-x.lkg-7", true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s %s", tt.name, tt.entry), func(t *testing.T) {
			if got := lkgOwned(tt.name, tt.entry); got != tt.want {
				t.Errorf("lkgOwned(%q, %q) = %v", tt.name, tt.entry, got)
			}
		})
	}
}
