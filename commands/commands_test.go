package commands

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/butler-sre/butler/internal/nettest"
	"github.com/butler-sre/butler/internal/textfiletest"
	"github.com/butler-sre/butler/pipeline"
	"github.com/butler-sre/butler/pipeline/health"
	"github.com/butler-sre/butler/pipeline/minisigntest"
	"github.com/butler-sre/butler/pipeline/state"
	"github.com/butler-sre/butler/textfile"
)

// cmdEnv is a configuration in a temp dir with a remote and a reload endpoint.
type cmdEnv struct {
	t        *testing.T
	dir      string
	config   string
	textfile string
	stateDir string
	dest     string
	reloads  int
	reloadOK bool
}

func newCmdEnv(t *testing.T) *cmdEnv {
	e := &cmdEnv{t: t, dir: t.TempDir(), reloadOK: true}
	remote := nettest.NewFiles(t, map[string]string{"/app.yml": "name: {{manager}}\nhost: {{host.hostname}}\n"})
	reload := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.reloads++
		if !e.reloadOK {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	t.Cleanup(reload.Close)
	e.textfile = filepath.Join(e.dir, "butler.prom")
	e.stateDir = filepath.Join(e.dir, "state")
	e.dest = filepath.Join(e.dir, "etc", "app")
	e.config = filepath.Join(e.dir, "butler.toml")
	e.write(fmt.Sprintf(`
[butler]
state_dir = %q
textfile = %q

[managers.app]
dest = %q
[[managers.app.files]]
source = %q
[managers.app.reload]
url = %q
retries = 0
`, e.stateDir, e.textfile, e.dest, remote.URL+"/app.yml", reload.URL))
	return e
}

func (e *cmdEnv) write(text string) {
	e.t.Helper()
	if err := os.WriteFile(e.config, []byte(text), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// run runs butler in-process on the env's configuration, with TOKEN set.
func (e *cmdEnv) run(args ...string) (int, string, string) {
	e.t.Helper()
	return runButlerWith(e.t, func(d *Deps) {
		d.LookupEnv = func(k string) (string, bool) { return map[string]string{"TOKEN": "t0ps3cret"}[k], k == "TOKEN" }
	}, append([]string{"--config", e.config}, args...)...)
}

// runButler runs butler in-process with args (program name excluded) and
// returns its exit code, stdout and stderr.
func runButler(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return runButlerWith(t, nil, args...)
}

// withRealClock gives runButlerWith the real clock, for what compares times
// with those of the outside world (signatures, kept configurations).
func withRealClock(d *Deps) { d.Now = time.Now }

// runButlerWith is runButler with the Deps changed by mod first. Unless mod
// changes them, no environment variable is set and the clock stands still.
func runButlerWith(t *testing.T, mod func(d *Deps), args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	d := &Deps{
		Stdout:    &stdout,
		Stderr:    &stderr,
		LookupEnv: func(string) (string, bool) { return "", false },
		Now:       func() time.Time { return time.Unix(1_763_780_000, 0) },
		Hostname:  "host1",
		Build:     pipeline.BuildInfo{Version: "v9.9.9", Revision: "cafe", GoVersion: "go1.26"},
	}
	if mod != nil {
		mod(d)
	}
	code := Main(context.Background(), append([]string{"butler"}, args...), d)
	return code, stdout.String(), stderr.String()
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(e *cmdEnv)
		args    []string
		code    int
		stderr  string
	}{
		{"sync ok", nil, []string{"sync"}, 0, "sync finished"},
		{"sync reload refused", func(e *cmdEnv) { e.reloadOK = false }, []string{"sync"}, 1, "refused with status 500"},
		{"sync config error", func(e *cmdEnv) {
			e.write(fmt.Sprintf("[butler]\nstate_dir = %q\ntextfile = %q\n[managers.x]\ndst = 1\n", e.stateDir, e.textfile))
		}, []string{"sync"}, 2, `unknown key "managers.x.dst"`},
		{"sync missing config", func(e *cmdEnv) { os.Remove(e.config) }, []string{"sync"}, 2, "no such file"},
		{"sync unknown flag", nil, []string{"sync", "--frobnicate"}, 2, "frobnicate"},
		{"sync stray argument", nil, []string{"sync", "now"}, 2, "takes no arguments"},
		{"sync negative splay", nil, []string{"sync", "--splay", "-5s"}, 2, "must not be negative"},
		{"sync unknown manager", nil, []string{"sync", "--manager", "nope"}, 2, "no such manager"},
		{"unknown command", nil, []string{"frob"}, 2, "frob"},
		{"no command", nil, nil, 2, "no command"},
		{"bad log level", nil, []string{"--log-level", "loud", "sync"}, 2, "--log-level"},
		{"check ok", nil, []string{"check"}, 0, ""},
		{"check bad", func(e *cmdEnv) { e.write("[butler]\ntimeout = \"soon\"\n") }, []string{"check"}, 2, "not a duration"},
		{"render ok", nil, []string{"render", "--manager", "app"}, 0, ""},
		{"render without manager", nil, []string{"render"}, 2, "manager"},
		{"render unknown file", nil, []string{"render", "--manager", "app", "--file", "x.yml"}, 2, `no file "x.yml"`},
		{"version", nil, []string{"version"}, 0, ""},
		{"check stray argument", nil, []string{"check", "now"}, 2, "check takes no arguments"},
		{"render stray argument", nil, []string{"render", "--manager", "app", "now"}, 2, "render takes no arguments"},
		{"version stray argument", nil, []string{"version", "now"}, 2, "version takes no arguments"},
		{"man stray argument", nil, []string{"man", "now"}, 2, "man takes no arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newCmdEnv(t)
			if tt.prepare != nil {
				tt.prepare(e)
			}
			code, _, stderr := e.run(tt.args...)
			if code != tt.code {
				t.Errorf("exit code = %d, want %d; stderr:\n%s", code, tt.code, stderr)
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stderr does not contain %q:\n%s", tt.stderr, stderr)
			}
		})
	}
}

func TestSyncLockedExits3(t *testing.T) {
	e := newCmdEnv(t)
	if code, _, stderr := e.run("sync"); code != 0 {
		t.Fatalf("first sync: %d %s", code, stderr)
	}
	before, _ := os.ReadFile(e.textfile)
	sd, err := state.Open(e.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	defer sd.Close()
	code, _, stderr := e.run("sync")
	if code != 3 || !strings.Contains(stderr, "lock") {
		t.Errorf("exit %d, stderr %s", code, stderr)
	}
	after, _ := os.ReadFile(e.textfile)
	if !bytes.Equal(before, after) {
		t.Error("textfile touched while locked")
	}
}

func TestSyncConfigErrorWritesMetrics(t *testing.T) {
	e := newCmdEnv(t)
	if code, _, _ := e.run("sync"); code != 0 {
		t.Fatal("first sync failed")
	}
	// A configuration that parses but breaks a rule: its textfile is known.
	text, _ := os.ReadFile(e.config)
	e.write(strings.Replace(string(text), "retries = 0", "retries = 0\nexpect = [999]", 1))
	code, _, _ := e.run("sync")
	if code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	fams, err := textfiletest.ReadFile(e.textfile)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := textfile.Find(fams, "butler_run_success")
	if v, ok := f.Value(nil); !ok || v != 0 {
		t.Errorf("butler_run_success = %v %v, want 0", v, ok)
	}
	// The manager series of the last good run are still there.
	f, _ = textfile.Find(fams, "butler_reload_status")
	if v, ok := f.Value(textfile.L("manager", "app")); !ok || v != 200 {
		t.Errorf("manager series lost: %v %v", v, ok)
	}

	// --textfile names the file even when the configuration cannot be read at all.
	e.write("[[[")
	other := filepath.Join(e.dir, "other.prom")
	code, _, _ = e.run("--textfile", other, "--state-dir", e.stateDir, "sync")
	if code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	if _, err := textfiletest.ReadFile(other); err != nil {
		t.Errorf("no metrics for an unreadable configuration: %v", err)
	}
}

func TestRenderPrintsFiles(t *testing.T) {
	e := newCmdEnv(t)
	code, stdout, stderr := e.run("render", "--manager", "app")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if want := "==> app.yml <==\nname: app\nhost: host1\n"; stdout != want {
		t.Errorf("render output = %q, want %q", stdout, want)
	}
	code, stdout, _ = e.run("render", "--manager", "app", "--file", "app.yml")
	if code != 0 || stdout != "name: app\nhost: host1\n" {
		t.Errorf("render --file = %d %q", code, stdout)
	}
	if _, err := os.Stat(e.dest); !os.IsNotExist(err) {
		t.Error("render wrote files")
	}
	if _, err := os.Stat(e.stateDir); !os.IsNotExist(err) {
		t.Error("render created the state directory")
	}
}

func TestCheckAndVersionOutput(t *testing.T) {
	e := newCmdEnv(t)
	_, stdout, _ := e.run("check")
	if !strings.Contains(stdout, "configuration OK: 1 managers, 1 files") {
		t.Errorf("check output = %q", stdout)
	}
	_, stdout, _ = e.run("version")
	if stdout != "butler v9.9.9 (revision cafe, go1.26)\n" {
		t.Errorf("version output = %q", stdout)
	}
}

func TestSyncDryRunJSONLogs(t *testing.T) {
	e := newCmdEnv(t)
	code, stdout, stderr := e.run("--log-format", "json", "sync", "--dry-run")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "+name: app") {
		t.Errorf("dry-run diff = %q", stdout)
	}
	if !strings.HasPrefix(strings.TrimSpace(stderr), "{") || !strings.Contains(stderr, `"msg":"dry run finished"`) {
		t.Errorf("logs not JSON: %s", stderr)
	}
	if e.reloads != 0 {
		t.Error("dry run reloaded")
	}
	if _, err := os.Stat(e.textfile); !os.IsNotExist(err) {
		t.Error("dry run wrote the textfile")
	}
}

func TestConfigFromEnvironment(t *testing.T) {
	e := newCmdEnv(t)
	t.Setenv("BUTLER_CONFIG", e.config)
	t.Setenv("BUTLER_TEXTFILE", filepath.Join(e.dir, "from-env.prom"))
	var stdout, stderr bytes.Buffer
	d := &Deps{Stdout: &stdout, Stderr: &stderr, LookupEnv: func(string) (string, bool) { return "", false },
		Now: time.Now, Build: pipeline.BuildInfo{Version: "test"}}
	if code := Main(context.Background(), []string{"butler", "sync"}, d); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if _, err := textfiletest.ReadFile(filepath.Join(e.dir, "from-env.prom")); err != nil {
		t.Errorf("BUTLER_TEXTFILE not used: %v", err)
	}
}

// TestStateDirOverlapsDestTouchesNothing: --state-dir (or BUTLER_STATE_DIR)
// pointing into a manager's dest is a configuration error found before
// anything is written: no lock, no state, no chmod, the dest's files intact.
func TestStateDirOverlapsDestTouchesNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  bool
	}{{"flag", false}, {"environment", true}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newCmdEnv(t)
			if err := os.MkdirAll(e.dest, 0o755); err != nil {
				t.Fatal(err)
			}
			keep := filepath.Join(e.dest, "operator.yml")
			if err := os.WriteFile(keep, []byte("mine: 1\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			args := []string{"--state-dir", e.dest, "sync"}
			if tc.env {
				t.Setenv("BUTLER_STATE_DIR", e.dest)
				args = []string{"sync"}
			}
			code, _, stderr := e.run(args...)
			if code != ExitConfig || !strings.Contains(stderr, "overlaps the state directory") {
				t.Fatalf("exit %d, want %d with the overlap named:\n%s", code, ExitConfig, stderr)
			}
			entries, _ := os.ReadDir(e.dest)
			if len(entries) != 1 || entries[0].Name() != "operator.yml" {
				t.Errorf("dest holds %v, want only operator.yml", entries)
			}
			if fi, err := os.Stat(e.dest); err != nil || fi.Mode().Perm() != 0o755 {
				t.Errorf("dest mode changed: %v %v", fi.Mode(), err)
			}
		})
	}
}

// TestTwoConfigurationsOneStateDir: a second configuration pointed at the
// state directory of the first is refused with exit 2, naming both, and the
// first one's state is kept whole.
func TestTwoConfigurationsOneStateDir(t *testing.T) {
	e := newCmdEnv(t)
	if code, _, stderr := e.run("sync"); code != 0 {
		t.Fatalf("first sync: %d\n%s", code, stderr)
	}
	before, err := os.ReadFile(filepath.Join(e.stateDir, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	text, _ := os.ReadFile(e.config)
	other := filepath.Join(e.dir, "other.toml")
	otherDest := filepath.Join(e.dir, "etc", "other")
	if err := os.WriteFile(other, []byte(strings.ReplaceAll(strings.Replace(string(text), e.dest, otherDest, 1), "managers.app", "managers.other")), 0o600); err != nil {
		t.Fatal(err)
	}
	e.config = other
	code, _, stderr := e.run("sync")
	if code != ExitConfig || !strings.Contains(stderr, "keeps the state of") || !strings.Contains(stderr, "other.toml") {
		t.Fatalf("exit %d, want %d naming both configurations:\n%s", code, ExitConfig, stderr)
	}
	after, _ := os.ReadFile(filepath.Join(e.stateDir, "state.json"))
	if string(after) != string(before) {
		t.Error("the first configuration's state was changed")
	}
}

// TestRemoteConfig serves the configuration over HTTP, then breaks it, then stops
// serving it: sync keeps running with the copy kept from the last good fetch,
// and says so in its log, its metrics and its health.
func TestRemoteConfig(t *testing.T) {
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	prom := filepath.Join(dir, "butler.prom")
	var mu sync.Mutex
	config := ""
	down := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/butler.toml":
			mu.Lock()
			defer mu.Unlock()
			if down {
				// The configuration store is down; the managers' files are elsewhere.
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			fmt.Fprint(w, config)
		case "/app.yml":
			fmt.Fprint(w, "app: 1\n")
		}
	}))
	defer srv.Close()
	good := fmt.Sprintf(`
[butler]
textfile = %q
[managers.app]
dest = %q
[[managers.app.files]]
source = "%s/app.yml"
`, prom, filepath.Join(dir, "app"), srv.URL)
	setConfig := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		config = s
	}
	url := srv.URL + "/butler.toml"
	sync := func() (int, string) {
		code, _, stderr := runButlerWith(t, withRealClock, "--config", url, "--state-dir", stateDir, "sync")
		return code, stderr
	}
	fetchMetric := func() float64 {
		t.Helper()
		fams, err := textfiletest.ReadFile(prom)
		if err != nil {
			t.Fatal(err)
		}
		f, _ := textfile.Find(fams, "butler_config_fetch_success")
		v, ok := f.Value(nil)
		if !ok {
			t.Fatal("no butler_config_fetch_success")
		}
		return v
	}

	// Unreachable before any good fetch: nothing to fall back on.
	srvURL := url
	url = "http://127.0.0.1:1/butler.toml"
	if code, stderr := sync(); code != 2 || !strings.Contains(stderr, "no configuration was kept") {
		t.Fatalf("no kept copy: exit %d\n%s", code, stderr)
	}
	url = srvURL

	setConfig(good)
	if code, stderr := sync(); code != 0 {
		t.Fatalf("served: exit %d\n%s", code, stderr)
	}
	if kept, err := os.ReadFile(filepath.Join(stateDir, "config.toml")); err != nil || string(kept) != good {
		t.Fatalf("configuration not kept: %v", err)
	}
	if v := fetchMetric(); v != 1 {
		t.Errorf("butler_config_fetch_success = %v, want 1", v)
	}

	for _, tc := range []struct {
		name   string
		break_ func()
	}{
		{"broken", func() { setConfig("[managers.app\n") }},
		{"invalid", func() { setConfig(good + "\n[butler]\ncolour = 1\n") }},
		{"unreachable", func() { mu.Lock(); down = true; mu.Unlock() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.break_()
			code, stderr := sync()
			if code != 0 {
				t.Fatalf("exit %d, want 0 (the kept copy is valid)\n%s", code, stderr)
			}
			if !strings.Contains(stderr, "running with the configuration kept from an earlier run") {
				t.Errorf("the log does not say the kept copy is used:\n%s", stderr)
			}
			if v := fetchMetric(); v != 0 {
				t.Errorf("butler_config_fetch_success = %v, want 0", v)
			}
			if kept, _ := os.ReadFile(filepath.Join(stateDir, "config.toml")); string(kept) != good {
				t.Error("the kept copy was replaced by a bad one")
			}
		})
	}
	// Still inside startup_grace, where UNKNOWN would hide it: judge as if later.
	st, err := pipeline.ReadStatus(stateDir, time.Now().Add(6*time.Minute), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Managers) != 1 || st.Managers[0].Health != health.Warning || !strings.Contains(st.Managers[0].Reason, "kept") {
		t.Errorf("status = %+v, want WARNING about the kept configuration", st.Managers)
	}
}

// TestRemoteConfigLockedChangesNothing: a sync that finds the lock held exits
// 3 and leaves the state directory as it was, the kept configuration too.
func TestRemoteConfigLockedChangesNothing(t *testing.T) {
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "[managers.app]\ndest = %q\n[[managers.app.files]]\nsource = \"http://%s/app.yml\"\n", filepath.Join(dir, "app"), r.Host)
	}))
	defer srv.Close()
	sd, err := state.Open(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	defer sd.Close()
	code, _, stderr := runButlerWith(t, withRealClock, "--config", srv.URL+"/butler.toml", "--state-dir", stateDir, "--textfile", "", "sync")
	if code != ExitLocked {
		t.Fatalf("exit %d, want %d\n%s", code, ExitLocked, stderr)
	}
	if _, err := os.Stat(filepath.Join(stateDir, "config.toml")); !os.IsNotExist(err) {
		t.Errorf("config.toml written while the lock was held: %v", err)
	}
}

// TestRemoteConfigSigned: with --config-key, a remote configuration must be
// signed by that key (the real minisign tool signs it here); an altered,
// unsigned or replayed one is refused, the kept copy runs, and
// butler_config_fetch_success says 0.
func TestRemoteConfigSigned(t *testing.T) {
	tool := minisigntest.Tool(t)
	key := minisigntest.NewPair(t, tool)
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	prom := filepath.Join(dir, "butler.prom")
	srv := nettest.NewFiles(t, map[string]string{"/app.yml": "app: 1\n"})
	text := func(n int) string {
		return fmt.Sprintf("[butler]\ntextfile = %q\n[managers.app]\ndest = %q\n# version %d\n[[managers.app.files]]\nsource = \"%s/app.yml\"\n",
			prom, filepath.Join(dir, "app"), n, srv.URL)
	}
	publish := func(body string, at time.Time, sign bool) {
		srv.Set("/butler.toml", body)
		srv.Remove("/butler.toml.minisig")
		if sign {
			srv.Set("/butler.toml.minisig", string(minisigntest.Sign(t, tool, key, []byte(body), "-t", fmt.Sprintf("timestamp:%d", at.Unix()))))
		}
	}
	sync := func() (int, string, float64) {
		t.Helper()
		code, _, stderr := runButlerWith(t, withRealClock, "--config", srv.URL+"/butler.toml", "--config-key", key.Pub, "--state-dir", stateDir, "sync")
		fams, err := textfiletest.ReadFile(prom)
		if err != nil {
			t.Fatal(err)
		}
		f, _ := textfile.Find(fams, "butler_config_fetch_success")
		v, _ := f.Value(nil)
		return code, stderr, v
	}
	t0 := time.Now().Add(-time.Hour)
	publish(text(1), t0, true)
	if code, stderr, v := sync(); code != 0 || v != 1 {
		t.Fatalf("signed: exit %d, butler_config_fetch_success %v\n%s", code, v, stderr)
	}
	for _, tc := range []struct {
		name, why string
		serve     func()
	}{
		{"altered", "signature", func() {
			publish(text(1), t0, true)
			srv.Set("/butler.toml", text(1)+"# changed\n")
		}},
		{"unsigned", "signature", func() { publish(text(2), t0.Add(time.Minute), false) }},
		{"replayed", "replay", func() { publish(text(0), t0.Add(-time.Hour), true) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.serve()
			code, stderr, v := sync()
			if code != 0 || v != 0 || !strings.Contains(stderr, "running with the configuration kept") || !strings.Contains(stderr, tc.why) {
				t.Errorf("exit %d, butler_config_fetch_success %v; want 0, 0 and the kept copy used because of %q:\n%s", code, v, tc.why, stderr)
			}
			if kept, _ := os.ReadFile(filepath.Join(stateDir, "config.toml")); string(kept) != text(1) {
				t.Error("the kept copy was replaced")
			}
		})
	}
	publish(text(3), t0.Add(time.Hour), true)
	if code, stderr, v := sync(); code != 0 || v != 1 {
		t.Fatalf("newer signed: exit %d, butler_config_fetch_success %v\n%s", code, v, stderr)
	}
}
