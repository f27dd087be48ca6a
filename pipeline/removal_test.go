package pipeline

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/butler-sre/butler/pipeline/minisigntest"
)

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
	e.remote.set("/prometheus.yml", "global:\n  scrape_interval: 15s\n")
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
		e.remote.set(path, body)
		e.remote.set(path+".minisig", string(sig))
		return string(sig)
	}
	t0 := time.Unix(1_763_000_000, 0)
	serve(trusted, "/prometheus.yml", "global: {}\n", t0)
	v1 := "groups: [v1]\n"
	v1sig := serve(trusted, "/rules/a.yml", v1, t0)
	cfg := e.parse(e.config(fmt.Sprintf("[managers.prom.verify]\nminisign_keys = [%q]\n", trusted.Pub)))
	verified := func(want float64) {
		t.Helper()
		if v := e.metric("butler_verify", "manager", "prom", "file", "rules/a.yml"); v != want {
			t.Errorf("butler_verify = %v, want %v", v, want)
		}
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
		{"body altered", func() { e.remote.set("/rules/a.yml", "groups: [evil]\n") }, "signature", v1},
		{"signed by an unknown key", func() { serve(other, "/rules/a.yml", "groups: [other]\n", t0.Add(time.Hour)) }, "key", v1},
		{"signature missing", func() { e.remote.set("/rules/a.yml", v1); e.remote.fail("/rules/a.yml.minisig", http.StatusNotFound) }, "404", v1},
		{"v2 applied", func() {
			e.remote.fail("/rules/a.yml.minisig", 0)
			serve(trusted, "/rules/a.yml", "groups: [v2]\n", t0.Add(2*time.Hour))
		}, "", "groups: [v2]\n"},
		{"v1 replayed", func() { e.remote.set("/rules/a.yml", v1); e.remote.set("/rules/a.yml.minisig", v1sig) }, "replay", "groups: [v2]\n"},
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
