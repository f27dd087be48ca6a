//go:build linux

package main

// Full disks: a small tmpfs is mounted as a manager's dest, as the state
// directory, and as the textfile's directory, then filled, and butler syncs
// new content. It must say clearly what failed, keep the old files whole,
// keep state.json readable, leave no temporary file; and once space is freed
// the next run must succeed and store its last-known-good copy.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/butler-sre/butler/internal/nettest"
	"github.com/butler-sre/butler/internal/textfiletest"
)

// diskManager is the manager's name; diskFiles its files.
const diskManager = "disk"

var diskFiles = []string{"a.yml", "rules/b.yml"}

// diskContent is version v of the file at p: 64 KiB of YAML, so that it
// cannot fit in what is left of a full tmpfs.
func diskContent(p string, v int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < 64<<10; i++ {
		fmt.Fprintf(&b, "k%05d: %s version %d\n", i, p, v)
	}
	return b.Bytes()
}

// mountTmpfs mounts a tmpfs of size bytes at a new directory and unmounts it
// when the test ends. Not root: the test is skipped; root, and the mount
// fails: skipped too, except under CI, where it fails.
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root: run the disk-full tests as root")
	}
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0755", size)); err != nil {
		msg := fmt.Sprintf("mount -t tmpfs %s: %v", dir, err)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("umount %s: %v", dir, err)
		}
	})
	return dir
}

// fill writes a file into dir until the file system is full, and returns a
// function that frees the space again.
func fill(t *testing.T, dir string) (free func()) {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 4096)
	for {
		if _, err = f.Write(chunk); err != nil {
			break
		}
	}
	if cerr := f.Close(); !errors.Is(err, syscall.ENOSPC) || cerr != nil && !errors.Is(cerr, syscall.ENOSPC) {
		t.Fatalf("filling %s: %v, %v", dir, err, cerr)
	}
	// Nothing more fits, not even one byte of a new file.
	if err := os.WriteFile(filepath.Join(dir, "probe"), []byte("x"), 0o600); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("%s is not full: writing one byte gave %v", dir, err)
	}
	_ = os.Remove(filepath.Join(dir, "probe"))
	return func() {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
}

// diskEnv is one test's directories and server.
type diskEnv struct {
	t        *testing.T
	config   string
	dest     string
	stateDir string
	textfile string
	srv      *nettest.Files // /files/P and the reload endpoint /reload
}

func diskNewEnv(t *testing.T, dest, stateDir, textfileDir string) *diskEnv {
	e := &diskEnv{t: t, dest: dest, stateDir: stateDir, textfile: filepath.Join(textfileDir, "butler.prom")}
	e.srv = nettest.NewFiles(t, map[string]string{"/reload": ""})
	var b strings.Builder
	fmt.Fprintf(&b, "[butler]\nstate_dir = %q\ntextfile = %q\n\n[managers.%s]\ndest = %q\n\n", stateDir, e.textfile, diskManager, dest)
	for _, p := range diskFiles {
		fmt.Fprintf(&b, "[[managers.%s.files]]\nsource = %q\npath = %q\n\n", diskManager, e.srv.URL+"/files/"+p, p)
	}
	fmt.Fprintf(&b, "[managers.%s.reload]\nurl = %q\n", diskManager, e.srv.URL+"/reload")
	e.config = filepath.Join(t.TempDir(), "butler.toml")
	if err := os.WriteFile(e.config, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return e
}

// sync runs butler once with the files at version v.
func (e *diskEnv) sync(v int) (int, string) {
	e.t.Helper()
	for _, p := range diskFiles {
		e.srv.Set("/files/"+p, string(diskContent(p, v)))
	}
	code, stdout, stderr := runButler(e.t, nil, "--config", e.config, "sync")
	return code, stdout + stderr
}

// checkFiles asserts that dir holds every file at version v, complete.
func (e *diskEnv) checkFiles(what, dir string, v int) {
	e.t.Helper()
	for _, p := range diskFiles {
		data, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil || !bytes.Equal(data, diskContent(p, v)) {
			e.t.Errorf("%s: %s is not version %d, complete (%d bytes, %v)", what, p, v, len(data), err)
		}
	}
}

// checkReadable asserts that state.json is valid JSON and the textfile, when
// there is one, parses.
func (e *diskEnv) checkReadable(when string) {
	e.t.Helper()
	data, err := os.ReadFile(filepath.Join(e.stateDir, "state.json"))
	if err != nil || !json.Valid(data) {
		e.t.Errorf("%s: state.json is not readable JSON (%v):\n%s", when, err, data)
	}
	if _, err := textfiletest.ReadFile(e.textfile); err != nil {
		e.t.Errorf("%s: textfile: %v", when, err)
	}
}

// checkNoTemporaries asserts that no temporary file is left anywhere butler
// writes: dest, the state directory (its staging area too), the textfile's
// directory.
func (e *diskEnv) checkNoTemporaries(when string) {
	e.t.Helper()
	for _, dir := range []string{e.dest, e.stateDir, filepath.Dir(e.textfile)} {
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			name := d.Name()
			switch {
			case strings.Contains(name, ".tmp"), strings.Contains(name, "lkgtmp-"):
				e.t.Errorf("%s: temporary file left: %s", when, p)
			case dir == e.stateDir && filepath.Dir(rel) == "tmp":
				e.t.Errorf("%s: left in the staging area: %s", when, p)
			case dir == e.stateDir && strings.HasPrefix(rel, "lkg/") && strings.Count(rel, "/") == 1 &&
				strings.HasPrefix(name, ".") && name != e.lkgTarget():
				e.t.Errorf("%s: last-known-good leftover: %s", when, p)
			}
			return nil
		})
		if err != nil {
			e.t.Errorf("%s: %v", when, err)
		}
	}
}

// lkgTarget is the name of the directory the last-known-good link points at.
func (e *diskEnv) lkgTarget() string {
	target, _ := os.Readlink(filepath.Join(e.stateDir, "lkg", diskManager))
	return filepath.Base(target)
}

func TestDiskFull(t *testing.T) {
	const size = 512 << 10
	tests := []struct {
		name string
		full string   // which directory is the full tmpfs: dest, state, textfile
		want []string // in butler's output of the run on the full disk
		not  []string // not in it
		// dest and lkg are the versions the run on the full disk leaves in
		// dest and in the last-known-good copy; 0 in dest: 1 or 2, whole.
		dest, lkg int
	}{
		{name: "dest", full: "dest", dest: 1, lkg: 1,
			want: []string{"manager=" + diskManager, "phase=write", "write a.yml", "no space left on device"},
			// Nothing was replaced, so nothing had to be put back.
			not: []string{"put back"}},
		// Where the fetch stages its downloads in the state directory, the
		// fetch fails; otherwise the copy cannot be stored. Either way the
		// state cannot be saved, and the copy is stored by the next run.
		{name: "state_dir", full: "state", dest: 0, lkg: 1,
			want: []string{"manager=" + diskManager, "no space left on device", "phase=state", "cannot save the state"}},
		{name: "textfile", full: "textfile", dest: 2, lkg: 2,
			want: []string{"phase=textfile", "cannot write the textfile", "butler.prom", "no space left on device"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			base := t.TempDir()
			dirs := map[string]string{
				"dest":     filepath.Join(base, "dest"),
				"state":    filepath.Join(base, "state"),
				"textfile": filepath.Join(base, "textfile"),
			}
			tmpfs := mountTmpfs(t, size)
			dirs[tt.full] = tmpfs
			e := diskNewEnv(t, dirs["dest"], dirs["state"], dirs["textfile"])

			if code, out := e.sync(1); code != 0 {
				t.Fatalf("first run: exit %d\n%s", code, out)
			}
			stateBefore, _ := os.ReadFile(filepath.Join(e.stateDir, "state.json"))
			textBefore, _ := os.ReadFile(e.textfile)
			free := fill(t, tmpfs)

			code, out := e.sync(2)
			t.Logf("on the full disk: exit %d\n%s", code, out)
			if code != 1 {
				t.Errorf("on the full disk: exit %d, want 1", code)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("on the full disk: the output does not say %q", w)
				}
			}
			for _, w := range append(tt.not, "panic:") {
				if strings.Contains(out, w) {
					t.Errorf("on the full disk: the output says %q", w)
				}
			}
			switch v := tt.dest; {
			case v == 0 && strings.Contains(out, "msg=written"):
				e.checkFiles("on the full disk, dest", e.dest, 2)
			case v == 0:
				e.checkFiles("on the full disk, dest", e.dest, 1)
			default:
				e.checkFiles("on the full disk, dest", e.dest, v)
			}
			e.checkFiles("on the full disk, the last-known-good copy", filepath.Join(e.stateDir, "lkg", diskManager), tt.lkg)
			e.checkReadable("on the full disk")
			switch tt.full {
			case "state":
				if now, _ := os.ReadFile(filepath.Join(e.stateDir, "state.json")); !bytes.Equal(now, stateBefore) {
					t.Error("on the full disk, state.json changed though it could not be saved")
				}
				// The textfile, written while the state was being saved,
				// says the run failed.
				if v, ok := textfileValue(t, e.textfile, "butler_run_success", nil); !ok || v != 0 {
					t.Errorf("on the full disk, butler_run_success = %v (present %v), want 0", v, ok)
				}
			case "textfile":
				if now, _ := os.ReadFile(e.textfile); !bytes.Equal(now, textBefore) {
					t.Error("on the full disk, the textfile changed though it could not be written")
				}
			}
			e.checkNoTemporaries("on the full disk")

			free()
			code, out = e.sync(2)
			if code != 0 {
				t.Fatalf("after freeing the space: exit %d\n%s", code, out)
			}
			e.checkFiles("after freeing the space, dest", e.dest, 2)
			e.checkFiles("after freeing the space, the last-known-good copy", filepath.Join(e.stateDir, "lkg", diskManager), 2)
			e.checkReadable("after freeing the space")
			e.checkNoTemporaries("after freeing the space")
			if v, ok := textfileValue(t, e.textfile, "butler_run_success", nil); !ok || v != 1 {
				t.Errorf("after freeing the space, butler_run_success = %v (present %v), want 1", v, ok)
			}
		})
	}
}
