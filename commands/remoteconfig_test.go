package commands

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/butler-sre/butler/pipeline"
	"github.com/butler-sre/butler/pipeline/health"
	"github.com/butler-sre/butler/pipeline/minisigntest"
	"github.com/butler-sre/butler/pipeline/state"
	"github.com/butler-sre/butler/textfile"
)

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
		var stdout, stderr strings.Builder
		d := &Deps{Stdout: &stdout, Stderr: &stderr, LookupEnv: func(string) (string, bool) { return "", false },
			Now: time.Now, Build: pipeline.BuildInfo{Version: "test"}}
		code := Main(t.Context(), []string{"butler", "--config", url, "--state-dir", stateDir, "sync"}, d)
		return code, stderr.String()
	}
	fetchMetric := func() float64 {
		t.Helper()
		fams, err := textfile.ReadFile(prom)
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
	var stdout, stderr strings.Builder
	d := &Deps{Stdout: &stdout, Stderr: &stderr, LookupEnv: func(string) (string, bool) { return "", false },
		Now: time.Now, Build: pipeline.BuildInfo{Version: "test"}}
	code := Main(t.Context(), []string{"butler", "--config", srv.URL + "/butler.toml", "--state-dir", stateDir, "--textfile", "", "sync"}, d)
	if code != ExitLocked {
		t.Fatalf("exit %d, want %d\n%s", code, ExitLocked, stderr.String())
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
	var mu sync.Mutex
	files := map[string]string{"/app.yml": "app: 1\n"}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		body, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, body)
	}))
	defer srv.Close()
	text := func(n int) string {
		return fmt.Sprintf("[butler]\ntextfile = %q\n[managers.app]\ndest = %q\n# version %d\n[[managers.app.files]]\nsource = \"%s/app.yml\"\n",
			prom, filepath.Join(dir, "app"), n, srv.URL)
	}
	publish := func(body string, at time.Time, sign bool) {
		mu.Lock()
		defer mu.Unlock()
		files["/butler.toml"] = body
		delete(files, "/butler.toml.minisig")
		if sign {
			files["/butler.toml.minisig"] = string(minisigntest.Sign(t, tool, key, []byte(body), "-t", fmt.Sprintf("timestamp:%d", at.Unix())))
		}
	}
	sync := func() (int, string, float64) {
		t.Helper()
		var stdout, stderr strings.Builder
		d := &Deps{Stdout: &stdout, Stderr: &stderr, LookupEnv: func(string) (string, bool) { return "", false },
			Now: time.Now, Build: pipeline.BuildInfo{Version: "test"}}
		code := Main(t.Context(), []string{"butler", "--config", srv.URL + "/butler.toml", "--config-key", key.Pub, "--state-dir", stateDir, "sync"}, d)
		fams, err := textfile.ReadFile(prom)
		if err != nil {
			t.Fatal(err)
		}
		f, _ := textfile.Find(fams, "butler_config_fetch_success")
		v, _ := f.Value(nil)
		return code, stderr.String(), v
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
			mu.Lock()
			files["/butler.toml"] += "# changed\n"
			mu.Unlock()
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
