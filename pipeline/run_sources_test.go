package pipeline

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/butler-sre/butler/internal/envtest"
	"github.com/butler-sre/butler/internal/gitrepo"
	"github.com/butler-sre/butler/pipeline/config"
	"github.com/butler-sre/butler/pipeline/golden"
)

// runConfig builds a one-manager configuration around the given files and reload tables.
func runConfig(e *runEnv, butlerExtra, files, reload string) *config.Config {
	e.t.Helper()
	return e.parse(fmt.Sprintf(`
[butler]
state_dir = %q
textfile = %q
timeout = "20s"
%s
[managers.m]
dest = %q
%s
%s
`, e.stateDir, e.textfile, butlerExtra, e.dest, files, reload))
}

func TestRunS3AndGitSources(t *testing.T) {
	t.Setenv("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required")
	backend := s3mem.New()
	s3 := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(s3.Close)
	if err := backend.CreateBucket("cfg"); err != nil {
		t.Fatal(err)
	}
	body := []byte("groups:\n  - name: from-s3\n")
	if _, err := backend.PutObject("cfg", "rules/s3.yml", map[string]string{}, bytes.NewReader(body), int64(len(body)), nil); err != nil {
		t.Fatal(err)
	}
	repo := gitrepo.Sample(t)

	e := newRunEnv(t)
	creds := "?region=us-east-1&aws_access_key_id=AKIDRUN&aws_access_key_secret=run-secret-key"
	cfg := runConfig(e, `schemes = ["http", "s3", "git"]`, fmt.Sprintf(`
[[managers.m.files]]
source = "s3::%s/cfg/rules/s3.yml%s"
path = "rules/s3.yml"
[[managers.m.files]]
source = "s3::%s/cfg/rules/missing.yml%s"
path = "rules/missing.yml"
[[managers.m.files]]
source = "git::file://%s//prometheus/rules/common.yml?ref=v1"
path = "rules/git.yml"
`, s3.URL, creds, s3.URL, creds, repo), "")

	_, err := e.run(cfg, nil)
	wantFailed(t, err)
	for file, want := range map[string]float64{"rules/s3.yml": 200, "rules/missing.yml": 404, "rules/git.yml": 200} {
		if v := e.metric("butler_remote_status", "manager", "m", "file", file); v != want {
			t.Errorf("remote_status %s = %v, want %v", file, v, want)
		}
	}
	if strings.Contains(e.logs.String(), "run-secret-key") {
		t.Errorf("S3 secret in the logs:\n%s", e.logs.String())
	}
	if !strings.Contains(e.logs.String(), "rules/missing.yml") {
		t.Errorf("logs do not name the missing file:\n%s", e.logs.String())
	}

	// Once the object exists, every source is applied; the git tag pins version 1.
	if _, err := backend.PutObject("cfg", "rules/missing.yml", map[string]string{}, bytes.NewReader(body), int64(len(body)), nil); err != nil {
		t.Fatal(err)
	}
	_, err = e.run(cfg, nil)
	wantNoErr(t, err)
	if got := e.read("rules/s3.yml"); got != string(body) {
		t.Errorf("s3 file = %q", got)
	}
	if got := e.read("rules/git.yml"); got != "version: 1\n" {
		t.Errorf("git file = %q", got)
	}
}

func TestRunSlowAndHangingRemotes(t *testing.T) {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow.yml":
			time.Sleep(300 * time.Millisecond)
			fmt.Fprint(w, "slow: true\n")
		case "/hang.yml":
			<-r.Context().Done()
		}
	}))
	t.Cleanup(slow.Close)

	e := newRunEnv(t)
	cfg := e.parse(fmt.Sprintf(`
[butler]
state_dir = %q
textfile = %q
timeout = "2s"
[managers.slow]
dest = %q
[[managers.slow.files]]
source = "%s/slow.yml"
[managers.hang]
dest = %q
[[managers.hang.files]]
source = "%s/hang.yml"
`, e.stateDir, e.textfile, filepath.Join(e.dir, "slow"), slow.URL, filepath.Join(e.dir, "hang"), slow.URL))
	start := time.Now()
	res, err := e.run(cfg, nil)
	wantFailed(t, err)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("run took %v, the deadline is 2s", d)
	}
	for _, mr := range res.Managers {
		switch mr.Name {
		case "slow":
			if !mr.InStep {
				t.Errorf("slow remote failed: %v", mr.Err)
			}
		case "hang":
			if mr.Phase != PhaseFetch {
				t.Errorf("hanging remote: %+v", mr)
			}
		}
	}
	e.wantMetric(t, 0, "butler_remote_status", "manager", "hang", "file", "hang.yml")
	e.wantMetric(t, 1, "butler_remote_fetch_failures_total", "manager", "hang", "file", "hang.yml")
}

// TestRunTimeoutFlag: --timeout (Options.Timeout) overrides [butler] timeout.
func TestRunTimeoutFlag(t *testing.T) {
	e := newRunEnv(t)
	e.remote.mu.Lock()
	e.remote.hang["/rules/a.yml"] = true
	e.remote.mu.Unlock()
	cfg := e.parse(e.config("")) // [butler] timeout = "20s"
	start := time.Now()
	res, err := e.run(cfg, func(o *Options) { o.Timeout = 300 * time.Millisecond })
	wantFailed(t, err)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("run took %v: --timeout 300ms was not applied", d)
	}
	if mr := res.Managers[0]; mr.Phase != PhaseFetch || !strings.Contains(mr.Err.Error(), "rules/a.yml") {
		t.Errorf("result = %+v", mr)
	}
}

func TestRunMaxFileSize(t *testing.T) {
	const limit = 64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/exact.txt":
			fmt.Fprint(w, strings.Repeat("x", limit))
		case "/big.txt":
			w.Header().Set("Content-Length", fmt.Sprint(limit+1))
			fmt.Fprint(w, strings.Repeat("x", limit+1))
		case "/chunked.txt":
			for i := 0; i < 10; i++ {
				fmt.Fprint(w, strings.Repeat("y", 16))
				w.(http.Flusher).Flush()
			}
		}
	}))
	t.Cleanup(srv.Close)
	tests := []struct {
		path string
		ok   bool
	}{{"exact.txt", true}, {"big.txt", false}, {"chunked.txt", false}}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			e := newRunEnv(t)
			cfg := runConfig(e, fmt.Sprintf("max_file_size = %d", limit),
				fmt.Sprintf("[[managers.m.files]]\nsource = \"%s/%s\"\n", srv.URL, tt.path), "")
			res, err := e.run(cfg, nil)
			if tt.ok {
				wantNoErr(t, err)
				return
			}
			wantFailedIn(t, res, err, PhaseFetch, "max_file_size")
			if _, err := os.Stat(filepath.Join(e.dest, tt.path)); !os.IsNotExist(err) {
				t.Error("an oversize file was written")
			}
		})
	}
}

// TestRunConcurrencyLimit holds the first requests until `concurrency` of
// them are in flight at once: a limit lower than configured never fills the
// barrier (the requests then go on after a while, and the count says so), and
// a higher one shows as more than three at once.
func TestRunConcurrencyLimit(t *testing.T) {
	const limit = 3
	var inFlight, most atomic.Int32
	full := make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		if n == limit {
			once.Do(func() { close(full) })
		}
		select {
		case <-full:
		case <-time.After(5 * time.Second): // the barrier never filled: fail, do not hang
		}
		fmt.Fprintf(w, "%s\n", r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	e := newRunEnv(t)
	var text strings.Builder
	fmt.Fprintf(&text, "[butler]\nstate_dir = %q\ntextfile = %q\nconcurrency = 3\n", e.stateDir, e.textfile)
	for m := 0; m < 3; m++ {
		fmt.Fprintf(&text, "[managers.m%d]\ndest = %q\n", m, filepath.Join(e.dir, fmt.Sprint("d", m)))
		for f := 0; f < 4; f++ {
			fmt.Fprintf(&text, "[[managers.m%d.files]]\nsource = \"%s/f%d.txt\"\n", m, srv.URL, f)
		}
	}
	_, err := e.run(e.parse(text.String()), nil)
	wantNoErr(t, err)
	if m := most.Load(); m != limit {
		t.Errorf("at most %d fetches at once, want exactly %d (concurrency = %d over all managers)", m, limit, limit)
	}
}

func TestRunCommandReloader(t *testing.T) {
	tests := []struct {
		name    string
		command string
		status  float64 // butler_reload_status; the run succeeds with 200 only
	}{
		{"exit 0", `["true"]`, 200},
		{"exit 1", `["sh", "-c", "echo nginx: bad directive >&2; exit 1"]`, 500},
		{"timeout", `["sleep", "10"]`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newRunEnv(t)
			cfg := runConfig(e, "", fmt.Sprintf("[[managers.m.files]]\nsource = %q\n", e.remote.url("/rules/a.yml")),
				fmt.Sprintf("[managers.m.reload]\ncommand = %s\ntimeout = \"300ms\"\n", tt.command))
			start := time.Now()
			res, err := e.run(cfg, nil)
			if time.Since(start) > 8*time.Second {
				t.Errorf("run took %v", time.Since(start))
			}
			if tt.status == 200 {
				wantNoErr(t, err)
			} else {
				wantFailed(t, err)
			}
			e.wantMetric(t, tt.status, "butler_reload_status", "manager", "m")
			if tt.status == 500 && !strings.Contains(res.Managers[0].Err.Error(), "bad directive") {
				t.Errorf("error does not carry the command's output: %v", res.Managers[0].Err)
			}
		})
	}
}

func TestRunWriteFailsMidway(t *testing.T) {
	e := newRunEnv(t)
	cfg, good := e.appliedGood()

	// Both files change, but rules/a.yml cannot be written: a directory stands in its way.
	e.remote.Set("/prometheus.yml", "changed: 1\n")
	e.remote.Set("/rules/a.yml", "changed: 2\n")
	target := filepath.Join(e.dest, "rules", "a.yml")
	if err := os.Remove(target); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(target, "in-the-way"), 0o755); err != nil {
		t.Fatal(err)
	}
	res, err := e.run(cfg, nil)
	wantFailedIn(t, res, err, PhaseWrite, "rules/a.yml")
	if got := e.read("prometheus.yml"); got != good {
		t.Errorf("prometheus.yml not put back: %q", got)
	}
	// no reload after a failed write
	e.wantReloads(t, 0)
	e.wantMetric(t, 0, "butler_write", "manager", "prom", "file", "rules/a.yml")
}

// TestRunTextfileGolden pins the whole textfile of a scenario, clock included.
func TestRunTextfileGolden(t *testing.T) {
	e := newRunEnv(t)
	cfg := e.applied()
	e.remote.Set("/prometheus.yml", "refused: 1\n")
	e.reload.set(http.StatusInternalServerError, false)
	_, err := e.run(cfg, nil) // refused, LKG restored
	wantFailed(t, err)

	got, err := os.ReadFile(e.textfile)
	if err != nil {
		t.Fatal(err)
	}
	// The run duration is 0 with a pinned clock.
	// The remote's port changes every run and never appears; the golden holds no URL.
	golden.Assert(t, filepath.Join("..", "testdata", "run", "refused.prom"), got)
	if bytes.Contains(got, []byte("127.0.0.1")) {
		t.Error("textfile holds a URL")
	}
}

// BenchmarkRunUnchanged measures the common run: every file fetched over HTTP,
// rendered and validated, compared with the disk, nothing to write; 10 managers
// of 5 files of 16 KiB each.
func BenchmarkRunUnchanged(b *testing.B) {
	var lines strings.Builder
	for i := 0; lines.Len() < 16<<10; i++ {
		fmt.Fprintf(&lines, "key_%d: {{manager}}\n", i)
	}
	body := lines.String()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, body)
	}))
	defer srv.Close()
	dir := b.TempDir()
	var text strings.Builder
	fmt.Fprintf(&text, "[butler]\nstate_dir = %q\ntextfile = %q\n", filepath.Join(dir, "state"), filepath.Join(dir, "butler.prom"))
	for m := 0; m < 10; m++ {
		fmt.Fprintf(&text, "[managers.m%d]\ndest = %q\n", m, filepath.Join(dir, fmt.Sprint("d", m)))
		for f := 0; f < 5; f++ {
			fmt.Fprintf(&text, "[[managers.m%d.files]]\nsource = \"%s/f%d.yml\"\n", m, srv.URL, f)
		}
	}
	cfg, err := config.Parse([]byte(text.String()), "bench.toml", dir, envtest.Lookup(nil))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := Run(b.Context(), cfg, Options{}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		res, err := Run(b.Context(), cfg, Options{})
		if err != nil || res.Managers[0].Outcome != "unchanged" {
			b.Fatalf("%v %+v", err, res)
		}
	}
}
