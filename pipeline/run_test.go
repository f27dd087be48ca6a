package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/butler-sre/butler/internal/envtest"
	"github.com/butler-sre/butler/internal/fstest"
	"github.com/butler-sre/butler/pipeline/config"
	"github.com/butler-sre/butler/pipeline/lkg"
	"github.com/butler-sre/butler/pipeline/minisigntest"
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
	e.wantReloads(t, 1)
	e.wantMetric(t, 200, "butler_reload_status", "manager", "prom")
	e.wantMetric(t, unix(t1), "butler_lkg", "manager", "prom")
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
	// the second run does not reload
	e.wantReloads(t, 0)
	// Fetch runs every run; the later phases keep their values.
	e.wantMetric(t, unix(t1.Add(time.Minute)), "butler_remote_time", "manager", "prom", "file", "prometheus.yml")
	// reload_time stays on an unchanged run
	e.wantMetric(t, unix(t1), "butler_reload_time", "manager", "prom")
	e.wantMetric(t, 2, "butler_remote_fetches_total", "manager", "prom", "file", "prometheus.yml")
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
	e.wantReloads(t, 1)
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

// TestRunStateNotSaved: a run that did everything but save the state
// failed, and its textfile, written while the state was being saved, says
// so.
func TestRunStateNotSaved(t *testing.T) {
	e := newRunEnv(t)
	cfg := e.applied()
	e.wantMetric(t, 1, "butler_run_success")
	e.reload.takeCalls()

	e.remote.Set("/prometheus.yml", "global:\n  scrape_interval: 30s\n")
	statePath := filepath.Join(e.stateDir, state.FileName)
	e.reload.mu.Lock()
	e.reload.onCall = func() {
		// A directory where state.json was: the rename that saves it fails.
		if err := os.Remove(statePath); err != nil {
			t.Error(err)
		}
		if err := os.Mkdir(statePath, 0o700); err != nil {
			t.Error(err)
		}
	}
	e.reload.mu.Unlock()
	res, err := e.run(cfg, nil)
	if err == nil || !strings.Contains(err.Error(), "state file") {
		t.Fatalf("Run = %v, want the state file's error", err)
	}
	if mr := res.Managers[0]; !mr.InStep {
		t.Errorf("the manager is not in step: %+v", mr)
	}
	e.wantReloads(t, 1)
	e.wantMetric(t, 0, "butler_run_success")
	e.wantMetric(t, 1, "butler_manager_success", "manager", "prom")
}

func TestRunRefusedReloadRestoresLKG(t *testing.T) {
	e := newRunEnv(t)
	cfg, good := e.appliedGood()

	// A config the manager refuses.
	e.remote.Set("/prometheus.yml", "global:\n  scrape_interval: bogus\n")
	e.reload.set(http.StatusInternalServerError, false)
	tRefused := e.now
	res, err := e.run(cfg, nil)
	wantFailedIn(t, res, err, PhaseReload, "500")
	if got := e.read("prometheus.yml"); got != good {
		t.Errorf("LKG not restored: %q", got)
	}
	e.wantMetric(t, 500, "butler_reload_status", "manager", "prom")
	e.wantMetric(t, unix(tRefused), "butler_reload_time", "manager", "prom")
	e.wantMetric(t, 1, "butler_lkg_restores_total", "manager", "prom")
	e.wantMetric(t, 0, "butler_manager_success", "manager", "prom")
	e.wantMetric(t, 0, "butler_run_success")
	// exactly one: a 500 is never retried
	e.wantReloads(t, 1)

	// No reload storm: the same content is not applied again.
	e.reload.set(http.StatusOK, false)
	_, err = e.run(cfg, nil)
	wantFailed(t, err)
	// refused content is not reloaded again
	e.wantReloads(t, 0)
	if got := e.read("prometheus.yml"); got != good {
		t.Errorf("refused content written again: %q", got)
	}
	// the metrics remember the refusal
	e.wantMetric(t, 500, "butler_reload_status", "manager", "prom")

	// --force applies it anyway (and the manager now accepts it).
	_, err = e.run(cfg, func(o *Options) { o.Force = true })
	wantNoErr(t, err)
	// --force reloads
	e.wantReloads(t, 1)
	if got := e.read("prometheus.yml"); !strings.Contains(got, "bogus") {
		t.Errorf("--force did not write: %q", got)
	}
}

func TestRunRefusedThenFixedSourceIsApplied(t *testing.T) {
	e := newRunEnv(t)
	cfg := e.applied()
	e.remote.Set("/prometheus.yml", "bad: 1\n")
	e.reload.set(http.StatusBadRequest, false)
	_, err := e.run(cfg, nil)
	wantFailed(t, err)
	e.reload.takeCalls()

	e.reload.set(http.StatusOK, false)
	e.remote.Set("/prometheus.yml", "fixed: 1\n")
	tFixed := e.now
	_, err = e.run(cfg, nil)
	wantNoErr(t, err)
	if got := e.read("prometheus.yml"); got != "fixed: 1\n" {
		t.Errorf("fixed source not applied: %q", got)
	}
	e.wantMetric(t, unix(tFixed), "butler_lkg", "manager", "prom")
	e.wantMetric(t, 1, "butler_reload_failures_total", "manager", "prom")
	e.wantMetric(t, 3, "butler_reloads_total", "manager", "prom")
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
			// there was no LKG
			e.wantMetric(t, 0, "butler_lkg_restores_total", "manager", "prom")
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
		e.wantMetric(t, 0, "butler_reload_status", "manager", "prom")
		if _, ok := e.lookup("butler_lkg", "manager", "prom"); ok {
			t.Error("LKG stored after a timed-out reload")
		}
		e.reload.takeCalls()

		// Nothing changed, but the reload is owed: it is tried again.
		e.reload.set(http.StatusOK, false)
		tRetry := e.now
		_, err = e.run(cfg, nil)
		wantNoErr(t, err)
		// a timed-out reload is retried
		e.wantReloads(t, 1)
		e.wantMetric(t, unix(tRetry), "butler_lkg", "manager", "prom")
		// And once done, not again.
		_, err = e.run(cfg, nil)
		wantNoErr(t, err)
		// no reload again after success
		e.wantReloads(t, 0)
	})
	t.Run("timeout_ok=true", func(t *testing.T) {
		e := newRunEnv(t)
		cfg := e.parse(e.config("timeout_ok = true"))
		_, err := e.run(cfg, nil)
		wantNoErr(t, err)
		tFirst := e.now.Add(-time.Minute)

		e.remote.Set("/prometheus.yml", "changed: 1\n")
		e.reload.set(0, true)
		tTimeout := e.now
		_, err = e.run(cfg, nil)
		wantNoErr(t, err)
		if got := e.read("prometheus.yml"); got != "changed: 1\n" {
			t.Errorf("files did not stay: %q", got)
		}
		// the previous status
		e.wantMetric(t, 200, "butler_reload_status", "manager", "prom")
		e.wantMetric(t, unix(tTimeout), "butler_reload_time", "manager", "prom")
		// the LKG stays after a timeout
		e.wantMetric(t, unix(tFirst), "butler_lkg", "manager", "prom")
		e.reload.takeCalls()
		e.reload.set(http.StatusOK, false)
		_, err = e.run(cfg, nil)
		wantNoErr(t, err)
		// timeout_ok: the reload is not retried
		e.wantReloads(t, 0)
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
	e.remote.Set("/prometheus.yml", "changed: 1\n")
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
	e.wantMetric(t, 404, "butler_remote_status", "manager", "other", "file", "missing.yml")
	// prom in step
	e.wantMetric(t, 1, "butler_manager_success", "manager", "prom")
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
			e.remote.Set("/prometheus.yml", "x: {{nope}}\n")
			return ""
		}, PhaseRender, "butler_cfg_mustache"},
		{"invalid yaml", func(e *runEnv) string { e.remote.Set("/prometheus.yml", "a: 1\na: 2\n"); return "" }, PhaseRender, "butler_cfg_render"},
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
			// no reload
			e.wantReloads(t, 0)
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
	// a dry run does not reload
	e.wantReloads(t, 0)
}

func TestRunSecretsNeverShow(t *testing.T) {
	e := newRunEnv(t)
	e.remote.auth["/prometheus.yml"] = [2]string{"alice", "hunter2-secret"}
	text := strings.Replace(e.config(""), e.remote.url("/prometheus.yml"),
		strings.Replace(e.remote.url("/prometheus.yml"), "http://", "http://alice:${PASS}@", 1), 1)
	text = strings.Replace(text, "path = \"rules/a.yml\"", "path = \"rules/a.yml\"\nheaders = { Authorization = \"Bearer ${TOKEN}\" }", 1)
	cfg, err := config.Parse([]byte(text), "butler.toml", e.dir, envtest.Lookup(map[string]string{"PASS": "hunter2-secret", "TOKEN": "tok-abcdef-123"}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.run(cfg, nil)
	wantNoErr(t, err)
	if hs := e.remote.headers("/rules/a.yml"); len(hs) == 0 || hs[0].Get("Authorization") != "Bearer tok-abcdef-123" {
		t.Errorf("header not sent: %v", hs)
	}
	// A failing fetch and a dry run put the source in errors and output.
	e.remote.fail("/prometheus.yml", 503)
	_, _ = e.run(cfg, nil)
	e.remote.fail("/prometheus.yml", 0)
	e.remote.Set("/prometheus.yml", "changed: 1\n")
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
	good := e.remote.Get("/prometheus.yml")
	e.remote.Set("/prometheus.yml", "refused: 1\n")
	e.reload.set(http.StatusInternalServerError, false)
	_, err = e.run(cfg, nil)
	wantFailed(t, err)
	if v := e.metric("butler_health", "manager", "prom"); v != 2 {
		t.Fatalf("health after refusal = %v, want 2", v)
	}
	// The source goes back to what the LKG holds: nothing to write, and in step.
	e.remote.Set("/prometheus.yml", good)
	e.reload.takeCalls()
	_, err = e.run(cfg, nil)
	wantNoErr(t, err)
	// no reload: the disk already holds the source
	e.wantReloads(t, 0)
	// health after the revert: OK
	e.wantMetric(t, 0, "butler_health", "manager", "prom")
}

func TestRunReloadExpect(t *testing.T) {
	e := newRunEnv(t)
	// The endpoint answers 500 here; with expect = [500] that counts as a good reload.
	e.reload.set(http.StatusInternalServerError, false)
	cfg := e.parse(strings.Replace(e.config(""), "retries = 0", "retries = 0\nexpect = [204, 500]", 1))
	_, err := e.run(cfg, nil)
	wantNoErr(t, err)
	e.wantMetric(t, 500, "butler_reload_status", "manager", "prom")
	if _, ok := e.lookup("butler_lkg", "manager", "prom"); !ok {
		t.Error("an expected status did not store the LKG")
	}
}

func TestRunSplay(t *testing.T) {
	e := newRunEnv(t)
	cfg := e.parse(e.config(""))
	var asked time.Duration
	jitter := func(max time.Duration) time.Duration { asked = max; return 20 * time.Millisecond }
	start := time.Now()
	_, err := e.run(cfg, func(o *Options) { o.Splay = time.Hour; o.Jitter = jitter })
	wantNoErr(t, err)
	if asked != time.Hour || time.Since(start) < 20*time.Millisecond {
		t.Errorf("splay: asked for %v, waited %v", asked, time.Since(start))
	}
	// [butler] splay applies when the flag is not given.
	asked = 0
	cfgSplay := e.parse(strings.Replace(e.config(""), `timeout = "20s"`, "timeout = \"20s\"\nsplay = \"90s\"", 1))
	_, err = e.run(cfgSplay, func(o *Options) { o.Jitter = jitter })
	wantNoErr(t, err)
	if asked != 90*time.Second {
		t.Errorf("[butler] splay: asked for %v, want 1m30s", asked)
	}
	// A cancelled context ends the wait at once, before the lock or any fetch.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = Run(ctx, cfg, Options{Splay: time.Hour, Jitter: func(time.Duration) time.Duration { return time.Hour }})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestRunRemovedFileSeriesDisappear(t *testing.T) {
	e := newRunEnv(t)
	_, err := e.run(e.parse(e.config("")), nil)
	wantNoErr(t, err)
	if _, ok := e.lookup("butler_remote_status", "manager", "prom", "file", "rules/a.yml"); !ok {
		t.Fatal("no series for rules/a.yml")
	}
	_, err = e.run(e.parse(withoutRules(e, "")), nil)
	wantNoErr(t, err)
	if _, ok := e.lookup("butler_remote_status", "manager", "prom", "file", "rules/a.yml"); ok {
		t.Error("series of a file no longer configured still written")
	}
}

// TestRunStoresLKGThatFailedBefore: applied content whose last-known-good copy
// could not be stored (a full disk, say) is stored by the next run even when
// nothing changed, so that a later refused reload puts back what the manager
// really runs, never an older copy.
func TestRunStoresLKGThatFailedBefore(t *testing.T) {
	e := newRunEnv(t)
	cfg := e.parse(e.config(""))
	e.remote.Set("/rules/a.yml", "groups: [v1]\n")
	_, err := e.run(cfg, nil)
	wantNoErr(t, err)

	// v2 is applied and reloaded, but the copy cannot be stored.
	lkgDir := filepath.Join(e.stateDir, "lkg")
	if err := os.RemoveAll(lkgDir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lkgDir, []byte("in the way"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.remote.Set("/rules/a.yml", "groups: [v2]\n")
	res, err := e.run(cfg, nil)
	wantFailed(t, err)
	if mr := res.Managers[0]; mr.Phase != PhaseLKG {
		t.Fatalf("result = %+v, want a failed lkg phase", mr)
	}

	// The disk is free again: the unchanged run stores v2.
	if err := os.Remove(lkgDir); err != nil {
		t.Fatal(err)
	}
	res, err = e.run(cfg, nil)
	wantNoErr(t, err)
	if got := res.Managers[0].Outcome; got != "unchanged" {
		t.Errorf("outcome = %q, want unchanged", got)
	}
	files, ok, err := lkg.Load(filepath.Join(lkgDir, "prom"))
	if err != nil || !ok {
		t.Fatalf("no last-known-good copy: %v", err)
	}
	for _, f := range files {
		if f.Path == "rules/a.yml" && string(f.Data) != "groups: [v2]\n" {
			t.Errorf("last-known-good rules/a.yml = %q, want v2", f.Data)
		}
	}

	// v3 is refused: v2, which the manager runs, comes back.
	e.remote.Set("/rules/a.yml", "groups: [v3]\n")
	e.reload.set(http.StatusInternalServerError, false)
	_, err = e.run(cfg, nil)
	wantFailed(t, err)
	if b, _ := os.ReadFile(filepath.Join(e.dest, "rules", "a.yml")); string(b) != "groups: [v2]\n" {
		t.Errorf("after the refusal rules/a.yml = %q, want v2", b)
	}
}

// withoutRules is the standard configuration with its rules file dropped.
func withoutRules(e *runEnv, extra string) string {
	text := e.config(extra)
	i := strings.Index(text, "[[managers.prom.files]]\nsource = \""+e.remote.url("/rules/a.yml"))
	j := strings.Index(text, "[managers.prom.reload]")
	return text[:i] + text[j:]
}

// TestRunRemovesFilesNoLongerWanted: a file butler wrote that is dropped from
// the configuration is deleted as part of the change, after the new files
// are in place and before the reload; a refused reload brings it back; a
// file butler never wrote is never touched; prune = false keeps them all.
func TestRunRemovesFilesNoLongerWanted(t *testing.T) {
	e := newRunEnv(t)
	_, err := e.run(e.parse(e.config("")), nil)
	wantNoErr(t, err)
	mine := filepath.Join(e.dest, "rules", "operator.yml")
	if err := os.WriteFile(mine, []byte("mine: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rules := filepath.Join(e.dest, "rules", "a.yml")

	// prune = false keeps it.
	_, err = e.run(e.parse(withoutRules(e, "prune = false")), nil)
	wantNoErr(t, err)
	if _, err := os.Stat(rules); err != nil {
		t.Errorf("prune = false deleted rules/a.yml: %v", err)
	}

	// The reload sees the file gone already; it refuses: the file is back.
	var seenAtReload bool
	e.reload.set(http.StatusInternalServerError, false)
	e.reload.mu.Lock()
	e.reload.onCall = func() { _, err := os.Stat(rules); seenAtReload = err == nil }
	e.reload.mu.Unlock()
	_, err = e.run(e.parse(withoutRules(e, "")), nil)
	wantFailed(t, err)
	if seenAtReload {
		t.Error("the removed file was still there when the reload came")
	}
	if _, err := os.Stat(rules); err != nil {
		t.Errorf("refused reload: rules/a.yml not put back: %v", err)
	}

	// Dry run: the deletion as a diff to /dev/null, nothing deleted.
	e.reload.set(http.StatusOK, false)
	e.reload.mu.Lock()
	e.reload.onCall = nil
	e.reload.mu.Unlock()
	e.stdout.Reset()
	_, err = e.run(e.parse(withoutRules(e, "")), func(o *Options) { o.DryRun = true })
	wantNoErr(t, err)
	if out := e.stdout.String(); !strings.Contains(out, "+++ /dev/null") || !strings.Contains(out, "-groups:") {
		t.Errorf("dry run shows no deletion:\n%s", out)
	}
	if _, err := os.Stat(rules); err != nil {
		t.Error("the dry run deleted the file")
	}

	// Accepted (new content: the refusal is over): deleted, and the
	// operator's own file stays.
	e.remote.Set("/prometheus.yml", "global:\n  scrape_interval: 15s\n")
	res, err := e.run(e.parse(withoutRules(e, "")), nil)
	wantNoErr(t, err)
	if _, err := os.Stat(rules); !os.IsNotExist(err) {
		t.Errorf("rules/a.yml still there: %v", err)
	}
	if got := res.Managers[0].Changed; fmt.Sprint(got) != "[prometheus.yml rules/a.yml]" {
		t.Errorf("changed = %v, want the new file and the removal", got)
	}
	if b, err := os.ReadFile(mine); err != nil || string(b) != "mine: 1\n" {
		t.Errorf("the operator's file was touched: %q %v", b, err)
	}
	// Nothing left to remove: unchanged from now on.
	res, err = e.run(e.parse(withoutRules(e, "")), nil)
	wantNoErr(t, err)
	if res.Managers[0].Outcome != "unchanged" {
		t.Errorf("outcome %q, want unchanged", res.Managers[0].Outcome)
	}
}

// TestRunSignedConfiguration: with [verify], a file must carry a minisign
// signature by a trusted key: signed by the real minisign tool, applied;
// altered, refused with nothing written; an older signed version replayed,
// refused; a newer one, applied. butler_verify says which.
func TestRunSignedConfiguration(t *testing.T) {
	tool := minisigntest.Tool(t)
	trusted, other := minisigntest.NewPair(t, tool), minisigntest.NewPair(t, tool)
	e := newRunEnv(t)
	serve := func(p minisigntest.Pair, path, body string, at time.Time) string {
		sig := minisigntest.Sign(t, tool, p, []byte(body), "-t", fmt.Sprintf("timestamp:%d", at.Unix()))
		e.remote.Set(path, body)
		e.remote.Set(path+".minisig", string(sig))
		return string(sig)
	}
	t0 := time.Unix(1_763_000_000, 0)
	serve(trusted, "/prometheus.yml", "global: {}\n", t0)
	v1 := "groups: [v1]\n"
	v1sig := serve(trusted, "/rules/a.yml", v1, t0)
	cfg := e.parse(e.config(fmt.Sprintf("[managers.prom.verify]\nminisign_keys = [%q]\n", trusted.Pub)))
	verified := func(want float64) {
		t.Helper()
		e.wantMetric(t, want, "butler_verify", "manager", "prom", "file", "rules/a.yml")
	}

	_, err := e.run(cfg, nil)
	wantNoErr(t, err)
	verified(1)

	steps := []struct {
		name   string
		serve  func()
		errs   string
		result string // rules/a.yml afterwards
	}{
		{"body altered", func() { e.remote.Set("/rules/a.yml", "groups: [evil]\n") }, "signature", v1},
		{"signed by an unknown key", func() { serve(other, "/rules/a.yml", "groups: [other]\n", t0.Add(time.Hour)) }, "key", v1},
		{"signature missing", func() { e.remote.Set("/rules/a.yml", v1); e.remote.fail("/rules/a.yml.minisig", http.StatusNotFound) }, "404", v1},
		{"v2 applied", func() {
			e.remote.fail("/rules/a.yml.minisig", 0)
			serve(trusted, "/rules/a.yml", "groups: [v2]\n", t0.Add(2*time.Hour))
		}, "", "groups: [v2]\n"},
		{"v1 replayed", func() { e.remote.Set("/rules/a.yml", v1); e.remote.Set("/rules/a.yml.minisig", v1sig) }, "replay", "groups: [v2]\n"},
	}
	for _, st := range steps {
		st.serve()
		res, err := e.run(cfg, nil)
		if st.errs == "" {
			wantNoErr(t, err)
			verified(1)
		} else {
			wantFailed(t, err)
			if mr := res.Managers[0]; mr.Phase != PhaseFetch || !strings.Contains(mr.Err.Error(), "rules/a.yml") || !strings.Contains(mr.Err.Error(), st.errs) {
				t.Errorf("%s: result %+v, want a fetch failure naming rules/a.yml and %q", st.name, mr, st.errs)
			}
			verified(0)
		}
		if got := e.read("rules/a.yml"); got != st.result {
			t.Errorf("%s: rules/a.yml = %q, want %q", st.name, got, st.result)
		}
	}
}

// wantFailedIn requires a failed run whose first manager failed in phase,
// with an error that names each of parts.
func wantFailedIn(t *testing.T, res *Result, err error, phase string, parts ...string) {
	t.Helper()
	wantFailed(t, err)
	mr := res.Managers[0]
	ok := mr.Phase == phase && mr.Err != nil
	for _, p := range parts {
		ok = ok && strings.Contains(mr.Err.Error(), p)
	}
	if !ok {
		t.Errorf("result = %+v, want a failure in phase %s naming %q", mr, phase, parts)
	}
}
