package write

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/butler-sre/butler/internal/errtest"
	"github.com/butler-sre/butler/internal/fstest"
	"github.com/butler-sre/butler/pipeline/atomicfile"
)

// openDest opens the dest dir, closed when the test ends.
func openDest(t *testing.T, dir string) *Dest {
	t.Helper()
	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// file is a File of mode 0644 holding data.
func file(path, data string) File { return File{Path: path, Data: []byte(data), Mode: 0o644} }

// paths returns the Path of each file.
func paths(files []File) []string {
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = f.Path
	}
	return out
}

func TestOpen(t *testing.T) {
	base := t.TempDir()
	fstest.WriteFile(t, filepath.Join(base, "file"), "f", 0o644)
	tests := []struct {
		name    string
		dir     string
		errPart string // "" when Open succeeds
	}{
		{name: "existing directory", dir: base},
		{name: "missing directory", dir: filepath.Join(base, "missing", "dest")},
		{name: "unclean path", dir: base + "/./x/../missing/"},
		{name: "empty", dir: "", errPart: "empty destination"},
		{name: "a file", dir: filepath.Join(base, "file"), errPart: filepath.Join(base, "file")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Open(tt.dir)
			errtest.Want(t, fmt.Sprintf("Open(%q)", tt.dir), err, tt.errPart)
			if err != nil {
				return
			}
			if d.Dir() != filepath.Clean(tt.dir) {
				t.Errorf("Dir() = %q, want %q", d.Dir(), filepath.Clean(tt.dir))
			}
			if err := d.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	fstest.Missing(t, filepath.Join(base, "missing"))
	if (*Dest)(nil).Close() != nil {
		t.Error("Close on a nil Dest returned an error")
	}
}

// TestCheck: Check refuses what atomicfile's CleanRel and CheckNoSymlink
// refuse (which paths those are is tested there, once), on a dest that exists
// and on one that does not yet; dest itself may be a symlink.
func TestCheck(t *testing.T) {
	dest, destLink, _ := fstest.Escape(t, "dest")
	missing := filepath.Join(filepath.Dir(dest), "missing")

	// errPart is "" when the path is accepted.
	tests := []struct{ name, dest, rel, errPart string }{
		{name: "plain file", dest: dest, rel: "a.yml"},
		{name: "dest itself a symlink", dest: destLink, rel: "real/x.yml"},
		{name: "dest missing", dest: missing, rel: "a/b.yml"},
		{name: "hostile path", dest: dest, rel: "../x", errPart: `".."`},
		{name: "hostile path, dest missing", dest: missing, rel: "../x", errPart: `".."`},
		{name: "symlink directory leading out", dest: dest, rel: "outdir/secret", errPart: "symlink"},
		{name: "symlink below a symlinked dest", dest: destLink, rel: "outdir/secret", errPart: "symlink"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errtest.Want(t, fmt.Sprintf("Check(%q)", tt.rel), openDest(t, tt.dest).Check(tt.rel), tt.errPart)
		})
	}
}

func TestRead(t *testing.T) {
	base := t.TempDir()
	dest := filepath.Join(base, "dest")
	fstest.WriteFile(t, filepath.Join(base, "outside", "secret"), "secret", 0o600)
	fstest.WriteFile(t, filepath.Join(dest, "a.yml"), "a", 0o644)
	fstest.WriteFile(t, filepath.Join(dest, "rules", "b.yml"), "b", 0o600)
	fstest.WriteFile(t, filepath.Join(dest, "plain"), "p", 0o644)
	fstest.Symlink(t, filepath.Join(base, "outside"), filepath.Join(dest, "out"))
	tests := []struct {
		name    string
		dest    string
		rel     string
		want    string
		ok      bool
		errPart string
	}{
		{name: "file", dest: dest, rel: "a.yml", want: "a", ok: true},
		{name: "nested file", dest: dest, rel: "rules/b.yml", want: "b", ok: true},
		{name: "missing file", dest: dest, rel: "new.yml"},
		{name: "missing directory", dest: dest, rel: "new/a.yml"},
		{name: "parent is a regular file", dest: dest, rel: "plain/a.yml"},
		{name: "dest missing", dest: filepath.Join(base, "missing"), rel: "a.yml"},
		{name: "a directory", dest: dest, rel: "rules", errPart: "read rules"},
		{name: "through a symlink", dest: dest, rel: "out/secret", errPart: "symlink"},
		{name: "hostile path", dest: dest, rel: "../outside/secret", errPart: `".."`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, ok, err := openDest(t, tt.dest).Read(tt.rel)
			if tt.errPart != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errPart) || ok || data != nil {
					t.Fatalf("Read(%q) = %q, %v, %v; want an error containing %q", tt.rel, data, ok, err, tt.errPart)
				}
				return
			}
			if err != nil || ok != tt.ok || string(data) != tt.want {
				t.Errorf("Read(%q) = %q, %v, %v; want %q, %v", tt.rel, data, ok, err, tt.want, tt.ok)
			}
		})
	}
	fstest.Missing(t, filepath.Join(base, "missing"))
}

// TestDryRunCreatesNothing: what a dry run calls on a dest that does not
// exist yet leaves it missing.
func TestDryRunCreatesNothing(t *testing.T) {
	base := t.TempDir()
	dest := filepath.Join(base, "etc", "prometheus")
	files := []File{file("prometheus.yml", "p"), file("rules/a.yml", "a")}
	d := openDest(t, dest)
	changed, err := d.Changed(files)
	if err != nil || fmt.Sprint(changed) != "[prometheus.yml rules/a.yml]" {
		t.Errorf("Changed = %q, %v; want every file", changed, err)
	}
	for _, f := range files {
		if err := d.Check(f.Path); err != nil {
			t.Errorf("Check(%s): %v", f.Path, err)
		}
		if data, ok, err := d.Read(f.Path); data != nil || ok || err != nil {
			t.Errorf("Read(%s) = %q, %v, %v; want nothing", f.Path, data, ok, err)
		}
	}
	if err := d.RemoveStale(paths(files)); err != nil {
		t.Errorf("RemoveStale: %v", err)
	}
	fstest.Missing(t, filepath.Join(base, "etc"))
}

// TestApplyCreatesDest: a missing dest and its missing parents are created,
// 0755 whatever the umask, so that a manager running as another user can read
// its configuration.
func TestApplyCreatesDest(t *testing.T) {
	fstest.Umask(t, 0o077)
	base := t.TempDir()
	dest := filepath.Join(base, "etc", "prometheus")
	d := openDest(t, dest)
	files := []File{file("rules/a.yml", "a")}
	snap, err := d.Apply(files)
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"etc", "etc/prometheus", "etc/prometheus/rules"} {
		fi, err := os.Stat(filepath.Join(base, dir))
		if err != nil {
			t.Errorf("%s: %v", dir, err)
		} else if fi.Mode().Perm() != DirMode {
			t.Errorf("%s: mode %v, want %v", dir, fi.Mode().Perm(), DirMode)
		}
	}
	if data, ok, err := d.Read("rules/a.yml"); string(data) != "a" || !ok || err != nil {
		t.Errorf("Read after Apply = %q, %v, %v", data, ok, err)
	}
	if err := snap.Restore(); err != nil {
		t.Fatal(err)
	}
	fstest.Missing(t, filepath.Join(dest, "rules"))
}

func TestSelect(t *testing.T) {
	files := []File{{Path: "a"}, {Path: "b"}, {Path: "c"}}
	tests := []struct {
		name  string
		paths []string
		want  string
	}{
		{name: "none", paths: nil, want: "[]"},
		{name: "order of files kept", paths: []string{"c", "a"}, want: "[a c]"},
		{name: "unknown path ignored", paths: []string{"b", "x"}, want: "[b]"},
		{name: "all", paths: []string{"a", "b", "c"}, want: "[a b c]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fmt.Sprint(paths(Select(files, tt.paths))); got != tt.want {
				t.Errorf("Select(%q) = %s, want %s", tt.paths, got, tt.want)
			}
		})
	}
}

func TestDestRemoveStale(t *testing.T) {
	dest := t.TempDir()
	for _, n := range []string{"a.yml", ".a.yml.tmp123", "rules/.b.yml.tmp9", ".a.yml.tmpx", ".c.yml.tmp1"} {
		fstest.WriteFile(t, filepath.Join(dest, n), "x", 0o600)
	}
	if err := openDest(t, dest).RemoveStale([]string{"a.yml", "rules/b.yml"}); err != nil {
		t.Fatal(err)
	}
	fstest.Missing(t, filepath.Join(dest, ".a.yml.tmp123"))
	fstest.Missing(t, filepath.Join(dest, "rules", ".b.yml.tmp9"))
	for _, kept := range []string{"a.yml", ".a.yml.tmpx", ".c.yml.tmp1"} {
		if _, err := os.Lstat(filepath.Join(dest, kept)); err != nil {
			t.Errorf("%s: %v", kept, err)
		}
	}
}

func TestChanged(t *testing.T) {
	dest := t.TempDir()
	fstest.WriteFile(t, filepath.Join(dest, "same.yml"), "same", 0o644)
	fstest.WriteFile(t, filepath.Join(dest, "rules", "a.yml"), "a", 0o644)
	fstest.WriteFile(t, filepath.Join(dest, "mode.yml"), "m", 0o600)
	fstest.WriteFile(t, filepath.Join(dest, "plain"), "p", 0o644)
	fstest.Mkdir(t, filepath.Join(dest, "dir.yml"), 0o755)
	fstest.Symlink(t, filepath.Join(dest, "same.yml"), filepath.Join(dest, "link.yml"))

	tests := []struct {
		name    string
		files   []File
		want    []string
		wantErr string
	}{
		{name: "all the same", files: []File{file("same.yml", "same"), file("rules/a.yml", "a")}},
		{name: "content differs, same size", files: []File{file("same.yml", "SAME")}, want: []string{"same.yml"}},
		{name: "content differs in size", files: []File{file("rules/a.yml", "ab")}, want: []string{"rules/a.yml"}},
		{name: "mode differs", files: []File{file("mode.yml", "m")}, want: []string{"mode.yml"}},
		{name: "missing file", files: []File{file("same.yml", "same"), file("new.yml", "n")}, want: []string{"new.yml"}},
		{name: "missing directory", files: []File{file("new/a.yml", "n")}, want: []string{"new/a.yml"}},
		{name: "parent is a regular file", files: []File{file("plain/a.yml", "n")}, want: []string{"plain/a.yml"}},
		{name: "directory in the way", files: []File{
			{Path: "dir.yml", Data: []byte(""), Mode: 0o755},
		}, want: []string{"dir.yml"}},
		{name: "order kept", files: []File{file("z.yml", ""), file("same.yml", "same"), file("a.yml", "")}, want: []string{"z.yml", "a.yml"}},
		{name: "symlink refused", files: []File{file("link.yml", "same")}, wantErr: "symlink"},
		{name: "hostile path refused", files: []File{file("../x", "")}, wantErr: `".."`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := openDest(t, dest).Changed(tt.files)
			errtest.Want(t, "Changed", err, tt.wantErr)
			if err != nil {
				return
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("Changed = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestApplyAndRestore(t *testing.T) {
	dest := t.TempDir()
	fstest.WriteFile(t, filepath.Join(dest, "prometheus.yml"), "old\n", 0o600)
	fstest.WriteFile(t, filepath.Join(dest, "rules", "keep.yml"), "keep\n", 0o644)
	files := []File{
		file("prometheus.yml", "new\n"),
		file("rules/new.yml", "rule\n"),
		{Path: "extra/deep/x.yml", Data: []byte("x\n"), Mode: 0o640},
	}
	d := openDest(t, dest)
	snap, err := d.Apply(files)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	for _, f := range files {
		data, mode := fstest.Read(t, filepath.Join(dest, f.Path))
		if data != string(f.Data) || mode != f.Mode {
			t.Errorf("%s: got %q mode %v after Apply", f.Path, data, mode)
		}
	}
	if changed, err := d.Changed(files); err != nil || len(changed) != 0 {
		t.Errorf("Changed after Apply = %q, %v; want nothing", changed, err)
	}
	fstest.NoTemp(t, dest, atomicfile.IsTemp)

	if err := snap.Restore(); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if data, mode := fstest.Read(t, filepath.Join(dest, "prometheus.yml")); data != "old\n" || mode != 0o600 {
		t.Errorf("prometheus.yml after Restore: %q mode %v, want the old file", data, mode)
	}
	if data, _ := fstest.Read(t, filepath.Join(dest, "rules", "keep.yml")); data != "keep\n" {
		t.Errorf("rules/keep.yml touched: %q", data)
	}
	fstest.Missing(t, filepath.Join(dest, "rules", "new.yml"))
	fstest.Missing(t, filepath.Join(dest, "extra")) // created by the run, removed with it
	fstest.NoTemp(t, dest, atomicfile.IsTemp)
}

func TestApplyFailure(t *testing.T) {
	// The setups: a regular file named blocker, a directory where rules.yml
	// should go, a symlink etc leading out of dest.
	blocker := func(t *testing.T, dest string) {
		fstest.WriteFile(t, filepath.Join(dest, "blocker"), "i am a file\n", 0o644)
	}
	rulesDir := func(t *testing.T, dest string) {
		if err := os.MkdirAll(filepath.Join(dest, "rules.yml", "x"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	etcOut := func(t *testing.T, dest string) {
		fstest.Symlink(t, filepath.Join(filepath.Dir(dest), "outside"), filepath.Join(dest, "etc"))
	}
	prom := file("prometheus.yml", "new\n")
	tests := []struct {
		name    string
		setup   func(t *testing.T, dest string)
		files   []File
		wantErr string
		// midway is true when the failure comes after the first file was
		// replaced (and then put back): its inode changes. Otherwise nothing
		// may have been written at all.
		midway bool
	}{
		{name: "second file's parent is a regular file", setup: blocker, files: []File{prom, file("blocker/b.yml", "b\n"), file("last.yml", "l\n")}, wantErr: "write blocker/b.yml", midway: true},
		{name: "third file's parent is a regular file, new directories before", setup: blocker, files: []File{prom, file("fresh/dir/new.yml", "n\n"), file("blocker/deeper/c.yml", "c\n")}, wantErr: "write blocker/deeper/c.yml", midway: true},
		{name: "directory where a file should go", setup: rulesDir, files: []File{prom, file("rules.yml", "r\n")}, wantErr: "rules.yml"},
		{name: "hostile path", files: []File{prom, file("../escape.yml", "x\n")}, wantErr: "../escape.yml"},
		{name: "symlink leading out", setup: etcOut, files: []File{prom, file("etc/butler-test.yml", "x\n")}, wantErr: "symlink"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			dest := filepath.Join(base, "dest")
			outside := filepath.Join(base, "outside")
			fstest.WriteFile(t, filepath.Join(outside, "butler-test.yml"), "outside\n", 0o644)
			fstest.WriteFile(t, filepath.Join(dest, "prometheus.yml"), "old\n", 0o600)
			if tt.setup != nil {
				tt.setup(t, dest)
			}
			outsideBefore := fstest.Tree(t, outside)
			// The hard link keeps the old inode alive, so that a file
			// replaced and put back cannot get the same inode number again.
			if err := os.Link(filepath.Join(dest, "prometheus.yml"), filepath.Join(dest, "hold")); err != nil {
				t.Fatal(err)
			}
			inodeBefore := fstest.Inode(t, filepath.Join(dest, "prometheus.yml"))
			snap, err := openDest(t, dest).Apply(tt.files)
			if err == nil {
				t.Fatal("Apply succeeded, want an error")
			}
			if snap != nil {
				t.Error("Apply returned a snapshot with its error")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
			if data, mode := fstest.Read(t, filepath.Join(dest, "prometheus.yml")); data != "old\n" || mode != 0o600 {
				t.Errorf("prometheus.yml: %q mode %v, want the old content back", data, mode)
			}
			for _, f := range tt.files[1:] {
				if strings.Contains(f.Path, "..") || strings.HasPrefix(f.Path, "etc/") {
					continue
				}
				if fi, err := os.Lstat(filepath.Join(dest, f.Path)); err == nil && fi.Mode().IsRegular() {
					t.Errorf("%s was left written", f.Path)
				}
			}
			fstest.Missing(t, filepath.Join(dest, "fresh"))
			fstest.Missing(t, filepath.Join(base, "escape.yml"))
			fstest.SameTree(t, outside, outsideBefore)
			fstest.NoTemp(t, dest, atomicfile.IsTemp)
			if data, err := os.ReadFile(filepath.Join(dest, "blocker")); err == nil && string(data) != "i am a file\n" {
				t.Errorf("blocker changed: %q", data)
			}
			if replaced := fstest.Inode(t, filepath.Join(dest, "prometheus.yml")) != inodeBefore; replaced != tt.midway {
				t.Errorf("prometheus.yml replaced = %v, want %v", replaced, tt.midway)
			}
		})
	}
}

func TestSnapshotRestoreReportsEachPath(t *testing.T) {
	dest := t.TempDir()
	fstest.WriteFile(t, filepath.Join(dest, "sub", "a.yml"), "old a", 0o644)
	fstest.WriteFile(t, filepath.Join(dest, "b.yml"), "old b", 0o644)
	fstest.WriteFile(t, filepath.Join(dest, "c.yml"), "old c", 0o644)
	snap, err := openDest(t, dest).snapshot([]string{"sub/a.yml", "b.yml", "c.yml", "b.yml"})
	if err != nil {
		t.Fatal(err)
	}
	// Make two paths impossible to restore: sub becomes a file, and b.yml
	// becomes a non-empty directory.
	if err := os.RemoveAll(filepath.Join(dest, "sub")); err != nil {
		t.Fatal(err)
	}
	fstest.WriteFile(t, filepath.Join(dest, "sub"), "now a file", 0o644)
	if err := os.Remove(filepath.Join(dest, "b.yml")); err != nil {
		t.Fatal(err)
	}
	fstest.WriteFile(t, filepath.Join(dest, "b.yml", "x"), "x", 0o644)
	fstest.WriteFile(t, filepath.Join(dest, "c.yml"), "changed c", 0o644)

	err = snap.Restore()
	if err == nil {
		t.Fatal("Restore succeeded, want an error")
	}
	for _, want := range []string{"restore sub/a.yml", "restore b.yml"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "c.yml") {
		t.Errorf("error %q names c.yml, which was restored", err)
	}
	if data, _ := fstest.Read(t, filepath.Join(dest, "c.yml")); data != "old c" {
		t.Errorf("c.yml = %q, want it restored despite the other failures", data)
	}
	fstest.NoTemp(t, dest, atomicfile.IsTemp)
	if (*Snapshot)(nil).Restore() != nil {
		t.Error("Restore on a nil snapshot returned an error")
	}
}

func TestApplyNewFileOnlyThenRestoreKeepsForeignFiles(t *testing.T) {
	dest := t.TempDir()
	snap, err := openDest(t, dest).Apply([]File{file("conf.d/a.conf", "a")})
	if err != nil {
		t.Fatal(err)
	}
	// Someone else puts a file in the directory the run created.
	fstest.WriteFile(t, filepath.Join(dest, "conf.d", "other.conf"), "other", 0o644)
	if err := snap.Restore(); err != nil {
		t.Fatal(err)
	}
	fstest.Missing(t, filepath.Join(dest, "conf.d", "a.conf"))
	if data, _ := fstest.Read(t, filepath.Join(dest, "conf.d", "other.conf")); data != "other" {
		t.Errorf("other.conf = %q", data)
	}
}

func BenchmarkApply(b *testing.B) {
	dest := b.TempDir()
	files := make([]File, 20)
	for i := range files {
		files[i] = File{
			Path: fmt.Sprintf("rules/r%02d.yml", i),
			Data: bytes.Repeat([]byte{byte('a' + i)}, 64<<10),
			Mode: 0o644,
		}
	}
	d, err := Open(dest)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	b.ReportAllocs()
	b.SetBytes(int64(len(files) * 64 << 10))
	for b.Loop() {
		if _, err := d.Apply(files); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSymlinkToOutsideDest is the point of the write sequence: a symlink
// under dest leading out of it, there before the run or swapped in for a
// directory of dest while the run goes on, makes nothing be created,
// renamed or removed outside, and the error names the path.
func TestSymlinkToOutsideDest(t *testing.T) {
	// setup makes dest with sub/a.yml and an outside directory holding what
	// a write, a restore or a sweep through the symlink would touch.
	setup := func(t *testing.T) (dest, outside string) {
		base := t.TempDir()
		dest, outside = filepath.Join(base, "dest"), filepath.Join(base, "outside")
		fstest.WriteFile(t, filepath.Join(dest, "sub", "a.yml"), "inside a\n", 0o644)
		fstest.WriteFile(t, filepath.Join(dest, "top.yml"), "top\n", 0o644)
		for _, f := range []string{"a.yml", "new.yml", "deep/n.yml", ".a.yml.tmp7", ".new.yml.tmp8"} {
			fstest.WriteFile(t, filepath.Join(outside, f), "outside "+f+"\n", 0o644)
		}
		return dest, outside
	}
	// swap replaces dest/sub with a symlink to outside, keeping the real
	// directory as dest/moved.
	swap := func(t *testing.T, dest, outside string) {
		if err := os.Rename(filepath.Join(dest, "sub"), filepath.Join(dest, "moved")); err != nil {
			t.Fatal(err)
		}
		fstest.Symlink(t, outside, filepath.Join(dest, "sub"))
	}
	files := []File{file("top.yml", "new top\n"), file("sub/a.yml", "new a\n"), file("sub/new.yml", "new\n"), file("sub/deep/n.yml", "n\n")}
	// refused checks that every entry point refuses the paths through sub.
	refused := func(t *testing.T, d *Dest) {
		t.Helper()
		if _, err := d.Changed(files); err == nil || !strings.Contains(err.Error(), "sub/a.yml") {
			t.Errorf("Changed = %v, want an error naming sub/a.yml", err)
		}
		if _, _, err := d.Read("sub/a.yml"); err == nil || !strings.Contains(err.Error(), "sub/a.yml") {
			t.Errorf("Read = %v, want an error naming sub/a.yml", err)
		}
		for _, f := range files[1:] {
			snap, err := d.Apply([]File{files[0], f})
			if err == nil || !strings.Contains(err.Error(), f.Path) || !strings.Contains(err.Error(), "symlink") || snap != nil {
				t.Errorf("Apply(%s) = %v, want an error naming it and the symlink", f.Path, err)
			}
		}
		if err := d.RemoveStale(paths(files)); err != nil {
			t.Errorf("RemoveStale: %v", err)
		}
		if data, _ := fstest.Read(t, filepath.Join(d.Dir(), "top.yml")); data != "top\n" {
			t.Errorf("top.yml = %q: a path was written before every path was checked", data)
		}
	}

	t.Run("present before Open", func(t *testing.T) {
		dest, outside := setup(t)
		swap(t, dest, outside)
		before := fstest.Tree(t, outside)
		refused(t, openDest(t, dest))
		fstest.SameTree(t, outside, before)
	})

	t.Run("swapped in between Open and Apply", func(t *testing.T) {
		dest, outside := setup(t)
		d := openDest(t, dest)
		if changed, err := d.Changed(files); err != nil || len(changed) != len(files) {
			t.Fatalf("Changed = %q, %v; want every file", changed, err)
		}
		swap(t, dest, outside)
		before := fstest.Tree(t, outside)
		refused(t, d)
		fstest.SameTree(t, outside, before)
		if data, _ := fstest.Read(t, filepath.Join(dest, "moved", "a.yml")); data != "inside a\n" {
			t.Errorf("the moved directory's a.yml = %q", data)
		}
	})

	t.Run("swapped in between snapshot and restore", func(t *testing.T) {
		dest, outside := setup(t)
		d := openDest(t, dest)
		snap, err := d.Apply(files)
		if err != nil {
			t.Fatal(err)
		}
		swap(t, dest, outside)
		before := fstest.Tree(t, outside)
		movedBefore := fstest.Tree(t, filepath.Join(dest, "moved"))
		err = snap.Restore()
		if err == nil {
			t.Fatal("Restore succeeded through the symlink")
		}
		for _, f := range files[1:] {
			if !strings.Contains(err.Error(), "restore "+f.Path) {
				t.Errorf("error %q does not name %s", err, f.Path)
			}
		}
		fstest.SameTree(t, outside, before)
		fstest.SameTree(t, filepath.Join(dest, "moved"), movedBefore)
		// The path that did not go through the symlink is put back.
		if data, _ := fstest.Read(t, filepath.Join(dest, "top.yml")); data != "top\n" {
			t.Errorf("top.yml = %q, want it restored", data)
		}
		if fi, err := os.Lstat(filepath.Join(dest, "sub")); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			t.Errorf("sub: %v, %v; want the symlink left alone", fi, err)
		}
	})
}

// TestSameContent compares a reader with bytes a block at a time, across
// block boundaries and at both ends.
func TestSameContent(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 10000) // 160,000 bytes: three blocks
	flip := func(i int) []byte {
		b := bytes.Clone(big)
		b[i] ^= 1
		return b
	}
	cases := []struct {
		name  string
		disk  []byte
		data  []byte
		equal bool
	}{
		{"both empty", nil, nil, true},
		{"empty on disk", nil, []byte("a"), false},
		{"same", big, big, true},
		{"first byte differs", flip(0), big, false},
		{"differs in the second block", flip(64<<10 + 5), big, false},
		{"last byte differs", flip(len(big) - 1), big, false},
		{"disk holds more", append(bytes.Clone(big), 'x'), big, false},
		{"disk holds less", big[:len(big)-1], big, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := sameContent(bytes.NewReader(tc.disk), tc.data)
			if err != nil || got != tc.equal {
				t.Errorf("sameContent = %v, %v; want %v", got, err, tc.equal)
			}
		})
	}
}
