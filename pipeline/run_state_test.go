package pipeline

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/butler-sre/butler/pipeline/lkg"
)

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
	// The same configuration without rules/a.yml.
	text := e.config("")
	i := strings.Index(text, "[[managers.prom.files]]\nsource = \""+e.remote.url("/rules/a.yml"))
	j := strings.Index(text, "[managers.prom.reload]")
	_, err = e.run(e.parse(text[:i]+text[j:]), nil)
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
	e.remote.set("/rules/a.yml", "groups: [v1]\n")
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
	e.remote.set("/rules/a.yml", "groups: [v2]\n")
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
	e.remote.set("/rules/a.yml", "groups: [v3]\n")
	e.reload.set(http.StatusInternalServerError, false)
	_, err = e.run(cfg, nil)
	wantFailed(t, err)
	if b, _ := os.ReadFile(filepath.Join(e.dest, "rules", "a.yml")); string(b) != "groups: [v2]\n" {
		t.Errorf("after the refusal rules/a.yml = %q, want v2", b)
	}
}
