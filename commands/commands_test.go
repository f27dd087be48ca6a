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
	"testing"
	"time"

	"github.com/butler-sre/butler/pipeline"
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
	remote := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/app.yml":
			fmt.Fprint(w, "name: {{manager}}\nhost: {{host.hostname}}\n")
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(remote.Close)
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
	fams, err := textfile.ReadFile(e.textfile)
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
	if _, err := textfile.ReadFile(other); err != nil {
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
	if _, err := textfile.ReadFile(filepath.Join(e.dir, "from-env.prom")); err != nil {
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
