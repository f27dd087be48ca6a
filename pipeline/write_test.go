package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
)

// writeTestFile creates path (and its parents) with data and mode, for test setup.
func writeTestFile(t *testing.T, path string, data string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// writeTestRead returns the content and mode of path, failing the test when
// it cannot be read.
func writeTestRead(t *testing.T, path string) (string, os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data), fi.Mode() & writeModeMask
}

// writeTestNoTemp fails the test when any temporary file is left under root.
func writeTestNoTemp(t *testing.T, root string) {
	t.Helper()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".") && strings.Contains(d.Name(), ".tmp") {
			t.Errorf("temporary file left behind: %s", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// writeTestInode returns the inode number of path.
func writeTestInode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// writeTestMissing fails the test when path exists.
func writeTestMissing(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s: want it absent, Lstat gave %v", path, err)
	}
}

func TestSafeJoin(t *testing.T) {
	base := t.TempDir()
	dest := filepath.Join(base, "dest")
	outside := filepath.Join(base, "outside")
	writeTestFile(t, filepath.Join(outside, "secret"), "s", 0o600)
	writeTestFile(t, filepath.Join(dest, "real", "x.yml"), "x", 0o644)
	writeTestFile(t, filepath.Join(dest, "plain"), "p", 0o644)
	for _, l := range []struct{ target, name string }{
		{outside, "outdir"},
		{filepath.Join(outside, "secret"), "outfile.yml"},
		{filepath.Join(dest, "real"), "indir"},
		{filepath.Join(dest, "rules", "gone"), "rules"},
	} {
		if err := os.Symlink(l.target, filepath.Join(dest, l.name)); err != nil {
			t.Fatal(err)
		}
	}
	destLink := filepath.Join(base, "destlink")
	if err := os.Symlink(dest, destLink); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		dest    string
		rel     string
		want    string // "" means an error is expected
		errPart string
	}{
		{name: "plain file", dest: dest, rel: "a.yml", want: filepath.Join(dest, "a.yml")},
		{name: "nested new directory", dest: dest, rel: "new/a.yml", want: filepath.Join(dest, "new", "a.yml")},
		{name: "existing directory", dest: dest, rel: "real/x.yml", want: filepath.Join(dest, "real", "x.yml")},
		{name: "dot segments cleaned", dest: dest, rel: "./real//x.yml", want: filepath.Join(dest, "real", "x.yml")},
		{name: "parent is a regular file", dest: dest, rel: "plain/a.yml", want: filepath.Join(dest, "plain", "a.yml")},
		{name: "dest itself a symlink", dest: destLink, rel: "real/x.yml", want: filepath.Join(destLink, "real", "x.yml")},
		{name: "parent escape", dest: dest, rel: "../x", errPart: `".."`},
		{name: "absolute", dest: dest, rel: "/etc/passwd", errPart: "relative"},
		{name: "escape after a directory", dest: dest, rel: "a/../../x", errPart: `".."`},
		{name: "dot-dot staying inside", dest: dest, rel: "a/../b", errPart: `".."`},
		{name: "empty", dest: dest, rel: "", errPart: "empty"},
		{name: "dot", dest: dest, rel: ".", errPart: "dest itself"},
		{name: "dot slash", dest: dest, rel: "./", errPart: "dest itself"},
		{name: "nul byte", dest: dest, rel: "a\x00b", errPart: "NUL"},
		{name: "empty dest", dest: "", rel: "a.yml", errPart: "empty destination"},
		{name: "symlink directory leading out", dest: dest, rel: "outdir/secret", errPart: "symlink"},
		{name: "symlink directory leading out, new file", dest: dest, rel: "outdir/new.yml", errPart: "symlink"},
		{name: "symlink file leading out", dest: dest, rel: "outfile.yml", errPart: "symlink"},
		{name: "symlink inside dest", dest: dest, rel: "indir/x.yml", errPart: "symlink"},
		{name: "dangling symlink", dest: dest, rel: "rules/a.yml", errPart: "symlink"},
		{name: "symlink below a symlinked dest", dest: destLink, rel: "outdir/secret", errPart: "symlink"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SafeJoin(tt.dest, tt.rel)
			if tt.want != "" {
				if err != nil || got != tt.want {
					t.Fatalf("SafeJoin(%q, %q) = %q, %v; want %q", tt.dest, tt.rel, got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("SafeJoin(%q, %q) = %q, want an error", tt.dest, tt.rel, got)
			}
			if !strings.Contains(err.Error(), tt.errPart) {
				t.Errorf("error %q does not contain %q", err, tt.errPart)
			}
		})
	}
}

func TestWriteFileAtomic(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(t *testing.T, dir string)
		rel      string
		data     string
		mode     os.FileMode
		wantErr  string
		wantDirs []string // directories that must exist with mode 0755 afterwards
	}{
		{name: "new file", rel: "a.yml", data: "new\n", mode: 0o644},
		{name: "new file in new directories", rel: "x/y/a.yml", data: "new\n", mode: 0o640, wantDirs: []string{"x", "x/y"}},
		{name: "replace content and mode", setup: func(t *testing.T, dir string) {
			writeTestFile(t, filepath.Join(dir, "a.yml"), "old\n", 0o600)
		}, rel: "a.yml", data: "new\n", mode: 0o644},
		{name: "mode with no permission for others", rel: "secret.yml", data: "s", mode: 0o400},
		{name: "setgid bit kept", rel: "g.sh", data: "#!/bin/sh\n", mode: os.ModeSetgid | 0o755},
		{name: "empty content", setup: func(t *testing.T, dir string) {
			writeTestFile(t, filepath.Join(dir, "a.yml"), "old\n", 0o644)
		}, rel: "a.yml", data: "", mode: 0o644},
		{name: "directory in the way", setup: func(t *testing.T, dir string) {
			if err := os.MkdirAll(filepath.Join(dir, "a.yml", "sub"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, rel: "a.yml", data: "new", mode: 0o644, wantErr: "a.yml"},
		{name: "parent is a file", setup: func(t *testing.T, dir string) {
			writeTestFile(t, filepath.Join(dir, "p"), "file", 0o644)
		}, rel: "p/a.yml", data: "new", mode: 0o644, wantErr: "a file is in the way"},
	}
	// Directories must get 0755 whatever the umask; tests that change the
	// umask run alone, as top-level tests that are not parallel.
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.setup != nil {
				tt.setup(t, dir)
			}
			path := filepath.Join(dir, tt.rel)
			err := WriteFileAtomic(path, []byte(tt.data), tt.mode)
			writeTestNoTemp(t, dir)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("WriteFileAtomic error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("WriteFileAtomic: %v", err)
			}
			data, mode := writeTestRead(t, path)
			if data != tt.data || mode != tt.mode {
				t.Errorf("got %q mode %v, want %q mode %v", data, mode, tt.data, tt.mode)
			}
			for _, d := range tt.wantDirs {
				fi, err := os.Stat(filepath.Join(dir, d))
				if err != nil || fi.Mode().Perm() != 0o755 {
					t.Errorf("directory %s: %v, mode %v; want mode 0755", d, err, fi.Mode().Perm())
				}
			}
		})
	}
}

func TestWriteFileAtomicKeepsOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("changing a file's owner needs root")
	}
	path := filepath.Join(t.TempDir(), "a.yml")
	writeTestFile(t, path, "old", 0o640)
	if err := os.Chown(path, 1234, 2345); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(path, []byte("new"), os.ModeSetuid|0o750); err != nil {
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
	if got := fi.Mode() & writeModeMask; got != os.ModeSetuid|0o750 {
		t.Errorf("mode %v, want setuid 0750 (chown must come before chmod)", got)
	}
}

// TestWriteFileAtomicReaderSeesWholeFiles reads the file while it is being
// replaced again and again: every read must be one complete version.
func TestWriteFileAtomicReaderSeesWholeFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.yml")
	versions := [][]byte{bytes.Repeat([]byte("a"), 256<<10), bytes.Repeat([]byte("b"), 128<<10)}
	if err := WriteFileAtomic(path, versions[0], 0o644); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var reads atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
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
	}()
	// At least 40 replaces, and more until the reader has read a few times.
	for i := 0; i < 40 || (reads.Load() < 20 && i < 2000); i++ {
		if err := WriteFileAtomic(path, versions[i%2], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if reads.Load() == 0 {
		t.Error("the reader never read the file")
	}
}

func TestChanged(t *testing.T) {
	dest := t.TempDir()
	writeTestFile(t, filepath.Join(dest, "same.yml"), "same", 0o644)
	writeTestFile(t, filepath.Join(dest, "rules", "a.yml"), "a", 0o644)
	writeTestFile(t, filepath.Join(dest, "mode.yml"), "m", 0o600)
	writeTestFile(t, filepath.Join(dest, "plain"), "p", 0o644)
	if err := os.Mkdir(filepath.Join(dest, "dir.yml"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dest, "same.yml"), filepath.Join(dest, "link.yml")); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		files   []FileContent
		want    []string
		wantErr string
	}{
		{name: "all the same", files: []FileContent{
			{Path: "same.yml", Data: []byte("same"), Mode: 0o644},
			{Path: "rules/a.yml", Data: []byte("a"), Mode: 0o644},
		}},
		{name: "content differs, same size", files: []FileContent{
			{Path: "same.yml", Data: []byte("SAME"), Mode: 0o644},
		}, want: []string{"same.yml"}},
		{name: "content differs in size", files: []FileContent{
			{Path: "rules/a.yml", Data: []byte("ab"), Mode: 0o644},
		}, want: []string{"rules/a.yml"}},
		{name: "mode differs", files: []FileContent{
			{Path: "mode.yml", Data: []byte("m"), Mode: 0o644},
		}, want: []string{"mode.yml"}},
		{name: "missing file", files: []FileContent{
			{Path: "same.yml", Data: []byte("same"), Mode: 0o644},
			{Path: "new.yml", Data: []byte("n"), Mode: 0o644},
		}, want: []string{"new.yml"}},
		{name: "missing directory", files: []FileContent{
			{Path: "new/a.yml", Data: []byte("n"), Mode: 0o644},
		}, want: []string{"new/a.yml"}},
		{name: "parent is a regular file", files: []FileContent{
			{Path: "plain/a.yml", Data: []byte("n"), Mode: 0o644},
		}, want: []string{"plain/a.yml"}},
		{name: "directory in the way", files: []FileContent{
			{Path: "dir.yml", Data: []byte(""), Mode: 0o755},
		}, want: []string{"dir.yml"}},
		{name: "order kept", files: []FileContent{
			{Path: "z.yml", Data: nil, Mode: 0o644},
			{Path: "same.yml", Data: []byte("same"), Mode: 0o644},
			{Path: "a.yml", Data: nil, Mode: 0o644},
		}, want: []string{"z.yml", "a.yml"}},
		{name: "symlink refused", files: []FileContent{
			{Path: "link.yml", Data: []byte("same"), Mode: 0o644},
		}, wantErr: "symlink"},
		{name: "hostile path refused", files: []FileContent{
			{Path: "../x", Data: nil, Mode: 0o644},
		}, wantErr: `".."`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Changed(dest, tt.files)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Changed error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("Changed = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestApplyAndRestore(t *testing.T) {
	dest := t.TempDir()
	writeTestFile(t, filepath.Join(dest, "prometheus.yml"), "old\n", 0o600)
	writeTestFile(t, filepath.Join(dest, "rules", "keep.yml"), "keep\n", 0o644)
	files := []FileContent{
		{Path: "prometheus.yml", Data: []byte("new\n"), Mode: 0o644},
		{Path: "rules/new.yml", Data: []byte("rule\n"), Mode: 0o644},
		{Path: "extra/deep/x.yml", Data: []byte("x\n"), Mode: 0o640},
	}
	snap, err := Apply(dest, files)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	for _, f := range files {
		data, mode := writeTestRead(t, filepath.Join(dest, f.Path))
		if data != string(f.Data) || mode != f.Mode {
			t.Errorf("%s: got %q mode %v after Apply", f.Path, data, mode)
		}
	}
	if changed, err := Changed(dest, files); err != nil || len(changed) != 0 {
		t.Errorf("Changed after Apply = %q, %v; want nothing", changed, err)
	}
	writeTestNoTemp(t, dest)

	if err := snap.Restore(); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if data, mode := writeTestRead(t, filepath.Join(dest, "prometheus.yml")); data != "old\n" || mode != 0o600 {
		t.Errorf("prometheus.yml after Restore: %q mode %v, want the old file", data, mode)
	}
	if data, _ := writeTestRead(t, filepath.Join(dest, "rules", "keep.yml")); data != "keep\n" {
		t.Errorf("rules/keep.yml touched: %q", data)
	}
	writeTestMissing(t, filepath.Join(dest, "rules", "new.yml"))
	writeTestMissing(t, filepath.Join(dest, "extra")) // created by the run, removed with it
	writeTestNoTemp(t, dest)
}

func TestApplyFailure(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, dest string)
		files   []FileContent
		wantErr string
		// midway is true when the failure comes after the first file was
		// replaced (and then put back): its inode changes. Otherwise nothing
		// may have been written at all.
		midway bool
	}{
		{
			name: "second file's parent is a regular file",
			setup: func(t *testing.T, dest string) {
				writeTestFile(t, filepath.Join(dest, "blocker"), "i am a file\n", 0o644)
			},
			files: []FileContent{
				{Path: "prometheus.yml", Data: []byte("new\n"), Mode: 0o644},
				{Path: "blocker/b.yml", Data: []byte("b\n"), Mode: 0o644},
				{Path: "last.yml", Data: []byte("l\n"), Mode: 0o644},
			},
			wantErr: "write blocker/b.yml",
			midway:  true,
		},
		{
			name: "third file's parent is a regular file, new directories before",
			setup: func(t *testing.T, dest string) {
				writeTestFile(t, filepath.Join(dest, "blocker"), "i am a file\n", 0o644)
			},
			files: []FileContent{
				{Path: "prometheus.yml", Data: []byte("new\n"), Mode: 0o644},
				{Path: "fresh/dir/new.yml", Data: []byte("n\n"), Mode: 0o644},
				{Path: "blocker/deeper/c.yml", Data: []byte("c\n"), Mode: 0o644},
			},
			wantErr: "write blocker/deeper/c.yml",
			midway:  true,
		},
		{
			name: "directory where a file should go",
			setup: func(t *testing.T, dest string) {
				if err := os.MkdirAll(filepath.Join(dest, "rules.yml", "x"), 0o755); err != nil {
					t.Fatal(err)
				}
			},
			files: []FileContent{
				{Path: "prometheus.yml", Data: []byte("new\n"), Mode: 0o644},
				{Path: "rules.yml", Data: []byte("r\n"), Mode: 0o644},
			},
			wantErr: "rules.yml",
		},
		{
			name: "hostile path",
			files: []FileContent{
				{Path: "prometheus.yml", Data: []byte("new\n"), Mode: 0o644},
				{Path: "../escape.yml", Data: []byte("x\n"), Mode: 0o644},
			},
			wantErr: "../escape.yml",
		},
		{
			name: "symlink leading out",
			setup: func(t *testing.T, dest string) {
				if err := os.Symlink("/etc", filepath.Join(dest, "etc")); err != nil {
					t.Fatal(err)
				}
			},
			files: []FileContent{
				{Path: "prometheus.yml", Data: []byte("new\n"), Mode: 0o644},
				{Path: "etc/butler-test.yml", Data: []byte("x\n"), Mode: 0o644},
			},
			wantErr: "symlink",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dest := t.TempDir()
			writeTestFile(t, filepath.Join(dest, "prometheus.yml"), "old\n", 0o600)
			if tt.setup != nil {
				tt.setup(t, dest)
			}
			// The hard link keeps the old inode alive, so that a file
			// replaced and put back cannot get the same inode number again.
			if err := os.Link(filepath.Join(dest, "prometheus.yml"), filepath.Join(dest, "hold")); err != nil {
				t.Fatal(err)
			}
			inodeBefore := writeTestInode(t, filepath.Join(dest, "prometheus.yml"))
			snap, err := Apply(dest, tt.files)
			if err == nil {
				t.Fatal("Apply succeeded, want an error")
			}
			if snap != nil {
				t.Error("Apply returned a snapshot with its error")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
			if data, mode := writeTestRead(t, filepath.Join(dest, "prometheus.yml")); data != "old\n" || mode != 0o600 {
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
			writeTestMissing(t, filepath.Join(dest, "fresh"))
			writeTestMissing(t, filepath.Join(filepath.Dir(dest), "escape.yml"))
			writeTestMissing(t, "/etc/butler-test.yml")
			writeTestNoTemp(t, dest)
			if data, err := os.ReadFile(filepath.Join(dest, "blocker")); err == nil && string(data) != "i am a file\n" {
				t.Errorf("blocker changed: %q", data)
			}
			if replaced := writeTestInode(t, filepath.Join(dest, "prometheus.yml")) != inodeBefore; replaced != tt.midway {
				t.Errorf("prometheus.yml replaced = %v, want %v", replaced, tt.midway)
			}
		})
	}
}

func TestSnapshotRestoreReportsEachPath(t *testing.T) {
	dest := t.TempDir()
	writeTestFile(t, filepath.Join(dest, "sub", "a.yml"), "old a", 0o644)
	writeTestFile(t, filepath.Join(dest, "b.yml"), "old b", 0o644)
	writeTestFile(t, filepath.Join(dest, "c.yml"), "old c", 0o644)
	snap, err := TakeSnapshot(dest, []string{"sub/a.yml", "b.yml", "c.yml", "b.yml"})
	if err != nil {
		t.Fatal(err)
	}
	// Make two paths impossible to restore: sub becomes a file, and b.yml
	// becomes a non-empty directory.
	if err := os.RemoveAll(filepath.Join(dest, "sub")); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(dest, "sub"), "now a file", 0o644)
	if err := os.Remove(filepath.Join(dest, "b.yml")); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(dest, "b.yml", "x"), "x", 0o644)
	writeTestFile(t, filepath.Join(dest, "c.yml"), "changed c", 0o644)

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
	if data, _ := writeTestRead(t, filepath.Join(dest, "c.yml")); data != "old c" {
		t.Errorf("c.yml = %q, want it restored despite the other failures", data)
	}
	writeTestNoTemp(t, dest)
	if (*Snapshot)(nil).Restore() != nil {
		t.Error("Restore on a nil snapshot returned an error")
	}
}

func TestApplyNewFileOnlyThenRestoreKeepsForeignFiles(t *testing.T) {
	dest := t.TempDir()
	snap, err := Apply(dest, []FileContent{{Path: "conf.d/a.conf", Data: []byte("a"), Mode: 0o644}})
	if err != nil {
		t.Fatal(err)
	}
	// Someone else puts a file in the directory the run created.
	writeTestFile(t, filepath.Join(dest, "conf.d", "other.conf"), "other", 0o644)
	if err := snap.Restore(); err != nil {
		t.Fatal(err)
	}
	writeTestMissing(t, filepath.Join(dest, "conf.d", "a.conf"))
	if data, _ := writeTestRead(t, filepath.Join(dest, "conf.d", "other.conf")); data != "other" {
		t.Errorf("other.conf = %q", data)
	}
}

func BenchmarkApply(b *testing.B) {
	dest := b.TempDir()
	files := make([]FileContent, 20)
	for i := range files {
		files[i] = FileContent{
			Path: fmt.Sprintf("rules/r%02d.yml", i),
			Data: bytes.Repeat([]byte{byte('a' + i)}, 64<<10),
			Mode: 0o644,
		}
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(files) * 64 << 10))
	for b.Loop() {
		if _, err := Apply(dest, files); err != nil {
			b.Fatal(err)
		}
	}
}
