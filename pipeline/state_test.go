package pipeline

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestStateRoundTrip(t *testing.T) {
	sd, err := OpenStateDir(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	defer sd.Close()
	now := time.Unix(1_763_780_000, 0).UTC()
	st := NewState()
	ms := st.Manager("prom")
	ms.Reloaded, ms.ReloadStatus, ms.ReloadTime, ms.Refused, ms.ReloadsTotal = true, 500, now, "abc", 7
	ms.File("a.yml").RemoteStatus = 404
	if err := sd.SaveState(st); err != nil {
		t.Fatal(err)
	}
	got, warning, err := sd.LoadState(now)
	if err != nil || warning != nil {
		t.Fatalf("load: %v %v", err, warning)
	}
	g := got.Managers["prom"]
	if !g.Reloaded || g.ReloadStatus != 500 || !g.ReloadTime.Equal(now) || g.Refused != "abc" || g.ReloadsTotal != 7 ||
		g.Files["a.yml"].RemoteStatus != 404 {
		t.Errorf("round trip lost values: %+v", g)
	}
	info, err := os.Stat(filepath.Join(sd.Path, "state.json"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("state file mode: %v %v", info, err)
	}
}

func TestStateUnreadableIsMovedAside(t *testing.T) {
	tests := map[string]string{
		"not json":       "{",
		"wrong version":  `{"version": 99, "managers": {}}`,
		"wrong types":    `{"version": 1, "managers": {"m": {"reloads_total": "many"}}}`,
		"empty file":     ``,
		"binary garbage": "\x00\x01\x02",
	}
	for name, content := range tests {
		t.Run(name, func(t *testing.T) {
			sd, err := OpenStateDir(filepath.Join(t.TempDir(), "state"))
			if err != nil {
				t.Fatal(err)
			}
			defer sd.Close()
			p := filepath.Join(sd.Path, "state.json")
			if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			now := time.Unix(1_700_000_000, 0)
			st, warning, err := sd.LoadState(now)
			if err != nil || warning == nil || len(st.Managers) != 0 {
				t.Fatalf("got %v, warning %v, err %v", st, warning, err)
			}
			if !strings.Contains(warning.Error(), "state.json.corrupt-1700000000") {
				t.Errorf("warning does not say where it went: %v", warning)
			}
			if b, err := os.ReadFile(p + ".corrupt-1700000000"); err != nil || string(b) != content {
				t.Errorf("not moved aside intact: %v", err)
			}
		})
	}
}

func TestStateDirLockAndTmp(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "state")
	sd, err := OpenStateDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenStateDir(dir); !errors.Is(err, ErrLocked) {
		t.Errorf("second open: %v, want ErrLocked", err)
	}
	tmp, err := sd.TmpDir()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "leftover"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if tmp, err = sd.TmpDir(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Errorf("leftovers of an interrupted run kept: %v", entries)
	}
	if err := sd.Close(); err != nil {
		t.Fatal(err)
	}
	sd, err = OpenStateDir(dir)
	if err != nil {
		t.Fatalf("lock not released: %v", err)
	}
	sd.Close()
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
