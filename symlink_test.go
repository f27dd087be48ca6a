//go:build linux

package main

// Symlink races at run level: while butler syncs, a directory of the
// manager's dest is swapped for a symlink to a directory outside dest, at
// the moment a phase starts (the fake server makes the swap when the request
// of that phase arrives). Nothing outside dest may ever be created, changed
// or deleted, and every error must name the manager, the file and the phase.

import (
	"bytes"
	"fmt"
	"io/fs"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// swapRuns is the number of runs of each kind of swap.
const swapRuns = 50

// swapStale is the number of stale temporary files put beside rules/gamma.yml
// before each run, and left under the same names outside: enough for the
// sweep's removals to last well past the moment it listed them.
const swapStale = 200

// swapStaleName is the name of the i-th stale temporary file of gamma.yml.
func swapStaleName(i int) string { return fmt.Sprintf(".gamma.yml.tmp%d", 100000+i) }

// swapManager is the manager's name; its files are swapFiles.
const swapManager = "swapped"

var swapFiles = []string{"top.yml", "rules/gamma.yml", "rules/delta.yml"}

// swapWhen says at which moment the directory is swapped.
type swapWhen int

const (
	// swapAtFetch swaps when the first fetch request of the run arrives.
	swapAtFetch swapWhen = iota
	// swapAtSweep swaps when the stale-temporary sweep lists dest/rules
	// (inotify reports the listing), before it removes what it found there:
	// stale temporary files of the same names wait outside.
	swapAtSweep
	// swapAtReload swaps when the reload request arrives, which then
	// answers 500, so that the put-back runs through the swapped path.
	swapAtReload
	// swapFlipping swaps back and forth at random moments (pauses of up to
	// 200µs) from the first fetch request until butler exits, so that every
	// later step (the check of what is on disk, the stale-temporary sweep,
	// the writes, the reload's put-back) meets the symlink in some runs and
	// the directory in others.
	swapFlipping
)

// swapEnv is one test's directories, server and swapping.
type swapEnv struct {
	t       *testing.T
	when    swapWhen
	dir     string
	dest    string
	outside string // the directory the symlink leads to
	link    string // a symlink to outside, exchanged with dest/rules
	config  string

	mu      sync.Mutex
	version int  // of the files served
	running bool // butler runs: swaps may happen
	swapped bool // this run has swapped
	flips   int
	stop    chan struct{} // closed to end the flipping
	flipped chan struct{} // closed when the flipping has ended
	reloads int
}

func swapNewEnv(t *testing.T, when swapWhen) *swapEnv {
	dir := t.TempDir()
	e := &swapEnv{
		t:       t,
		when:    when,
		dir:     dir,
		dest:    filepath.Join(dir, "dest"),
		outside: filepath.Join(dir, "outside"),
		link:    filepath.Join(dir, "link"),
		config:  filepath.Join(dir, "butler.toml"),
	}
	// What butler must never touch: files named as the manager's, stale
	// temporary files as a killed run of butler would leave beside them, and
	// files of every mode.
	for _, f := range []struct {
		name string
		mode os.FileMode
		data string
	}{
		{"gamma.yml", 0o644, "outside: gamma\n"},
		{"delta.yml", 0o600, "outside: delta\n"},
		{".gamma.yml.tmp4242", 0o600, "a stale temporary file of gamma.yml\n"},
		{".delta.yml.tmp17", 0o644, "a stale temporary file of delta.yml\n"},
		{".top.yml.tmp99", 0o644, "a stale temporary file of top.yml\n"},
		{"secret.key", 0o400, "key\n"},
		{"run.sh", 0o755, "#!/bin/sh\n"},
		{"sub/nested.yml", 0o640, "nested: 1\n"},
	} {
		p := filepath.Join(e.outside, f.name)
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f.data), f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	for i := range swapStale {
		if err := os.WriteFile(filepath.Join(e.outside, swapStaleName(i)), []byte("outside\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("gamma.yml", filepath.Join(e.outside, "link.yml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(e.outside, e.link); err != nil {
		t.Fatal(err)
	}

	srv := httptest.NewServer(http.HandlerFunc(e.serve))
	t.Cleanup(srv.Close)
	var b strings.Builder
	fmt.Fprintf(&b, "[butler]\nstate_dir = %q\ntextfile = %q\ntimeout = \"30s\"\n\n",
		filepath.Join(dir, "state"), filepath.Join(dir, "textfile", "butler.prom"))
	fmt.Fprintf(&b, "[managers.%s]\ndest = %q\n\n", swapManager, e.dest)
	for _, p := range swapFiles {
		fmt.Fprintf(&b, "[[managers.%s.files]]\nsource = %q\npath = %q\n\n", swapManager, srv.URL+"/files/"+p, p)
	}
	fmt.Fprintf(&b, "[managers.%s.reload]\nurl = %q\n", swapManager, srv.URL+"/reload")
	if err := os.WriteFile(e.config, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return e
}

// content is the file at p in version v.
func swapContent(p string, v int) []byte {
	return fmt.Appendf(nil, "file: %s\nversion: %d\n", p, v)
}

func (e *swapEnv) serve(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case strings.HasPrefix(r.URL.Path, "/files/"):
		if e.running && e.version > 0 && !e.swapped {
			switch e.when {
			case swapAtFetch:
				e.exchange()
			case swapFlipping:
				e.startFlipping()
			}
		}
		_, _ = w.Write(swapContent(strings.TrimPrefix(r.URL.Path, "/files/"), e.version))
	case r.URL.Path == "/reload":
		e.reloads++
		if e.running && e.version > 0 && e.when == swapAtReload && !e.swapped {
			e.exchange()
			http.Error(w, "refused on purpose", http.StatusInternalServerError)
		}
	default:
		http.NotFound(w, r)
	}
}

// watchSweep swaps dest/rules when it is listed, as only the stale-temporary
// sweep lists it: inotify reports IN_ACCESS on the directory itself.
func (e *swapEnv) watchSweep() {
	t := e.t
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "inotify") // non-blocking: Close ends a Read
	if _, err := unix.InotifyAddWatch(fd, filepath.Join(e.dest, "rules"), unix.IN_ACCESS|unix.IN_ONLYDIR); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		_ = f.Close()
		<-done
	})
	go func() {
		defer close(done)
		buf := make([]byte, 64<<10)
		for {
			n, err := f.Read(buf)
			if err != nil {
				return
			}
			for off := 0; off+unix.SizeofInotifyEvent <= n; {
				ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
				off += unix.SizeofInotifyEvent + int(ev.Len)
				if ev.Len != 0 || ev.Mask&unix.IN_ACCESS == 0 {
					continue // a file in it was read, not the directory listed
				}
				e.mu.Lock()
				if e.running && e.version > 0 && e.when == swapAtSweep && !e.swapped {
					e.exchange()
				}
				e.mu.Unlock()
			}
		}
	}()
}

// exchange swaps dest/rules and the symlink to outside in one step.
func (e *swapEnv) exchange() {
	if err := unix.Renameat2(unix.AT_FDCWD, filepath.Join(e.dest, "rules"), unix.AT_FDCWD, e.link, unix.RENAME_EXCHANGE); err != nil {
		panic(fmt.Sprintf("swap: %v", err)) // the handler's goroutine cannot t.Fatal
	}
	e.swapped = true
	e.flips++
}

// startFlipping swaps dest/rules back and forth until stop is closed, then
// leaves the directory in place.
func (e *swapEnv) startFlipping() {
	e.swapped = true // started: not again this run
	e.stop, e.flipped = make(chan struct{}), make(chan struct{})
	stop, flipped := e.stop, e.flipped
	go func() {
		defer close(flipped)
		n := 0
		for {
			select {
			case <-stop:
				if n%2 == 1 {
					e.exchangeOrPanic()
					n++
				}
				e.mu.Lock()
				e.flips += n
				e.mu.Unlock()
				return
			default:
			}
			e.exchangeOrPanic()
			n++
			time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
		}
	}()
}

func (e *swapEnv) exchangeOrPanic() {
	if err := unix.Renameat2(unix.AT_FDCWD, filepath.Join(e.dest, "rules"), unix.AT_FDCWD, e.link, unix.RENAME_EXCHANGE); err != nil {
		panic(fmt.Sprintf("swap: %v", err))
	}
}

// unswap ends the run's swapping and puts the directory back in place.
func (e *swapEnv) unswap() {
	e.mu.Lock()
	stop, flipped := e.stop, e.flipped
	e.stop, e.flipped = nil, nil
	e.mu.Unlock()
	if stop != nil {
		close(stop)
		<-flipped
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.running = false
	if fi, err := os.Lstat(filepath.Join(e.dest, "rules")); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		e.exchangeOrPanic()
	}
	e.swapped = false
}

// sync runs butler once with the files at version v.
func (e *swapEnv) sync(v int) (int, string) {
	e.t.Helper()
	e.mu.Lock()
	e.version, e.running = v, true
	e.mu.Unlock()
	defer e.unswap()
	code, stdout, stderr := runButler(e.t, nil, "--config", e.config, "sync")
	return code, stdout + stderr
}

// swapEntry is what is recorded of one entry of the outside directory.
type swapEntry struct {
	mode   fs.FileMode
	size   int64
	data   string // of a regular file
	target string // of a symlink
	ino    uint64
	mtime  int64 // of a directory too: an entry made and removed shows
}

// snapshot records every entry under dir, dir itself included, without
// following symlinks.
func swapSnapshot(t *testing.T, dir string) map[string]swapEntry {
	t.Helper()
	out := map[string]swapEntry{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		en := swapEntry{mode: fi.Mode(), size: fi.Size(), ino: st.Ino, mtime: st.Mtim.Nano()}
		switch {
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			en.data = string(data)
		case fi.Mode()&fs.ModeSymlink != 0:
			en.target, err = os.Readlink(p)
			if err != nil {
				return err
			}
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = en
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// swapDiff describes how after differs from before.
func swapDiff(before, after map[string]swapEntry) []string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(before)) {
		a, ok := after[name]
		switch {
		case !ok:
			out = append(out, "deleted: "+name)
		case a != before[name]:
			out = append(out, fmt.Sprintf("changed: %s: %+v, was %+v", name, a, before[name]))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(after)) {
		if _, ok := before[name]; !ok {
			out = append(out, "created: "+name)
		}
	}
	return out
}

// errorLines returns butler's log lines at level ERROR but the summary.
func errorLines(out string) []string {
	var lines []string
	for line := range strings.Lines(out) {
		if strings.Contains(line, "level=ERROR") && !strings.Contains(line, `msg="sync finished"`) {
			lines = append(lines, strings.TrimSpace(line))
		}
	}
	return lines
}

func TestSymlinkSwapNeverLeavesDest(t *testing.T) {
	if testing.Short() {
		t.Skip("runs butler 150 times; skipped with -short")
	}
	tests := []struct {
		name  string
		when  swapWhen
		exit  []int    // the exit codes a run may have
		phase []string // the phases a failed run may name
	}{
		{name: "at fetch", when: swapAtFetch, exit: []int{1}, phase: []string{"write"}},
		// The swap lands as soon as the test hears of the listing: most
		// often while the sweep removes, on a loaded machine later.
		{name: "at the stale-temporary sweep", when: swapAtSweep, exit: []int{0, 1}, phase: []string{"write", "lkg"}},
		{name: "at reload, then put back", when: swapAtReload, exit: []int{1}, phase: []string{"lkg"}},
		{name: "flipping from fetch to exit, over the stale-temporary sweep", when: swapFlipping, exit: []int{0, 1}, phase: []string{"write", "lkg"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := swapNewEnv(t, tt.when)
			// A first run makes dest, its rules directory and the
			// last-known-good copy.
			if code, out := e.sync(0); code != 0 {
				t.Fatalf("first run: exit %d\n%s", code, out)
			}
			if tt.when == swapAtSweep {
				e.watchSweep()
			}
			before := swapSnapshot(t, e.outside)
			exits := map[int]int{}
			swept, cut := 0, 0 // runs where the sweep removed all, and some of the stale files
			for i := 1; i <= swapRuns && !t.Failed(); i++ {
				// Stale temporary files in the real directory, which the
				// sweep removes when it meets the directory.
				for j := range swapStale {
					p := filepath.Join(e.dest, "rules", swapStaleName(j))
					if _, err := os.Lstat(p); err == nil {
						continue
					}
					if err := os.WriteFile(p, []byte("stale\n"), 0o600); err != nil {
						t.Fatal(err)
					}
				}
				code, out := e.sync(i)
				exits[code]++
				switch left, _ := filepath.Glob(filepath.Join(e.dest, "rules", ".gamma.yml.tmp*")); {
				case len(left) == 0:
					swept++
				case len(left) < swapStale:
					cut++
				}
				if diff := swapDiff(before, swapSnapshot(t, e.outside)); len(diff) > 0 {
					t.Errorf("run %d changed the directory outside dest:\n%s\nbutler's output:\n%s", i, strings.Join(diff, "\n"), out)
				}
				if !slices.Contains(tt.exit, code) {
					t.Errorf("run %d: exit %d, want one of %v\n%s", i, code, tt.exit, out)
				}
				if strings.Contains(out, "panic:") {
					t.Errorf("run %d: butler panicked:\n%s", i, out)
				}
				lines := errorLines(out)
				if code != 0 && len(lines) == 0 {
					t.Errorf("run %d: exit %d without an error line\n%s", i, code, out)
				}
				for _, line := range lines {
					ok := strings.Contains(line, "manager="+swapManager) && strings.Contains(line, "manager "+swapManager+": ") &&
						strings.Contains(line, "rules/")
					named := false
					for _, ph := range tt.phase {
						named = named || strings.Contains(line, "phase="+ph)
					}
					if !ok || !named {
						t.Errorf("run %d: the error does not name the manager, a file under rules/ and a phase of %v:\n%s", i, tt.phase, line)
					}
				}
			}
			t.Logf("%d runs: exit codes %v, %d swaps, the sweep removed every stale file in %d runs and some in %d, %d reloads",
				swapRuns, exits, e.flips, swept, cut, e.reloads)
			// Once nothing swaps any more, butler brings everything in step.
			e.mu.Lock()
			e.when = -1
			e.mu.Unlock()
			if code, out := e.sync(swapRuns + 1); code != 0 {
				t.Fatalf("run without swaps: exit %d\n%s", code, out)
			}
			for _, p := range swapFiles {
				data, err := os.ReadFile(filepath.Join(e.dest, p))
				if err != nil || !bytes.Equal(data, swapContent(p, swapRuns+1)) {
					t.Errorf("after the run without swaps, dest %s = %q, %v", p, data, err)
				}
			}
			if diff := swapDiff(before, swapSnapshot(t, e.outside)); len(diff) > 0 {
				t.Errorf("the directory outside dest changed:\n%s", strings.Join(diff, "\n"))
			}
		})
	}
}
