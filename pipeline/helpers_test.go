package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/butler-sre/butler/internal/envtest"
	"github.com/butler-sre/butler/internal/nettest"
	"github.com/butler-sre/butler/internal/textfiletest"
	"github.com/butler-sre/butler/pipeline/config"
	"github.com/butler-sre/butler/textfile"
)

// runRemote is an HTTP file server whose files and failures tests change between runs.
type runRemote struct {
	*nettest.Files
	mu     sync.Mutex
	status map[string]int       // a path answers this status instead
	hang   map[string]bool      // a path never answers (until the client gives up)
	auth   map[string][2]string // a path demands basic auth
	taken  int                  // how many requests takePaths returned
}

func newRunRemote(t *testing.T) *runRemote {
	r := &runRemote{status: map[string]int{}, hang: map[string]bool{}, auth: map[string][2]string{}}
	r.Files = nettest.NewFiles(t, nil, r.guard)
	return r
}

// guard answers the requests for the paths that fail, hang or demand auth.
func (r *runRemote) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		status, hang := r.status[req.URL.Path], r.hang[req.URL.Path]
		cred, needAuth := r.auth[req.URL.Path]
		r.mu.Unlock()
		if hang {
			<-req.Context().Done()
			return
		}
		if needAuth {
			u, p, ok := req.BasicAuth()
			if !ok || u != cred[0] || p != cred[1] {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
		}
		if status != 0 {
			http.Error(w, "failing on purpose", status)
			return
		}
		next.ServeHTTP(w, req)
	})
}

func (r *runRemote) fail(path string, status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status[path] = status
}

func (r *runRemote) url(path string) string { return r.URL + path }

// takePaths returns the paths asked for since the last take, in order.
func (r *runRemote) takePaths() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	reqs := r.Log.All()[r.taken:]
	r.taken += len(reqs)
	var paths []string
	for _, req := range reqs {
		paths = append(paths, req.Path)
	}
	return paths
}

// headers returns the headers of each request for path, oldest first.
func (r *runRemote) headers(path string) []http.Header {
	var hs []http.Header
	for _, req := range r.Log.All() {
		if req.Path == path {
			hs = append(hs, req.Header)
		}
	}
	return hs
}

// runReloader is a reload endpoint that answers a programmed status and counts calls.
type runReloader struct {
	mu     sync.Mutex
	status int    // answered status
	hang   bool   // never answer
	onCall func() // run when a reload arrives, before it is answered
	calls  int
	srv    *httptest.Server
}

func newRunReloader(t *testing.T) *runReloader {
	r := &runReloader{status: http.StatusOK}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.calls++
		status, hang, onCall := r.status, r.hang, r.onCall
		r.mu.Unlock()
		if onCall != nil {
			onCall()
		}
		if hang {
			<-req.Context().Done()
			return
		}
		if status != http.StatusOK {
			http.Error(w, "config refused: bad things", status)
			return
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *runReloader) set(status int, hang bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status, r.hang = status, hang
}

// takeCalls returns the calls since the last take.
func (r *runReloader) takeCalls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.calls
	r.calls = 0
	return n
}

// runEnv is one butler installation in a temp dir, with a pinned clock.
type runEnv struct {
	t        *testing.T
	dir      string
	stateDir string
	textfile string
	dest     string
	remote   *runRemote
	reload   *runReloader
	now      time.Time
	logs     bytes.Buffer
	stdout   bytes.Buffer
}

func newRunEnv(t *testing.T) *runEnv {
	dir := t.TempDir()
	e := &runEnv{
		t:        t,
		dir:      dir,
		stateDir: filepath.Join(dir, "state"),
		textfile: filepath.Join(dir, "textfile", "butler.prom"),
		dest:     filepath.Join(dir, "etc", "prom"),
		remote:   newRunRemote(t),
		reload:   newRunReloader(t),
		now:      time.Unix(1_763_780_000, 0).UTC(),
	}
	e.remote.Set("/prometheus.yml", "global:\n  scrape_interval: {{interval}}\n  external_labels:\n    dc: {{datacenter}}\n")
	e.remote.Set("/rules/a.yml", "groups:\n  - name: a\n    rules: []\n")
	return e
}

// config returns the standard configuration with extra text appended to the
// prom manager's table (before its files).
func (e *runEnv) config(managerExtra string) string {
	return fmt.Sprintf(`
[butler]
state_dir = %q
textfile = %q
timeout = "20s"

[vars]
datacenter = "ams1"

[managers.prom]
dest = %q
vars = { interval = "30s" }
%s
[[managers.prom.files]]
source = %q

[[managers.prom.files]]
source = %q
path = "rules/a.yml"
template = false

[managers.prom.reload]
url = %q
timeout = "500ms"
retries = 0
`, e.stateDir, e.textfile, e.dest, managerExtra, e.remote.url("/prometheus.yml"), e.remote.url("/rules/a.yml"), e.reload.srv.URL+"/-/reload")
}

// configWithOther returns the standard configuration and a second manager,
// other, with dest etc/other and one file from source; fileExtra goes into
// that file's table.
func (e *runEnv) configWithOther(source, fileExtra string) string {
	return e.config("") + fmt.Sprintf(`
[managers.other]
dest = %q
[[managers.other.files]]
source = %q
%s
`, filepath.Join(e.dir, "etc", "other"), source, fileExtra)
}

func (e *runEnv) parse(text string) *config.Config {
	e.t.Helper()
	cfg, err := config.Parse([]byte(text), "butler.toml", e.dir, envtest.Lookup(nil))
	if err != nil {
		e.t.Fatalf("config: %v", err)
	}
	return cfg
}

// run runs butler once at the env's clock, then moves the clock a minute on.
func (e *runEnv) run(cfg *config.Config, mod func(*Options)) (*Result, error) {
	e.t.Helper()
	now := e.now
	opts := Options{
		Now:      func() time.Time { return now },
		Logger:   slog.New(slog.NewTextHandler(&e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Stdout:   &e.stdout,
		Environ:  []string{"HOME=/root"},
		Hostname: "host1",
		Build:    BuildInfo{Version: "v1.0.0", Revision: "abc123", GoVersion: "go1.26"},
	}
	if mod != nil {
		mod(&opts)
	}
	res, err := Run(context.Background(), cfg, opts)
	e.now = e.now.Add(time.Minute)
	return res, err
}

// applied parses the standard configuration and runs it once, successfully:
// where the tests of what a later run does start.
func (e *runEnv) applied() *config.Config {
	e.t.Helper()
	cfg := e.parse(e.config(""))
	_, err := e.run(cfg, nil)
	wantNoErr(e.t, err)
	return cfg
}

// appliedGood is applied, with the reload of that run taken: it returns the
// configuration and the prometheus.yml the run wrote, for the tests of a
// later run that fails.
func (e *runEnv) appliedGood() (*config.Config, string) {
	e.t.Helper()
	cfg := e.applied()
	good := e.read("prometheus.yml")
	e.reload.takeCalls()
	return cfg, good
}

func (e *runEnv) read(path string) string {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join(e.dest, path))
	if err != nil {
		e.t.Fatalf("read %s: %v", path, err)
	}
	return string(b)
}

func (e *runEnv) metrics() []textfile.Family {
	e.t.Helper()
	fams, err := textfiletest.ReadFile(e.textfile)
	if err != nil {
		e.t.Fatalf("textfile: %v", err)
	}
	return fams
}

// metric returns the value of a series, failing the test when it is missing.
func (e *runEnv) metric(name string, labels ...string) float64 {
	e.t.Helper()
	v, ok := e.lookup(name, labels...)
	if !ok {
		e.t.Fatalf("no series %s%v in the textfile", name, labels)
	}
	return v
}

// wantMetric requires the series name{labels} to have the value want.
func (e *runEnv) wantMetric(t *testing.T, want float64, name string, labels ...string) {
	t.Helper()
	if v := e.metric(name, labels...); v != want {
		t.Errorf("%s%v = %v, want %v", name, labels, v, want)
	}
}

// wantReloads requires n reload calls since the last take of them.
func (e *runEnv) wantReloads(t *testing.T, n int) {
	t.Helper()
	if got := e.reload.takeCalls(); got != n {
		t.Errorf("reload calls = %d, want %d", got, n)
	}
}

func (e *runEnv) lookup(name string, labels ...string) (float64, bool) {
	f, ok := textfile.Find(e.metrics(), name)
	if !ok {
		return 0, false
	}
	return f.Value(textfile.L(labels...))
}

func wantNoErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("run failed: %v", err)
	}
}

func wantFailed(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, ErrFailed) {
		t.Fatalf("run error = %v, want ErrFailed", err)
	}
}

func unix(t time.Time) float64 { return float64(t.Unix()) }
