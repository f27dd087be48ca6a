package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/butler-sre/butler/pipeline/config"
	"github.com/butler-sre/butler/pipeline/internal/fstest"
	"github.com/butler-sre/butler/pipeline/lkg"
	"github.com/butler-sre/butler/pipeline/state"
	"github.com/butler-sre/butler/textfile"
)

func TestRunFirstAppliesSecondChangesNothing(t *testing.T) {
	e := newRunEnv(t)
	cfg := e.parse(e.config(""))
	t1 := e.now

	res, err := e.run(cfg, nil)
	wantNoErr(t, err)
	if res.Managers[0].Outcome != "applied" {
		t.Errorf("outcome = %q, want applied", res.Managers[0].Outcome)
	}
	if got := e.read("prometheus.yml"); got != "global:\n  scrape_interval: 30s\n  external_labels:\n    dc: ams1\n" {
		t.Errorf("rendered file = %q", got)
	}
	if got := e.read("rules/a.yml"); !strings.Contains(got, "name: a") {
		t.Errorf("rules file = %q", got)
	}
	if n := e.reload.takeCalls(); n != 1 {
		t.Errorf("reload calls = %d, want 1", n)
	}
	if v := e.metric("butler_reload_status", "manager", "prom"); v != 200 {
		t.Errorf("reload status = %v", v)
	}
	if v := e.metric("butler_lkg", "manager", "prom"); v != unix(t1) {
		t.Errorf("butler_lkg = %v, want %v", v, unix(t1))
	}
	lkg, ok, err := lkg.Load(filepath.Join(e.stateDir, "lkg", "prom"))
	if err != nil || !ok || len(lkg) != 2 {
		t.Fatalf("LKG not stored: %v %v %v", lkg, ok, err)
	}
	if info, err := os.Stat(e.stateDir); err != nil || info.Mode().Perm() != 0o700 {
		t.Errorf("state dir mode: %v %v", info.Mode(), err)
	}

	res, err = e.run(cfg, nil)
	wantNoErr(t, err)
	if res.Managers[0].Outcome != "unchanged" {
		t.Errorf("second outcome = %q, want unchanged", res.Managers[0].Outcome)
	}
	if n := e.reload.takeCalls(); n != 0 {
		t.Errorf("second run reloaded %d times, want 0", n)
	}
	// Fetch runs every run; the later phases keep their values.
	if v := e.metric("butler_remote_time", "manager", "prom", "file", "prometheus.yml"); v != unix(t1.Add(time.Minute)) {
		t.Errorf("remote_time = %v", v)
	}
	if v := e.metric("butler_reload_time", "manager", "prom"); v != unix(t1) {
		t.Errorf("reload_time moved on an unchanged run: %v", v)
	}
	if v := e.metric("butler_remote_fetches_total", "manager", "prom", "file", "prometheus.yml"); v != 2 {
		t.Errorf("fetches_total = %v, want 2", v)
	}
}

func TestRunDriftIsRepaired(t *testing.T) {
	e := newRunEnv(t)
	cfg := e.applied()
	e.reload.takeCalls()
	if err := os.WriteFile(filepath.Join(e.dest, "prometheus.yml"), []byte("hand edit\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := e.run(cfg, nil)
	wantNoErr(t, err)
	if got := e.read("prometheus.yml"); !strings.Contains(got, "scrape_interval: 30s") {
		t.Errorf("hand edit not repaired: %q", got)
	}
	if n := e.reload.takeCalls(); n != 1 {
		t.Errorf("reload calls = %d, want 1", n)
	}
	if strings.Join(res.Managers[0].Changed, ",") != "prometheus.yml" {
		t.Errorf("changed = %v", res.Managers[0].Changed)
	}
	// A mode change alone is drift too.
	if err := os.Chmod(filepath.Join(e.dest, "rules/a.yml"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = e.run(cfg, nil)
	wantNoErr(t, err)
	if info, _ := os.Stat(filepath.Join(e.dest, "rules/a.yml")); info.Mode().Perm() != 0o644 {
		t.Errorf("mode not repaired: %v", info.Mode())
	}
}

func TestRunRefusedReloadRestoresLKG(t *testing.T) {
	e := newRunEnv(t)
	cfg := e.applied()
	good := e.read("prometheus.yml")
	e.reload.takeCalls()

	// A config the manager refuses.
	e.remote.set("/prometheus.yml", "global:\n  scrape_interval: bogus\n")
	e.reload.set(http.StatusInternalServerError, false)
	tRefused := e.now
	res, err := e.run(cfg, nil)
	wantFailed(t, err)
	if mr := res.Managers[0]; mr.Phase != PhaseReload || !strings.Contains(mr.Err.Error(), "500") {
		t.Errorf("result = %+v", mr)
	}
	if got := e.read("prometheus.yml"); got != good {
		t.Errorf("LKG not restored: %q", got)
	}
	if v := e.metric("butler_reload_status", "manager", "prom"); v != 500 {
		t.Errorf("reload status = %v, want 500", v)
	}
	if v := e.metric("butler_reload_time", "manager", "prom"); v != unix(tRefused) {
		t.Errorf("reload time = %v", v)
	}
	if v := e.metric("butler_lkg_restores_total", "manager", "prom"); v != 1 {
		t.Errorf("lkg_restores_total = %v", v)
	}
	if v := e.metric("butler_manager_success", "manager", "prom"); v != 0 {
		t.Errorf("manager_success = %v", v)
	}
	if v := e.metric("butler_run_success"); v != 0 {
		t.Errorf("run_success = %v", v)
	}
	if n := e.reload.takeCalls(); n != 1 {
		t.Errorf("reload calls = %d, want exactly 1 (a 500 is never retried)", n)
	}

	// No reload storm: the same content is not applied again.
	e.reload.set(http.StatusOK, false)
	_, err = e.run(cfg, nil)
	wantFailed(t, err)
	if n := e.reload.takeCalls(); n != 0 {
		t.Errorf("refused content reloaded again: %d calls", n)
	}
	if got := e.read("prometheus.yml"); got != good {
		t.Errorf("refused content written again: %q", got)
	}
	if v := e.metric("butler_reload_status", "manager", "prom"); v != 500 {
		t.Errorf("metrics forgot the refusal: %v", v)
	}

	// --force applies it anyway (and the manager now accepts it).
	_, err = e.run(cfg, func(o *Options) { o.Force = true })
	wantNoErr(t, err)
	if n := e.reload.takeCalls(); n != 1 {
		t.Errorf("--force: reload calls = %d, want 1", n)
	}
	if got := e.read("prometheus.yml"); !strings.Contains(got, "bogus") {
		t.Errorf("--force did not write: %q", got)
	}
}

func TestRunRefusedThenFixedSourceIsApplied(t *testing.T) {
	e := newRunEnv(t)
	cfg := e.applied()
	e.remote.set("/prometheus.yml", "bad: 1\n")
	e.reload.set(http.StatusBadRequest, false)
	_, err := e.run(cfg, nil)
	wantFailed(t, err)
	e.reload.takeCalls()

	e.reload.set(http.StatusOK, false)
	e.remote.set("/prometheus.yml", "fixed: 1\n")
	tFixed := e.now
	_, err = e.run(cfg, nil)
	wantNoErr(t, err)
	if got := e.read("prometheus.yml"); got != "fixed: 1\n" {
		t.Errorf("fixed source not applied: %q", got)
	}
	if v := e.metric("butler_lkg", "manager", "prom"); v != unix(tFixed) {
		t.Errorf("butler_lkg = %v, want %v", v, unix(tFixed))
	}
	if v := e.metric("butler_reload_failures_total", "manager", "prom"); v != 1 {
		t.Errorf("reload_failures_total = %v", v)
	}
	if v := e.metric("butler_reloads_total", "manager", "prom"); v != 3 {
		t.Errorf("reloads_total = %v", v)
	}
}

func TestRunRefusedWithoutLKGRestoresPreRunFiles(t *testing.T) {
	for _, lkg := range []string{"", "lkg = false"} {
		t.Run("lkg="+map[string]string{"": "true (none yet)", "lkg = false": "false"}[lkg], func(t *testing.T) {
			e := newRunEnv(t)
			cfg := e.parse(e.config(lkg))
			// Before butler: an old prometheus.yml; rules/a.yml does not exist.
			fstest.WriteFile(t, filepath.Join(e.dest, "prometheus.yml"), "old: 1\n", 0o640)
			e.reload.set(http.StatusInternalServerError, false)
			_, err := e.run(cfg, nil)
			wantFailed(t, err)
			if got := e.read("prometheus.yml"); got != "old: 1\n" {
				t.Errorf("pre-run file not put back: %q", got)
			}
			if info, _ := os.Stat(filepath.Join(e.dest, "prometheus.yml")); info.Mode().Perm() != 0o640 {
				t.Errorf("pre-run mode not put back: %v", info.Mode())
			}
			if _, err := os.Stat(filepath.Join(e.dest, "rules/a.yml")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("file created by the refused run still there: %v", err)
			}
			if v := e.metric("butler_lkg_restores_total", "manager", "prom"); v != 0 {
				t.Errorf("lkg_restores_total = %v, want 0 (there was no LKG)", v)
			}
			if _, ok := e.lookup("butler_lkg", "manager", "prom"); ok {
				t.Error("butler_lkg set though no LKG was ever stored")
			}
		})
	}
}

func TestRunReloadTimeout(t *testing.T) {
	t.Run("timeout_ok=false", func(t *testing.T) {
		e := newRunEnv(t)
		cfg := e.parse(e.config(""))
		e.reload.set(0, true)
		_, err := e.run(cfg, nil)
		wantFailed(t, err)
		if got := e.read("prometheus.yml"); !strings.Contains(got, "30s") {
			t.Errorf("files did not stay: %q", got)
		}
		if v := e.metric("butler_reload_status", "manager", "prom"); v != 0 {
			t.Errorf("reload status = %v, want 0", v)
		}
		if _, ok := e.lookup("butler_lkg", "manager", "prom"); ok {
			t.Error("LKG stored after a timed-out reload")
		}
		e.reload.takeCalls()

		// Nothing changed, but the reload is owed: it is tried again.
		e.reload.set(http.StatusOK, false)
		tRetry := e.now
		_, err = e.run(cfg, nil)
		wantNoErr(t, err)
		if n := e.reload.takeCalls(); n != 1 {
			t.Errorf("timed-out reload not retried: %d calls", n)
		}
		if v := e.metric("butler_lkg", "manager", "prom"); v != unix(tRetry) {
			t.Errorf("butler_lkg = %v", v)
		}
		// And once done, not again.
		_, err = e.run(cfg, nil)
		wantNoErr(t, err)
		if n := e.reload.takeCalls(); n != 0 {
			t.Errorf("reloaded again after success: %d", n)
		}
	})
	t.Run("timeout_ok=true", func(t *testing.T) {
		e := newRunEnv(t)
		cfg := e.parse(e.config("timeout_ok = true"))
		_, err := e.run(cfg, nil)
		wantNoErr(t, err)
		tFirst := e.now.Add(-time.Minute)

		e.remote.set("/prometheus.yml", "changed: 1\n")
		e.reload.set(0, true)
		tTimeout := e.now
		_, err = e.run(cfg, nil)
		wantNoErr(t, err)
		if got := e.read("prometheus.yml"); got != "changed: 1\n" {
			t.Errorf("files did not stay: %q", got)
		}
		if v := e.metric("butler_reload_status", "manager", "prom"); v != 200 {
			t.Errorf("reload status = %v, want the previous 200", v)
		}
		if v := e.metric("butler_reload_time", "manager", "prom"); v != unix(tTimeout) {
			t.Errorf("reload time = %v, want %v", v, unix(tTimeout))
		}
		if v := e.metric("butler_lkg", "manager", "prom"); v != unix(tFirst) {
			t.Errorf("LKG changed after a timeout: %v", v)
		}
		e.reload.takeCalls()
		e.reload.set(http.StatusOK, false)
		_, err = e.run(cfg, nil)
		wantNoErr(t, err)
		if n := e.reload.takeCalls(); n != 0 {
			t.Errorf("timeout_ok: reload retried %d times", n)
		}
	})
}

func TestRunLockHeld(t *testing.T) {
	e := newRunEnv(t)
	cfg := e.applied()
	before, _ := os.ReadFile(e.textfile)

	sd, err := state.Open(e.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	defer sd.Close()
	e.remote.set("/prometheus.yml", "changed: 1\n")
	_, err = e.run(cfg, nil)
	if !errors.Is(err, state.ErrLocked) {
		t.Fatalf("err = %v, want state.ErrLocked", err)
	}
	after, _ := os.ReadFile(e.textfile)
	if !bytes.Equal(before, after) {
		t.Error("textfile changed while the lock was held")
	}
	if got := e.read("prometheus.yml"); strings.Contains(got, "changed") {
		t.Error("files written while the lock was held")
	}
}

func TestRunCorruptStateIsMovedAside(t *testing.T) {
	e := newRunEnv(t)
	cfg := e.parse(e.config(""))
	if err := os.MkdirAll(e.stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.stateDir, "state.json"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := e.run(cfg, nil)
	wantNoErr(t, err)
	aside := filepath.Join(e.stateDir, fmt.Sprintf("state.json.corrupt-%d", e.now.Add(-time.Minute).Unix()))
	if b, err := os.ReadFile(aside); err != nil || string(b) != "{not json" {
		t.Errorf("corrupt state not moved aside: %v", err)
	}
	if !strings.Contains(e.logs.String(), "unreadable") {
		t.Errorf("corrupt state not logged: %s", e.logs.String())
	}
	if _, err := state.Read(e.stateDir); err != nil {
		t.Errorf("new state unreadable: %v", err)
	}
}

func TestRunManagersAreIndependent(t *testing.T) {
	e := newRunEnv(t)
	cfg := e.parse(e.configWithOther(e.remote.url("/missing.yml"), ""))
	res, err := e.run(cfg, nil)
	wantFailed(t, err)
	byName := map[string]ManagerResult{}
	for _, mr := range res.Managers {
		byName[mr.Name] = mr
	}
	if !byName["prom"].InStep || byName["other"].Phase != PhaseFetch {
		t.Errorf("results = %+v", res.Managers)
	}
	if v := e.metric("butler_remote_status", "manager", "other", "file", "missing.yml"); v != 404 {
		t.Errorf("remote_status = %v, want 404", v)
	}
	if v := e.metric("butler_manager_success", "manager", "prom"); v != 1 {
		t.Errorf("prom not in step: %v", v)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "etc", "other")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("failed manager's dest touched: %v", err)
	}
}

func TestRunFailedPhaseWritesNothing(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(e *runEnv) string // returns extra manager config
		phase  string
		metric string // a series that must be 0
	}{
		{"fetch 500", func(e *runEnv) string { e.remote.fail("/rules/a.yml", 500); return "" }, PhaseFetch, "butler_remote_status"},
		{"missing variable", func(e *runEnv) string {
			e.remote.set("/prometheus.yml", "x: {{nope}}\n")
			return ""
		}, PhaseRender, "butler_cfg_mustache"},
		{"invalid yaml", func(e *runEnv) string { e.remote.set("/prometheus.yml", "a: 1\na: 2\n"); return "" }, PhaseRender, "butler_cfg_render"},
		{"check refuses", func(e *runEnv) string {
			return `check = ["sh", "-c", "grep -q never prometheus.yml"]`
		}, PhaseCheck, ""},
		{"check times out", func(e *runEnv) string {
			return "check = [\"sleep\", \"10\"]\ncheck_timeout = \"200ms\""
		}, PhaseCheck, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newRunEnv(t)
			extra := tt.setup(e)
			cfg := e.parse(e.config(extra))
			res, err := e.run(cfg, nil)
			wantFailed(t, err)
			if res.Managers[0].Phase != tt.phase {
				t.Errorf("phase = %q, want %q (%v)", res.Managers[0].Phase, tt.phase, res.Managers[0].Err)
			}
			if _, err := os.Stat(e.dest); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("something was written: %v", err)
			}
			if n := e.reload.takeCalls(); n != 0 {
				t.Errorf("reloaded %d times", n)
			}
			if tt.metric != "" {
				f, _ := textfile.Find(e.metrics(), tt.metric)
				zero := false
				for _, s := range f.Series {
					zero = zero || (s.Value == 0 || (tt.metric == "butler_remote_status" && s.Value == 500))
				}
				if !zero {
					t.Errorf("%s does not show the failure: %+v", tt.metric, f.Series)
				}
			}
		})
	}
}

func TestRunCheckSeesStagedFiles(t *testing.T) {
	e := newRunEnv(t)
	cfg := e.parse(e.config(`check = ["sh", "-c", "grep -q 'scrape_interval: 30s' prometheus.yml && test -f rules/a.yml"]`))
	_, err := e.run(cfg, nil)
	wantNoErr(t, err)
}

func TestRunDryRunChangesNothing(t *testing.T) {
	e := newRunEnv(t)
	cfg := e.parse(e.config(""))
	_, err := e.run(cfg, func(o *Options) { o.DryRun = true })
	wantNoErr(t, err)
	for _, p := range []string{e.dest, e.stateDir, e.textfile} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("dry run created %s", p)
		}
	}
	out := e.stdout.String()
	if !strings.Contains(out, "+++ "+filepath.Join(e.dest, "prometheus.yml")) || !strings.Contains(out, "+  scrape_interval: 30s") {
		t.Errorf("dry-run diff:\n%s", out)
	}
	if n := e.reload.takeCalls(); n != 0 {
		t.Errorf("dry run reloaded")
	}
}

func TestRunSecretsNeverShow(t *testing.T) {
	e := newRunEnv(t)
	e.remote.auth["/prometheus.yml"] = [2]string{"alice", "hunter2-secret"}
	text := strings.Replace(e.config(""), e.remote.url("/prometheus.yml"),
		strings.Replace(e.remote.url("/prometheus.yml"), "http://", "http://alice:${PASS}@", 1), 1)
	text = strings.Replace(text, "path = \"rules/a.yml\"", "path = \"rules/a.yml\"\nheaders = { Authorization = \"Bearer ${TOKEN}\" }", 1)
	cfg, err := config.Parse([]byte(text), "butler.toml", e.dir, configEnv(map[string]string{"PASS": "hunter2-secret", "TOKEN": "tok-abcdef-123"}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.run(cfg, nil)
	wantNoErr(t, err)
	if hs := e.remote.seen["/rules/a.yml"]; len(hs) == 0 || hs[0].Get("Authorization") != "Bearer tok-abcdef-123" {
		t.Errorf("header not sent: %v", hs)
	}
	// A failing fetch and a dry run put the source in errors and output.
	e.remote.fail("/prometheus.yml", 503)
	_, _ = e.run(cfg, nil)
	e.remote.fail("/prometheus.yml", 0)
	e.remote.set("/prometheus.yml", "changed: 1\n")
	_, _ = e.run(cfg, func(o *Options) { o.DryRun = true })

	state, _ := os.ReadFile(filepath.Join(e.stateDir, "state.json"))
	prom, _ := os.ReadFile(e.textfile)
	for name, text := range map[string]string{"logs": e.logs.String(), "state": string(state), "textfile": string(prom), "dry-run": e.stdout.String()} {
		for _, secret := range []string{"hunter2-secret", "tok-abcdef-123"} {
			if strings.Contains(text, secret) {
				t.Errorf("%s contains the secret %q:\n%s", name, secret, text)
			}
		}
	}
	if !strings.Contains(e.logs.String(), "prometheus.yml") {
		t.Errorf("logs do not name the file: %s", e.logs.String())
	}
}

func TestRunManagerFilterAndPrune(t *testing.T) {
	e := newRunEnv(t)
	cfg := e.parse(e.configWithOther(e.remote.url("/rules/a.yml"), `path = "o.yml"`))
	_, err := e.run(cfg, func(o *Options) { o.Managers = []string{"other"} })
	wantNoErr(t, err)
	if _, err := os.Stat(e.dest); !errors.Is(err, os.ErrNotExist) {
		t.Error("--manager other also ran prom")
	}
	if _, err := e.run(cfg, func(o *Options) { o.Managers = []string{"nope"} }); !errors.Is(err, config.ErrInvalid) {
		t.Errorf("unknown --manager: %v", err)
	}
	_, err = e.run(cfg, nil)
	wantNoErr(t, err)
	if _, ok := e.lookup("butler_manager_success", "manager", "other"); !ok {
		t.Fatal("other has no series")
	}
	// Drop "other" from the configuration: its series disappear.
	_, err = e.run(e.parse(e.config("")), nil)
	wantNoErr(t, err)
	if _, ok := e.lookup("butler_manager_success", "manager", "other"); ok {
		t.Error("series of a removed manager still written")
	}
}

func TestRunRefusedThenSourceRevertedIsHealthy(t *testing.T) {
	e := newRunEnv(t)
	cfg := e.parse(e.config("") + "\n[health]\nstartup_grace = \"0s\"\n")
	_, err := e.run(cfg, nil)
	wantNoErr(t, err)
	good, _ := e.remote.files["/prometheus.yml"]
	e.remote.set("/prometheus.yml", "refused: 1\n")
	e.reload.set(http.StatusInternalServerError, false)
	_, err = e.run(cfg, nil)
	wantFailed(t, err)
	if v := e.metric("butler_health", "manager", "prom"); v != 2 {
		t.Fatalf("health after refusal = %v, want 2", v)
	}
	// The source goes back to what the LKG holds: nothing to write, and in step.
	e.remote.set("/prometheus.yml", good)
	e.reload.takeCalls()
	_, err = e.run(cfg, nil)
	wantNoErr(t, err)
	if n := e.reload.takeCalls(); n != 0 {
		t.Errorf("reloaded %d times though the disk already holds the source", n)
	}
	if v := e.metric("butler_health", "manager", "prom"); v != 0 {
		t.Errorf("health after the revert = %v, want 0 (OK)", v)
	}
}

func TestRunReloadExpect(t *testing.T) {
	e := newRunEnv(t)
	// The endpoint answers 500 here; with expect = [500] that counts as a good reload.
	e.reload.set(http.StatusInternalServerError, false)
	cfg := e.parse(strings.Replace(e.config(""), "retries = 0", "retries = 0\nexpect = [204, 500]", 1))
	_, err := e.run(cfg, nil)
	wantNoErr(t, err)
	if v := e.metric("butler_reload_status", "manager", "prom"); v != 500 {
		t.Errorf("reload status = %v", v)
	}
	if _, ok := e.lookup("butler_lkg", "manager", "prom"); !ok {
		t.Error("an expected status did not store the LKG")
	}
}
