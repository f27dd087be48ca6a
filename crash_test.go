package main

// Crash safety under SIGKILL: butler sync is killed at random moments of runs
// that change a manager's files, and after every kill what is on disk must be
// whole (each file complete, old or new; state, textfile and last-known-good
// copy readable and complete). Every few kills, and at the end, a normal run
// must bring everything in step and leave nothing behind.

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/butler-sre/butler/internal/textfiletest"
	"github.com/butler-sre/butler/textfile"
)

var crashSeed = flag.Uint64("crash.seed", 0, "seed of the kill delays of TestCrashSIGKILL (0: from the clock)")

const (
	crashManager = "crash"
	// crashKillsEnv sets the number of kills (`make crash N=1000`);
	// crashKillsDefault is what `make test` does.
	crashKillsEnv     = "BUTLER_CRASH_KILLS"
	crashKillsDefault = 30
	crashNormalEach   = 3 // a normal run after every crashNormalEach kills
	// crashLines lines of crashLineLen bytes: about 3.7 MiB per file.
	crashLines   = 60000
	crashLineLen = 64
)

// crashPaths are the files of the manager, relative to its dest; their names
// end in .yml, the glob a manager would read them by.
var crashPaths = []string{"alpha.yml", "beta.yml", "rules/gamma.yml"}

// crashVersions are the two versions the server flips between.
var crashVersions = []byte{'A', 'B'}

// crashContent builds version v of the file at path: every line names the
// file, the version and its own number, so any mix or truncation shows.
func crashContent(path string, v byte) []byte {
	var b bytes.Buffer
	b.Grow(crashLines * crashLineLen)
	for i := range crashLines {
		head := fmt.Sprintf("%s %c %08d ", path, v, i)
		b.WriteString(head)
		b.WriteString(strings.Repeat(string(rune('a'+i%26)), crashLineLen-len(head)-1))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// crashServer serves the files in the current version and answers reloads,
// recording which version of each file the "manager" found on disk then.
type crashServer struct {
	content map[byte]map[string][]byte
	dest    string

	mu         sync.Mutex
	version    byte
	fetches    int
	reloads    int
	lastReload string // one version letter per file, "?" when not whole
}

func (s *crashServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasPrefix(r.URL.Path, "/files/"):
		s.mu.Lock()
		s.fetches++
		data, ok := s.content[s.version][strings.TrimPrefix(r.URL.Path, "/files/")]
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		_, _ = w.Write(data)
	case r.URL.Path == "/reload" && r.Method == http.MethodPost:
		// Like a real manager, read the configuration at reload time.
		seen := s.onDisk()
		s.mu.Lock()
		s.reloads++
		s.lastReload = seen
		s.mu.Unlock()
	default:
		http.NotFound(w, r)
	}
}

// onDisk says which version each dest file is, "?" for anything else.
func (s *crashServer) onDisk() string {
	var out []byte
	for _, p := range crashPaths {
		data, err := os.ReadFile(filepath.Join(s.dest, p))
		v, whole := s.classify(p, data)
		if err != nil || !whole {
			v = '?'
		}
		out = append(out, v)
	}
	return string(out)
}

// classify says whether data is exactly one version of path.
func (s *crashServer) classify(path string, data []byte) (byte, bool) {
	for _, v := range crashVersions {
		if bytes.Equal(data, s.content[v][path]) {
			return v, true
		}
	}
	return 0, false
}

// describe explains why data is neither version of path.
func (s *crashServer) describe(path string, data []byte) string {
	parts := []string{fmt.Sprintf("%d bytes", len(data))}
	for _, v := range crashVersions {
		want := s.content[v][path]
		i := 0
		for i < len(data) && i < len(want) && data[i] == want[i] {
			i++
		}
		parts = append(parts, fmt.Sprintf("%c has %d bytes and differs at byte %d", v, len(want), i))
	}
	return strings.Join(parts, "; ")
}

func (s *crashServer) set(v byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.version = v
}

func (s *crashServer) counts() (fetches, reloads int, lastReload string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetches, s.reloads, s.lastReload
}

// crashEnv is one test's directories and server.
type crashEnv struct {
	t        *testing.T
	srv      *crashServer
	config   string
	dest     string
	stateDir string
	textfile string
}

func crashNewEnv(t *testing.T) *crashEnv {
	dir := t.TempDir()
	e := &crashEnv{
		t:        t,
		config:   filepath.Join(dir, "butler.toml"),
		dest:     filepath.Join(dir, "dest"),
		stateDir: filepath.Join(dir, "state"),
		textfile: filepath.Join(dir, "textfile", "butler.prom"),
	}
	e.srv = &crashServer{content: map[byte]map[string][]byte{}, dest: e.dest, version: 'A'}
	for _, v := range crashVersions {
		e.srv.content[v] = map[string][]byte{}
		for _, p := range crashPaths {
			e.srv.content[v][p] = crashContent(p, v)
		}
	}
	ts := httptest.NewServer(e.srv)
	t.Cleanup(ts.Close)

	var b strings.Builder
	fmt.Fprintf(&b, "[butler]\nstate_dir = %q\ntextfile = %q\ntimeout = \"30s\"\n\n", e.stateDir, e.textfile)
	fmt.Fprintf(&b, "[managers.%s]\ndest = %q\n\n", crashManager, e.dest)
	for _, p := range crashPaths {
		fmt.Fprintf(&b, "[[managers.%s.files]]\nsource = %q\npath = %q\nformat = \"text\"\ntemplate = false\n\n",
			crashManager, ts.URL+"/files/"+p, p)
	}
	fmt.Fprintf(&b, "[managers.%s.reload]\nurl = %q\n", crashManager, ts.URL+"/reload")
	if err := os.WriteFile(e.config, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *crashEnv) command() (*exec.Cmd, *bytes.Buffer) {
	cmd := exec.Command(butlerBin, "--config", e.config, "--log-level", "debug", "sync")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	return cmd, &out
}

// sync runs butler to the end; it must exit 0 and leave everything in step.
func (e *crashEnv) sync(v byte) time.Duration {
	t := e.t
	t.Helper()
	cmd, out := e.command()
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if err != nil {
		t.Fatalf("normal sync with version %c: %v\n%s", v, err, out)
	}
	e.checkWhole("normal sync")
	e.checkInStep(v, out)
	return took
}

// crashPhase is how far a killed run got, judged from what changed on disk.
type crashPhase string

const (
	crashStartup  crashPhase = "startup (nothing fetched)"
	crashFetch    crashPhase = "fetch/render (fetched, nothing written)"
	crashWrite    crashPhase = "write (some files replaced)"
	crashReload   crashPhase = "reload (all written, no reload)"
	crashLKG      crashPhase = "lkg (reloaded, copy not stored)"
	crashState    crashPhase = "state (copy stored, state not saved)"
	crashTextfile crashPhase = "textfile (state saved, textfile not written)"
	crashEnd      crashPhase = "exit (textfile written)"
	crashExited   crashPhase = "finished before the kill"
)

// crashMark is what a run changes, read before and after it.
type crashMark struct {
	ino              map[string]uint64 // dest files, state.json, the textfile
	lkg              string            // the target of the LKG link
	fetches, reloads int
}

func (e *crashEnv) mark() crashMark {
	m := crashMark{ino: map[string]uint64{}}
	paths := []string{filepath.Join(e.stateDir, "state.json"), e.textfile}
	for _, p := range crashPaths {
		paths = append(paths, filepath.Join(e.dest, p))
	}
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil {
			m.ino[p] = fi.Sys().(*syscall.Stat_t).Ino
		}
	}
	m.lkg, _ = os.Readlink(e.lkgLink())
	m.fetches, m.reloads, _ = e.srv.counts()
	return m
}

func (e *crashEnv) lkgLink() string { return filepath.Join(e.stateDir, "lkg", crashManager) }

// phase judges where a run that started at before was killed.
func (e *crashEnv) phase(before, after crashMark, destTemps int) crashPhase {
	changed := func(p string) bool { return before.ino[p] != after.ino[p] }
	written := 0
	for _, p := range crashPaths {
		if changed(filepath.Join(e.dest, p)) {
			written++
		}
	}
	switch {
	case changed(e.textfile):
		return crashEnd
	case changed(filepath.Join(e.stateDir, "state.json")):
		return crashTextfile
	case before.lkg != after.lkg:
		return crashState
	case after.reloads > before.reloads:
		return crashLKG
	case written == len(crashPaths):
		return crashReload
	case written > 0 || destTemps > 0:
		return crashWrite
	case after.fetches > before.fetches:
		return crashFetch
	}
	return crashStartup
}

// kill starts butler and kills it with SIGKILL after delay, unless it ends
// first; then it says how long the run took.
func (e *crashEnv) kill(delay time.Duration) (exited bool, took time.Duration, out *bytes.Buffer) {
	t := e.t
	t.Helper()
	cmd, out := e.command()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	timer := time.NewTimer(delay)
	defer timer.Stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("butler ended on its own before the kill with %v\n%s", err, out)
		}
		return true, time.Since(start), out
	case <-timer.C:
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatal(err)
	}
	err := <-done
	var ee *exec.ExitError
	if err == nil {
		return true, time.Since(start), out // it finished in the meantime
	}
	if !errors.As(err, &ee) {
		t.Fatal(err)
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
		t.Fatalf("butler ended on its own before the kill with %v\n%s", err, out)
	}
	return false, 0, out
}

var (
	// crashDestTemp is atomicfile.WriteFile's temporary name for base.
	crashDestTemp = regexp.MustCompile(`^\.(.+)\.tmp[0-9]+$`)
	// crashTextTemp is atomicfile.WriteFile's temporary name for butler.prom.
	crashTextTemp = regexp.MustCompile(`^\.butler\.prom\.tmp[0-9]+$`)
	// crashLKGEntry is what StoreLKG keeps beside the link.
	crashLKGEntry = regexp.MustCompile(`^\.` + crashManager + `\.lkg(tmp)?-[0-9]+$`)
)

// crashMedian is the median of ds.
func crashMedian(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// crashLeft counts the temporary files a killed run left.
type crashLeft struct{ dest, textfile, state int }

// checkWhole asserts what must hold at any moment, a kill included. It
// returns the temporary files found.
func (e *crashEnv) checkWhole(when string) (left crashLeft) {
	t := e.t
	t.Helper()
	// Every dest file is exactly one version; the initial run created them
	// all and nothing may remove them.
	for _, p := range crashPaths {
		data, err := os.ReadFile(filepath.Join(e.dest, p))
		if err != nil {
			t.Errorf("%s: dest %s: %v", when, p, err)
			continue
		}
		if _, ok := e.srv.classify(p, data); !ok {
			t.Errorf("%s: dest %s is neither version A nor B: %s", when, p, e.srv.describe(p, data))
		}
	}
	// Nothing else in dest, and nothing a manager reading *.yml would pick up.
	err := filepath.WalkDir(e.dest, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(e.dest, path)
		rel = filepath.ToSlash(rel)
		if slices.Contains(crashPaths, rel) {
			return nil
		}
		if m := crashDestTemp.FindStringSubmatch(d.Name()); m != nil &&
			slices.Contains(crashPaths, filepath.ToSlash(filepath.Join(filepath.Dir(rel), m[1]))) {
			if matched, _ := filepath.Match("*.yml", d.Name()); matched {
				t.Errorf("%s: temporary file %s matches *.yml", when, rel)
			}
			left.dest++
			return nil
		}
		t.Errorf("%s: unexpected file in dest: %s", when, rel)
		return nil
	})
	if err != nil {
		t.Errorf("%s: %v", when, err)
	}
	// The textfile is never half-written; its temporaries never end in .prom.
	if _, err := os.Stat(e.textfile); err == nil {
		if _, err := textfiletest.ReadFile(e.textfile); err != nil {
			t.Errorf("%s: textfile: %v", when, err)
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(e.textfile))
	for _, en := range entries {
		switch {
		case crashTextTemp.MatchString(en.Name()):
			left.textfile++
		case en.Name() != filepath.Base(e.textfile):
			t.Errorf("%s: unexpected file beside the textfile: %s", when, en.Name())
		}
	}
	// The state file always parses.
	if data, err := os.ReadFile(filepath.Join(e.stateDir, "state.json")); err == nil {
		var st map[string]any
		if err := json.Unmarshal(data, &st); err != nil {
			t.Errorf("%s: state.json does not parse: %v", when, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s: state.json: %v", when, err)
	}
	if matches, _ := filepath.Glob(filepath.Join(e.stateDir, "state.json.corrupt-*")); len(matches) > 0 {
		t.Errorf("%s: the state was found corrupt: %v", when, matches)
	}
	// The last-known-good copy, when there is one, is one whole version;
	// beside it only what StoreLKG makes.
	entries, _ = os.ReadDir(filepath.Dir(e.lkgLink()))
	for _, en := range entries {
		if en.Name() != crashManager && !crashLKGEntry.MatchString(en.Name()) {
			t.Errorf("%s: unexpected entry beside the last-known-good copy: %s", when, en.Name())
		}
	}
	if _, err := os.Lstat(e.lkgLink()); err == nil {
		if v, err := e.lkgVersion(); err != nil {
			t.Errorf("%s: last-known-good copy: %v", when, err)
		} else if v == 0 {
			t.Errorf("%s: last-known-good copy mixes versions", when)
		}
	}
	left.state = e.stateTemps()
	return left
}

// lkgVersion reads the last-known-good copy: its one version, or 0 when its
// files are whole but of different versions.
func (e *crashEnv) lkgVersion() (byte, error) {
	root := e.lkgLink()
	var got []byte
	var extra []string
	err := filepath.WalkDir(root+"/", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if !slices.Contains(crashPaths, filepath.ToSlash(rel)) {
			extra = append(extra, rel)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if len(extra) > 0 {
		return 0, fmt.Errorf("unexpected files %v", extra)
	}
	for _, p := range crashPaths {
		data, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			return 0, err
		}
		v, ok := e.srv.classify(p, data)
		if !ok {
			return 0, fmt.Errorf("%s is neither version A nor B: %s", p, e.srv.describe(p, data))
		}
		got = append(got, v)
	}
	if bytes.Count(got, got[:1]) != len(got) {
		return 0, nil
	}
	return got[0], nil
}

// checkInStep asserts what a normal run that exited 0 must leave: every file
// at version v, loaded by the manager and kept as the last-known-good copy,
// success in the textfile, and no temporary file anywhere.
func (e *crashEnv) checkInStep(v byte, out *bytes.Buffer) {
	t := e.t
	t.Helper()
	for _, p := range crashPaths {
		data, _ := os.ReadFile(filepath.Join(e.dest, p))
		if got, ok := e.srv.classify(p, data); !ok || got != v {
			t.Errorf("after a complete run, dest %s is not version %c", p, v)
		}
	}
	if _, _, last := e.srv.counts(); last != strings.Repeat(string(v), len(crashPaths)) {
		t.Errorf("after a complete run, the manager last loaded %q, want every file at version %c\n%s", last, v, out)
	}
	if got, err := e.lkgVersion(); err != nil || got != v {
		t.Errorf("after a complete run, the last-known-good copy is version %q (%v), want %c\n%s", got, err, v, out)
	}
	for _, want := range []struct {
		name   string
		labels textfile.Labels
	}{
		{"butler_run_success", nil},
		{"butler_manager_success", textfile.L("manager", crashManager)},
	} {
		if got, ok := textfileValue(t, e.textfile, want.name, want.labels); !ok || got != 1 {
			t.Errorf("after a complete run, %s%v = %v (present %v), want 1", want.name, want.labels, got, ok)
		}
	}
	// Nothing left behind: dest, the textfile's directory, the staging area,
	// and the last-known-good directory hold only what they should.
	for _, dir := range []string{e.dest, filepath.Join(e.dest, "rules"), filepath.Dir(e.textfile)} {
		entries, _ := os.ReadDir(dir)
		for _, en := range entries {
			if strings.HasPrefix(en.Name(), ".") {
				t.Errorf("after a complete run, temporary file left in %s: %s", dir, en.Name())
			}
		}
	}
	if entries, err := os.ReadDir(filepath.Join(e.stateDir, "tmp")); err == nil && len(entries) > 0 {
		t.Errorf("after a complete run, the staging area holds %d entries", len(entries))
	}
	if n := e.stateTemps(); n > 0 {
		t.Errorf("after a complete run, %d temporary state files are left", n)
	}
	if entries, err := os.ReadDir(filepath.Join(e.stateDir, "writing")); err == nil && len(entries) > 0 {
		t.Errorf("after a complete run, %d managers are still marked as being written", len(entries))
	}
	target, _ := os.Readlink(e.lkgLink())
	entries, _ := os.ReadDir(filepath.Dir(e.lkgLink()))
	for _, en := range entries {
		if en.Name() != crashManager && en.Name() != target {
			t.Errorf("after a complete run, last-known-good leftover: %s", en.Name())
		}
	}
}

// stateTemps counts temporary state files left in the state directory.
func (e *crashEnv) stateTemps() int {
	m, _ := filepath.Glob(filepath.Join(e.stateDir, ".state.json.tmp*"))
	return len(m)
}

// crashKillCount is the number of kills: $BUTLER_CRASH_KILLS, or
// crashKillsDefault.
func crashKillCount(t *testing.T) int {
	v := os.Getenv(crashKillsEnv)
	if v == "" {
		return crashKillsDefault
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a number of kills, at least 1", crashKillsEnv, v)
	}
	return n
}

func TestCrashSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("kills butler many times; skipped with -short")
	}
	crashKills := crashKillCount(t)
	e := crashNewEnv(t)
	seed := *crashSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -crash.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed))

	// A first run from nothing, then runs that change every file to learn
	// how long a full run takes. The kills are spread over that length and a
	// little more (the last phases are short): one in each of crashKills
	// equal slices of it, in random order. The machine may be busier or
	// quieter later, so every full run of the loop updates the length.
	e.srv.set('A')
	first := e.sync('A')
	var fulls []time.Duration
	for _, v := range []byte{'B', 'A', 'B', 'A'} {
		e.srv.set(v)
		fulls = append(fulls, e.sync(v))
	}
	t.Logf("first run %v, full runs %v", first.Round(time.Millisecond), fulls)
	fractions := make([]float64, crashKills)
	for i := range fractions {
		fractions[i] = 1.15 * (float64(i) + rng.Float64()) / float64(crashKills)
	}
	rng.Shuffle(len(fractions), func(i, j int) { fractions[i], fractions[j] = fractions[j], fractions[i] })

	phases := map[crashPhase]int{}
	runs, killed := 0, 0      // runs started to be killed, and those the kill ended
	normals := 1 + len(fulls) // normal runs, the first ones included
	torn := 0                 // kills after which something was not whole (the loop stops at the first)
	var left crashLeft        // kills that left temporary files, by place
	served := byte('A')
	for i := range crashKills {
		if t.Failed() {
			break
		}
		// Flip to the version most files on disk are not, so that every
		// run has files to write (a killed run may have left some of them).
		served = 'A'
		if strings.Count(e.srv.onDisk(), "A") > len(crashPaths)/2 {
			served = 'B'
		}
		e.srv.set(served)
		full := crashMedian(fulls[max(0, len(fulls)-5):])
		delay := time.Duration(fractions[i] * float64(full))
		before := e.mark()
		exited, took, out := e.kill(delay)
		runs++
		l := e.checkWhole(fmt.Sprintf("kill %d after %v", i, delay.Round(time.Millisecond)))
		if t.Failed() {
			torn++
		}
		after := e.mark()
		ph := e.phase(before, after, l.dest)
		if exited {
			ph = crashExited
			e.checkInStep(served, out)
			if before.lkg != after.lkg {
				fulls = append(fulls, took)
			}
		}
		phases[ph]++
		if !exited {
			killed++
		}
		for _, c := range []struct{ n, sum *int }{{&l.dest, &left.dest}, {&l.textfile, &left.textfile}, {&l.state, &left.state}} {
			if *c.n > 0 {
				*c.sum++
			}
		}
		t.Logf("kill %2d: version %c, after %3dms of ~%3dms: %s", i, served, delay.Milliseconds(), full.Milliseconds(), ph)
		if t.Failed() {
			t.Logf("output of the killed run:\n%s", out)
		}
		if i%crashNormalEach == crashNormalEach-1 || i == crashKills-1 {
			normals++
			before := e.mark()
			took := e.sync(served)
			if before.lkg != e.mark().lkg {
				fulls = append(fulls, took)
			}
		}
	}

	names := make([]string, 0, len(phases))
	for ph := range phases {
		names = append(names, string(ph))
	}
	sort.Strings(names)
	for _, n := range names {
		t.Logf("%2d kills in %s", phases[crashPhase(n)], n)
	}
	t.Logf("kills that left temporary files: %d in dest, %d beside the textfile, %d beside the state file",
		left.dest, left.textfile, left.state)
	t.Logf("%d runs started to be killed: %d killed by SIGKILL, %d finished first; %d normal runs; %d files of %.1f MiB; torn: %d",
		runs, killed, runs-killed, normals, len(crashPaths), float64(crashLines*crashLineLen)/(1<<20), torn)
}
