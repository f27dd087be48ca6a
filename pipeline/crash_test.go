package pipeline

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/butler-sre/butler/internal/fstest"
	"github.com/butler-sre/butler/internal/statetest"
	"github.com/butler-sre/butler/pipeline/atomicfile"
	"github.com/butler-sre/butler/pipeline/lkg"
)

// TestRunRemovesStaleTemps checks that a run clears what a killed run left
// beside the manager's files, even when nothing has changed since.
func TestRunRemovesStaleTemps(t *testing.T) {
	e := newRunEnv(t)
	cfg := e.applied()
	stale := []string{".prometheus.yml.tmp1234", "rules/.a.yml.tmp99"}
	kept := []string{".prometheus.yml.swp", "rules/.a.yml.tmpx"}
	for _, rel := range append(append([]string{}, stale...), kept...) {
		fstest.WriteFile(t, filepath.Join(e.dest, rel), "left behind", 0o600)
	}
	res, err := e.run(cfg, nil)
	wantNoErr(t, err)
	if res.Managers[0].Outcome != "unchanged" {
		t.Errorf("outcome = %q, want unchanged", res.Managers[0].Outcome)
	}
	for _, rel := range stale {
		if fstest.Exists(t, filepath.Join(e.dest, rel)) {
			t.Errorf("stale temporary %s is still there", rel)
		}
	}
	for _, rel := range kept {
		if !fstest.Exists(t, filepath.Join(e.dest, rel)) {
			t.Errorf("%s was removed", rel)
		}
	}
}

// TestRunKilledBeforeStateSaved covers a run killed after it began writing
// a manager's files and before it saved the state: the state still says the
// content of before is applied, whatever the killed run wrote or reloaded. The
// next run must reload the manager and keep the files as the last-known-good
// copy even when the disk looks in step, once; the run after that changes
// nothing.
func TestRunKilledBeforeStateSaved(t *testing.T) {
	const rendered = "global:\n  scrape_interval: 30s\n  external_labels:\n    dc: ams1\n"
	oldRules := "groups:\n  - name: a\n    rules: []\n"
	newRules := "groups:\n  - name: b\n    rules: []\n"
	tests := []struct {
		name       string
		firstRun   bool   // a complete run applied the old rules before
		rules      string // the rules the remote serves, and the killed run wrote
		mark       bool   // the killed run marked the files as being written
		fetchFails bool   // the next run fails to fetch, the one after succeeds
		reloads    int
	}{
		{name: "killed after writing a change", firstRun: true, rules: newRules, mark: true, reloads: 1},
		// Say the first killed run wrote and reloaded the new rules, and a
		// second one, back on the old rules, wrote them and was killed before
		// reloading: the disk matches what the state says is applied, but the
		// manager runs the new rules.
		{name: "killed after writing back the applied content", firstRun: true, rules: oldRules, mark: true, reloads: 1},
		{name: "killed during the first run", rules: newRules, mark: true, reloads: 1},
		{name: "killed, then the next run fails to fetch", firstRun: true, rules: newRules, mark: true, fetchFails: true, reloads: 1},
		{name: "files in place before the first run", rules: newRules, reloads: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newRunEnv(t)
			cfg := e.parse(e.config(""))
			if tc.firstRun {
				_, err := e.run(cfg, nil)
				wantNoErr(t, err)
				e.reload.takeCalls()
			}
			// What the killed run left: its mark, and every file written.
			if tc.mark {
				statetest.MarkWriting(t, e.stateDir, "prom")
			}
			e.remote.Set("/rules/a.yml", tc.rules)
			for rel, body := range map[string]string{"prometheus.yml": rendered, "rules/a.yml": tc.rules} {
				if err := atomicfile.WritePath(filepath.Join(e.dest, rel), []byte(body), 0o644, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if tc.fetchFails {
				e.remote.fail("/prometheus.yml", 503)
				_, err := e.run(cfg, nil)
				wantFailed(t, err)
				e.remote.fail("/prometheus.yml", 0)
			}

			res, err := e.run(cfg, nil)
			wantNoErr(t, err)
			e.wantReloads(t, tc.reloads)
			if tc.reloads > 0 {
				if got := res.Managers[0].Outcome; got != "applied" {
					t.Errorf("outcome = %q, want applied", got)
				}
				lkg, ok, err := lkg.Load(filepath.Join(e.stateDir, "lkg", "prom"))
				if err != nil || !ok {
					t.Fatalf("no last-known-good copy: %v", err)
				}
				for _, f := range lkg {
					if f.Path == "rules/a.yml" && string(f.Data) != tc.rules {
						t.Errorf("last-known-good rules/a.yml = %q, want %q", f.Data, tc.rules)
					}
				}
			}
			if isMarked(t, e.stateDir, "prom") {
				t.Error("the mark is still there after a complete run")
			}

			res, err = e.run(cfg, nil)
			wantNoErr(t, err)
			if got := res.Managers[0].Outcome; got != "unchanged" {
				t.Errorf("next outcome = %q, want unchanged", got)
			}
			// the next run does not reload
			e.wantReloads(t, 0)
		})
	}
}

// TestRunMarksWritingUntilStateSaved checks the order that makes the mark
// work: it is on disk while the files are new and the manager reloads them,
// and gone once the run has saved its state.
func TestRunMarksWritingUntilStateSaved(t *testing.T) {
	e := newRunEnv(t)
	var calls, marked atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		calls.Add(1)
		if isMarked(t, e.stateDir, "prom") {
			marked.Add(1)
		}
	}))
	defer srv.Close()
	cfg := e.parse(strings.Replace(e.config(""), e.reload.srv.URL, srv.URL, 1))
	_, err := e.run(cfg, nil)
	wantNoErr(t, err)
	if calls.Load() != 1 || marked.Load() != 1 {
		t.Errorf("reloads = %d, with the mark present = %d; want 1 and 1", calls.Load(), marked.Load())
	}
	if isMarked(t, e.stateDir, "prom") {
		t.Error("mark left after the state was saved")
	}
}

// isMarked reports whether the writing mark of manager is on disk, read
// without the lock, as from outside a run.
func isMarked(t *testing.T, stateDir, manager string) bool {
	t.Helper()
	return fstest.Exists(t, filepath.Join(stateDir, "writing", manager))
}
