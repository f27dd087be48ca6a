package atomicfile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/butler-sre/butler/internal/errtest"
	"github.com/butler-sre/butler/internal/fstest"
)

// openRoot opens dir as a root, closed when the test ends.
func openRoot(t *testing.T, dir string) *os.Root {
	t.Helper()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	return root
}

func TestCleanRel(t *testing.T) {
	tests := []struct {
		name    string
		rel     string
		want    string // "" when an error is expected
		errPart string // "" when the path is accepted
	}{
		{name: "plain file", rel: "a.yml", want: "a.yml"},
		{name: "nested", rel: "new/a.yml", want: "new/a.yml"},
		{name: "dot segments cleaned", rel: "./real//x.yml", want: "real/x.yml"},
		{name: "trailing slash", rel: "real/", want: "real"},
		{name: "parent escape", rel: "../x", errPart: `".."`},
		{name: "absolute", rel: "/etc/passwd", errPart: "relative"},
		{name: "escape after a directory", rel: "a/../../x", errPart: `".."`},
		{name: "dot-dot staying inside", rel: "a/../b", errPart: `".."`},
		{name: "dot-dot at the end", rel: "a/..", errPart: `".."`},
		{name: "empty", rel: "", errPart: "empty"},
		{name: "dot", rel: ".", errPart: "itself"},
		{name: "dot slash", rel: "./", errPart: "itself"},
		{name: "nul byte", rel: "a\x00b", errPart: "NUL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CleanRel(tt.rel)
			errtest.Want(t, fmt.Sprintf("CleanRel(%q)", tt.rel), err, tt.errPart)
			if got != tt.want {
				t.Errorf("CleanRel(%q) = %q, want %q", tt.rel, got, tt.want)
			}
		})
	}
}

func TestCheckNoSymlink(t *testing.T) {
	dir, rootLink, outside := fstest.Escape(t, "root")
	fstest.WriteFile(t, filepath.Join(dir, "plain"), "p", 0o644)
	for _, l := range []struct{ target, name string }{
		{filepath.Join(outside, "secret"), "outfile.yml"},
		{filepath.Join(dir, "real"), "indir"},
		{"real", "relindir"},
		{filepath.Join(dir, "rules", "gone"), "rules"},
	} {
		fstest.Symlink(t, l.target, filepath.Join(dir, l.name))
	}

	tests := []struct {
		name    string
		root    string
		rel     string
		errPart string // "" when the path is accepted
	}{
		{name: "plain file", root: dir, rel: "a.yml"},
		{name: "nested new directory", root: dir, rel: "new/a.yml"},
		{name: "existing directory", root: dir, rel: "real/x.yml"},
		{name: "dot segments", root: dir, rel: "./real//x.yml"},
		{name: "parent is a regular file", root: dir, rel: "plain/a.yml"},
		{name: "root itself a symlink", root: rootLink, rel: "real/x.yml"},
		{name: "hostile path", root: dir, rel: "../x", errPart: `".."`},
		{name: "symlink directory leading out", root: dir, rel: "outdir/secret", errPart: "outdir is a symlink"},
		{name: "symlink directory leading out, new file", root: dir, rel: "outdir/new.yml", errPart: "outdir is a symlink"},
		{name: "symlink file leading out", root: dir, rel: "outfile.yml", errPart: "outfile.yml is a symlink"},
		{name: "absolute symlink inside", root: dir, rel: "indir/x.yml", errPart: "indir is a symlink"},
		{name: "relative symlink inside", root: dir, rel: "relindir/x.yml", errPart: "relindir is a symlink"},
		{name: "dangling symlink", root: dir, rel: "rules/a.yml", errPart: "rules is a symlink"},
		{name: "symlink below a symlinked root", root: rootLink, rel: "outdir/secret", errPart: "outdir is a symlink"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckNoSymlink(openRoot(t, tt.root), tt.rel)
			errtest.Want(t, fmt.Sprintf("CheckNoSymlink(%q)", tt.rel), err, tt.errPart)
			if err != nil && !strings.Contains(err.Error(), fmt.Sprintf("%q", tt.rel)) {
				t.Errorf("error %q does not name the path %q", err, tt.rel)
			}
		})
	}
}

func TestWriteFile(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(t *testing.T, dir string)
		rel      string
		data     string
		mode     os.FileMode
		dirMode  os.FileMode // 0755 when zero
		wantErr  string
		wantDirs []string // directories that must exist with dirMode afterwards
	}{
		{name: "new file", rel: "a.yml", data: "new\n", mode: 0o644},
		{name: "new file in new directories", rel: "x/y/a.yml", data: "new\n", mode: 0o640, wantDirs: []string{"x", "x/y"}},
		{name: "new directories with another mode", rel: "x/y/a.yml", data: "new\n", mode: 0o600, dirMode: 0o700, wantDirs: []string{"x", "x/y"}},
		{name: "replace content and mode", setup: func(t *testing.T, dir string) {
			fstest.WriteFile(t, filepath.Join(dir, "a.yml"), "old\n", 0o600)
		}, rel: "a.yml", data: "new\n", mode: 0o644},
		{name: "replace in an existing directory", setup: func(t *testing.T, dir string) {
			fstest.WriteFile(t, filepath.Join(dir, "rules", "a.yml"), "old\n", 0o644)
		}, rel: "rules/a.yml", data: "new\n", mode: 0o644},
		{name: "mode with no permission for others", rel: "secret.yml", data: "s", mode: 0o400},
		{name: "setgid bit kept", rel: "g.sh", data: "#!/bin/sh\n", mode: os.ModeSetgid | 0o755},
		{name: "empty content", setup: func(t *testing.T, dir string) {
			fstest.WriteFile(t, filepath.Join(dir, "a.yml"), "old\n", 0o644)
		}, rel: "a.yml", data: "", mode: 0o644},
		{name: "long name", rel: strings.Repeat("n", 200) + ".yml", data: "long", mode: 0o644},
		{name: "directory in the way", setup: func(t *testing.T, dir string) {
			if err := os.MkdirAll(filepath.Join(dir, "a.yml", "sub"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, rel: "a.yml", data: "new", mode: 0o644, wantErr: "write a.yml"},
		{name: "parent is a file", setup: func(t *testing.T, dir string) {
			fstest.WriteFile(t, filepath.Join(dir, "p"), "file", 0o644)
		}, rel: "p/a.yml", data: "new", mode: 0o644, wantErr: "p is a file"},
		{name: "hostile path", rel: "../a.yml", data: "new", mode: 0o644, wantErr: `".."`},
		{name: "the root itself", rel: ".", data: "new", mode: 0o644, wantErr: "itself"},
	}
	// Modes must be exact whatever the umask; tests that change the umask
	// run alone, as top-level tests that are not parallel.
	fstest.Umask(t, 0o077)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			dir := filepath.Join(base, "root")
			fstest.Mkdir(t, dir, 0o755)
			if tt.setup != nil {
				tt.setup(t, dir)
			}
			dirMode := tt.dirMode
			if dirMode == 0 {
				dirMode = 0o755
			}
			err := WriteFile(openRoot(t, dir), tt.rel, []byte(tt.data), tt.mode, dirMode)
			fstest.NoTemp(t, base, IsTemp)
			errtest.Want(t, "WriteFile", err, tt.wantErr)
			if err != nil {
				if entries, _ := os.ReadDir(base); len(entries) != 1 {
					t.Errorf("something was written beside the root: %v", entries)
				}
				return
			}
			data, mode := fstest.Read(t, filepath.Join(dir, tt.rel))
			if data != tt.data || mode != tt.mode {
				t.Errorf("got %q mode %v, want %q mode %v", data, mode, tt.data, tt.mode)
			}
			for _, d := range tt.wantDirs {
				fstest.DirMode(t, filepath.Join(dir, d), dirMode)
			}
		})
	}
}

func TestWriteFileKeepsOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("changing a file's owner needs root")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "a.yml")
	fstest.WriteFile(t, path, "old", 0o640)
	if err := os.Chown(path, 1234, 2345); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(openRoot(t, dir), "a.yml", []byte("new"), os.ModeSetuid|0o750, 0o755); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != 1234 || st.Gid != 2345 {
		t.Errorf("owner %d:%d, want 1234:2345", st.Uid, st.Gid)
	}
	if got := fi.Mode() & ModeMask; got != os.ModeSetuid|0o750 {
		t.Errorf("mode %v, want setuid 0750 (chown must come before chmod)", got)
	}
}

// TestWriteFileReaderSeesWholeFiles reads the file while it is being
// replaced again and again: every read must be one complete version.
func TestWriteFileReaderSeesWholeFiles(t *testing.T) {
	dir := t.TempDir()
	root := openRoot(t, dir)
	path := filepath.Join(dir, "a.yml")
	versions := [][]byte{bytes.Repeat([]byte("a"), 256<<10), bytes.Repeat([]byte("b"), 128<<10)}
	if err := WriteFile(root, "a.yml", versions[0], 0o644, 0o755); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var reads atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for !stop.Load() {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Errorf("read: %v", err)
				return
			}
			if !bytes.Equal(data, versions[0]) && !bytes.Equal(data, versions[1]) {
				t.Errorf("read a mixed or partial file of %d bytes", len(data))
				return
			}
			reads.Add(1)
		}
	})
	// At least 40 replaces, and more until the reader has read a few times.
	for i := 0; i < 40 || (reads.Load() < 20 && i < 2000); i++ {
		if err := WriteFile(root, "a.yml", versions[i%2], 0o644, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if reads.Load() == 0 {
		t.Error("the reader never read the file")
	}
}

func TestWritePath(t *testing.T) {
	tests := []struct {
		name    string
		rel     string // relative to a fresh temporary directory
		setup   func(t *testing.T, dir string)
		mode    os.FileMode
		dirMode os.FileMode
		newDirs []string // created, so with dirMode
	}{
		{name: "existing directory", rel: "butler.prom", mode: 0o644, dirMode: 0o755},
		{name: "missing directories", rel: "a/b/butler.prom", mode: 0o644, dirMode: 0o755, newDirs: []string{"a", "a/b"}},
		{name: "private", rel: "state/config.toml", mode: 0o600, dirMode: 0o700, newDirs: []string{"state"}},
		{name: "replace", rel: "butler.prom", mode: 0o644, dirMode: 0o755, setup: func(t *testing.T, dir string) {
			fstest.WriteFile(t, filepath.Join(dir, "butler.prom"), "old", 0o600)
		}},
		{name: "directory reached through a symlink", rel: "link/butler.prom", mode: 0o644, dirMode: 0o755, setup: func(t *testing.T, dir string) {
			fstest.Mkdir(t, filepath.Join(dir, "real"), 0o755)
			fstest.Symlink(t, "real", filepath.Join(dir, "link"))
		}},
		{name: "existing directory keeps its mode", rel: "x/butler.prom", mode: 0o644, dirMode: 0o755, setup: func(t *testing.T, dir string) {
			fstest.Mkdir(t, filepath.Join(dir, "x"), 0o750)
		}},
	}
	// The directories must get dirMode whatever the umask: a node_exporter
	// running as another user must be able to read the textfile's directory.
	fstest.Umask(t, 0o077)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := fstest.TempDir(t, tt.setup)
			before := map[string]os.FileMode{}
			for d := filepath.Dir(tt.rel); d != "."; d = filepath.Dir(d) {
				if fi, err := os.Stat(filepath.Join(dir, d)); err == nil {
					before[d] = fi.Mode().Perm()
				}
			}
			p := filepath.Join(dir, tt.rel)
			if err := WritePath(p, []byte("new\n"), tt.mode, tt.dirMode); err != nil {
				t.Fatal(err)
			}
			if data, mode := fstest.Read(t, p); data != "new\n" || mode != tt.mode {
				t.Errorf("got %q mode %v, want %q mode %v", data, mode, "new\n", tt.mode)
			}
			for _, d := range tt.newDirs {
				fstest.DirMode(t, filepath.Join(dir, d), tt.dirMode)
			}
			for d, mode := range before {
				if fi, err := os.Stat(filepath.Join(dir, d)); err != nil || fi.Mode().Perm() != mode {
					t.Errorf("existing directory %s changed: %v, %v; want mode %v", d, fi, err, mode)
				}
			}
			fstest.NoTemp(t, dir, IsTemp)
		})
	}
}

// TestStagePathFunc: a staged file leaves its target as it was until
// Commit puts it in place, or Discard removes it; each happens once.
func TestStagePathFunc(t *testing.T) {
	fill := func(w *bufio.Writer) error {
		_, err := w.WriteString("new\n")
		return err
	}
	for _, tt := range []struct {
		name   string
		commit bool
		want   string // the target's content after
	}{
		{"commit", true, "new\n"},
		{"discard", false, "old"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "butler.prom")
			fstest.WriteFile(t, p, "old", 0o644)
			st, err := StagePathFunc(p, fill, 0o640, 0o755)
			if err != nil {
				t.Fatal(err)
			}
			if data, _ := fstest.Read(t, p); data != "old" {
				t.Fatalf("staged: the target holds %q, want it untouched", data)
			}
			if names := fstest.Names(t, dir); len(names) != 2 {
				t.Fatalf("staged: %v, want the target and one temporary file", names)
			}
			if tt.commit {
				if err := st.Commit(); err != nil {
					t.Fatal(err)
				}
			} else {
				st.Discard()
			}
			if data, mode := fstest.Read(t, p); data != tt.want || (tt.commit && mode != 0o640) {
				t.Errorf("after: %q mode %v, want %q", data, mode, tt.want)
			}
			fstest.NoTemp(t, dir, IsTemp)
			st.Discard() // a no-op now
			if err := st.Commit(); err == nil || !strings.Contains(err.Error(), "committed or discarded already") {
				t.Errorf("a second Commit: %v, want an error", err)
			}
			if data, _ := fstest.Read(t, p); data != tt.want {
				t.Errorf("after a second Commit: %q, want %q", data, tt.want)
			}
		})
	}
	t.Run("fill fails", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "butler.prom")
		fstest.WriteFile(t, p, "old", 0o644)
		st, err := StagePathFunc(p, func(w *bufio.Writer) error {
			_, _ = w.WriteString("half")
			return errors.New("refused")
		}, 0o644, 0o755)
		if err == nil || st != nil || !strings.Contains(err.Error(), "refused") || !strings.Contains(err.Error(), dir) {
			t.Fatalf("StagePathFunc = %v, %v; want the fill's error naming the directory", st, err)
		}
		if data, _ := fstest.Read(t, p); data != "old" {
			t.Errorf("the target holds %q", data)
		}
		fstest.NoTemp(t, dir, IsTemp)
	})
}

// TestWritePathRemovesStaleTemps: the temporary files a killed writer left
// beside the file go with the next write, and nothing else does.
func TestWritePathRemovesStaleTemps(t *testing.T) {
	dir := t.TempDir()
	stale := []string{".butler.prom.tmp1", ".butler.prom.tmp424242"}
	kept := []string{".butler.prom.tmpx", ".other.prom.tmp1", "other.prom", ".butler.prom.swp"}
	for _, n := range append(slices.Clone(stale), kept...) {
		fstest.WriteFile(t, filepath.Join(dir, n), "left", 0o600)
	}
	if err := WritePath(filepath.Join(dir, "butler.prom"), []byte("m 1\n"), 0o644, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range stale {
		fstest.Missing(t, filepath.Join(dir, n))
	}
	for _, n := range kept {
		if _, err := os.Lstat(filepath.Join(dir, n)); err != nil {
			t.Errorf("%s was touched: %v", n, err)
		}
	}
}

func TestWritePathErrors(t *testing.T) {
	dir := t.TempDir()
	fstest.WriteFile(t, filepath.Join(dir, "file"), "f", 0o644)
	fstest.Mkdir(t, filepath.Join(dir, "taken"), 0o755)
	tests := []struct {
		name    string
		path    string
		errPart string
	}{
		{name: "parent is a file", path: filepath.Join(dir, "file", "butler.prom"), errPart: filepath.Join(dir, "file", "butler.prom")},
		{name: "directory in the way", path: filepath.Join(dir, "taken"), errPart: "write taken"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := WritePath(tt.path, []byte("x"), 0o644, 0o755)
			if err == nil || !strings.Contains(err.Error(), tt.errPart) {
				t.Fatalf("WritePath error = %v, want one containing %q", err, tt.errPart)
			}
			fstest.NoTemp(t, dir, IsTemp)
		})
	}
}

func TestMkdirAll(t *testing.T) {
	tests := []struct {
		name        string
		dir         string
		setup       func(t *testing.T, root string)
		wantCreated []string
		wantErr     string
	}{
		{name: "the root", dir: "."},
		{name: "all missing", dir: "a/b/c", wantCreated: []string{"a", "a/b", "a/b/c"}},
		{name: "some missing", dir: "a/b/c", setup: func(t *testing.T, root string) {
			fstest.Mkdir(t, filepath.Join(root, "a"), 0o700)
		}, wantCreated: []string{"a/b", "a/b/c"}},
		{name: "none missing", dir: "a", setup: func(t *testing.T, root string) {
			fstest.Mkdir(t, filepath.Join(root, "a"), 0o700)
		}},
		{name: "a file in the way", dir: "a/b", setup: func(t *testing.T, root string) {
			fstest.WriteFile(t, filepath.Join(root, "a"), "f", 0o644)
		}, wantErr: "a is a file"},
		{name: "a symlink in the way", dir: "a/b", setup: func(t *testing.T, root string) {
			fstest.Mkdir(t, filepath.Join(root, "real"), 0o755)
			fstest.Symlink(t, "real", filepath.Join(root, "a"))
		}, wantErr: "a is a symlink"},
	}
	fstest.Umask(t, 0o077)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := fstest.TempDir(t, tt.setup)
			created, err := MkdirAll(openRoot(t, dir), tt.dir, 0o751)
			errtest.Want(t, "MkdirAll", err, tt.wantErr)
			if err != nil {
				if _, err := os.Lstat(filepath.Join(dir, "real", "b")); err == nil {
					t.Error("a directory was created through the symlink")
				}
				return
			}
			if !slices.Equal(created, tt.wantCreated) {
				t.Errorf("created %q, want %q", created, tt.wantCreated)
			}
			for _, d := range created {
				if fi, err := os.Lstat(filepath.Join(dir, d)); err != nil || fi.Mode().Perm() != 0o751 || !fi.IsDir() {
					t.Errorf("%s: %v, %v; want a directory of mode 0751", d, fi, err)
				}
			}
		})
	}
}

func TestIsTemp(t *testing.T) {
	// Each entry and the base it is a temporary of; "" for none (not ok).
	for _, tt := range [][2]string{
		{".a.yml.tmp1", "a.yml"},
		{".a.yml.tmp4294967295", "a.yml"},
		{".a.tmp1.tmp2", "a.tmp1"},
		{".a.yml.tmp", ""},
		{".a.yml.tmp12x", ""},
		{"a.yml.tmp1", ""},
		{"..tmp1", ""},
		{".a.yml", ""},
		{".a.yml.swp", ""},
	} {
		entry, wantBase, wantOK := tt[0], tt[1], tt[1] != ""
		t.Run(entry, func(t *testing.T) {
			base, ok := IsTemp(entry)
			if base != wantBase || ok != wantOK {
				t.Errorf("IsTemp(%q) = %q, %v; want %q, %v", entry, base, ok, wantBase, wantOK)
			}
		})
	}
}

// TestCreateTempNames: the temporary files WriteFile makes are the ones
// IsTemp and RemoveStale recognise, never a name a manager reads.
func TestCreateTempNames(t *testing.T) {
	dir := t.TempDir()
	root := openRoot(t, dir)
	for _, base := range []string{"a.yml", "butler.prom", strings.Repeat("x", 300)} {
		t.Run(base[:min(len(base), 12)], func(t *testing.T) {
			f, name, err := createTemp(root, ".", base)
			if err != nil {
				t.Fatal(err)
			}
			defer root.Remove(name)
			f.Close()
			got, ok := IsTemp(name)
			if !ok || got != cutBase(base) {
				t.Errorf("IsTemp(%q) = %q, %v; want %q", name, got, ok, cutBase(base))
			}
			if len(name) > 255 || strings.HasSuffix(name, ".yml") || strings.HasSuffix(name, ".prom") || !strings.HasPrefix(name, ".") {
				t.Errorf("temporary name %q may be read as the target", name)
			}
		})
	}
}

// TestSymlinkToOutside is the point of the write sequence: a symlink under
// the root leading out of it, there before the write or swapped in for a
// directory during it, makes nothing be created, renamed or removed outside,
// and the error names the path.
func TestSymlinkToOutside(t *testing.T) {
	// setupOutside makes the outside directory holding a file each write
	// would touch through the symlink, and a temporary RemoveStale would
	// remove, beside an empty root directory; it returns the three.
	setupOutside := func(t *testing.T) (base, outside, dir string) {
		base = t.TempDir()
		outside = filepath.Join(base, "outside")
		fstest.WriteFile(t, filepath.Join(outside, "a.yml"), "outside", 0o644)
		fstest.WriteFile(t, filepath.Join(outside, ".a.yml.tmp7"), "outside temporary", 0o600)
		fstest.WriteFile(t, filepath.Join(outside, "deeper", "a.yml"), "outside deeper", 0o644)
		dir = filepath.Join(base, "root")
		fstest.Mkdir(t, dir, 0o755)
		return base, outside, dir
	}
	// checkRefused runs every operation through the symlinked directory sub.
	checkRefused := func(t *testing.T, root *os.Root) {
		t.Helper()
		for _, rel := range []string{"sub/a.yml", "sub/new.yml", "sub/deeper/a.yml", "sub/new/b.yml"} {
			err := WriteFile(root, rel, []byte("inside"), 0o644, 0o755)
			if err == nil || !strings.Contains(err.Error(), rel) || !strings.Contains(err.Error(), "symlink") {
				t.Errorf("WriteFile(%s) = %v, want an error naming it and the symlink", rel, err)
			}
		}
		for _, dir := range []string{"sub", "sub/new", "sub/deeper"} {
			if _, err := MkdirAll(root, dir, 0o755); err == nil || !strings.Contains(err.Error(), dir) {
				t.Errorf("MkdirAll(%s) = %v, want an error naming it", dir, err)
			}
		}
		if err := RemoveStale(root, []string{"sub/a.yml"}); err != nil {
			t.Errorf("RemoveStale: %v", err)
		}
	}

	t.Run("present before", func(t *testing.T) {
		_, outside, dir := setupOutside(t)
		fstest.Symlink(t, outside, filepath.Join(dir, "sub"))
		fstest.Symlink(t, filepath.Join(outside, "a.yml"), filepath.Join(dir, "link.yml"))
		before := fstest.Tree(t, outside)
		root := openRoot(t, dir)
		checkRefused(t, root)
		if err := WriteFile(root, "link.yml", []byte("inside"), 0o644, 0o755); err == nil || !strings.Contains(err.Error(), "link.yml") {
			t.Errorf("WriteFile(link.yml) = %v, want an error naming it", err)
		}
		fstest.SameTree(t, outside, before)
	})

	t.Run("swapped in after the root was opened", func(t *testing.T) {
		base, outside, dir := setupOutside(t)
		root := openRoot(t, dir)
		if err := WriteFile(root, "sub/a.yml", []byte("inside"), 0o644, 0o755); err != nil {
			t.Fatal(err)
		}
		// The checks of WriteFile pass while sub is a directory...
		if err := CheckNoSymlink(root, "sub/a.yml"); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "sub"), filepath.Join(base, "moved")); err != nil {
			t.Fatal(err)
		}
		fstest.Symlink(t, outside, filepath.Join(dir, "sub"))
		before := fstest.Tree(t, outside)
		// ...then the steps that follow them must not reach outside either.
		if f, name, err := createTemp(root, "sub", "a.yml"); err == nil {
			f.Close()
			t.Errorf("createTemp made %s through the symlink", name)
		}
		if err := SyncDir(root, "sub"); err == nil {
			t.Error("SyncDir opened the directory through the symlink")
		}
		checkRefused(t, root)
		fstest.SameTree(t, outside, before)
		if data, _ := fstest.Read(t, filepath.Join(base, "moved", "a.yml")); data != "inside" {
			t.Errorf("the moved directory's file changed: %q", data)
		}
	})
}

// TestWriteFileFunc: what fill writes becomes the file, in one piece however
// large; when fill fails midway the old file stays and no temporary is left.
func TestWriteFileFunc(t *testing.T) {
	dir := t.TempDir()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	big := strings.Repeat("0123456789abcdef", 20000) // larger than the buffer
	fill := func(s string, fail error) func(*bufio.Writer) error {
		return func(w *bufio.Writer) error {
			if _, err := w.WriteString(s); err != nil {
				return err
			}
			return fail
		}
	}
	if err := WriteFileFunc(root, "f.txt", fill(big, nil), 0o640, 0o755); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "f.txt")); string(got) != big {
		t.Fatalf("file holds %d bytes, want the %d written", len(got), len(big))
	}
	boom := errors.New("boom")
	if err := WriteFileFunc(root, "f.txt", fill("new "+big, boom), 0o640, 0o755); !errors.Is(err, boom) {
		t.Fatalf("error %v, want the fill's", err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "f.txt")); string(got) != big {
		t.Error("a failed fill changed the file")
	}
	if names := fstest.Names(t, dir); !slices.Equal(names, []string{"f.txt"}) {
		t.Errorf("directory holds %v, want only f.txt", names)
	}
}
