package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/butler-sre/butler/textfile"
)

// signalEnv is one installation with a remote whose fetches and reload can be slow.
type signalEnv struct {
	t         *testing.T
	dir       string
	config    string
	textfile  string
	stateDir  string
	fetchWait atomic.Int64 // how long /slow.yml takes, in ms
	reloadMS  atomic.Int64 // how long the reload takes; <0 never answers
	reloads   atomic.Int32
	version   atomic.Int32
	// arrived gets "fetch" when a request for /slow.yml arrives and
	// "reload" when a reload request does: a test signals butler at that
	// moment, not after a guessed delay.
	arrived chan string
}

func newSignalEnv(t *testing.T) *signalEnv {
	e := &signalEnv{t: t, dir: t.TempDir(), arrived: make(chan string, 16)}
	e.version.Store(1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow.yml":
			e.tell("fetch")
			select {
			case <-time.After(time.Duration(e.fetchWait.Load()) * time.Millisecond):
			case <-r.Context().Done():
				return
			}
			fmt.Fprintf(w, "slow: %d\n", e.version.Load())
		case "/fast.yml":
			fmt.Fprintf(w, "fast: %d\n", e.version.Load())
		case "/-/reload":
			e.reloads.Add(1)
			e.tell("reload")
			d := e.reloadMS.Load()
			if d < 0 {
				<-r.Context().Done()
				return
			}
			select {
			case <-time.After(time.Duration(d) * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	e.textfile = filepath.Join(e.dir, "textfile", "butler.prom")
	e.stateDir = filepath.Join(e.dir, "state")
	e.config = filepath.Join(e.dir, "butler.toml")
	cfg := fmt.Sprintf(`
[butler]
state_dir = %[1]q
textfile = %[2]q
timeout = "60s"

[managers.fetching]
dest = %[3]q
[[managers.fetching.files]]
source = "%[5]s/slow.yml"

[managers.reloading]
dest = %[4]q
[[managers.reloading.files]]
source = "%[5]s/fast.yml"
[managers.reloading.reload]
url = "%[5]s/-/reload"
timeout = "30s"
retries = 0
`, e.stateDir, e.textfile, filepath.Join(e.dir, "fetching"), filepath.Join(e.dir, "reloading"), srv.URL)
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// tell reports an arrival without ever blocking the server.
func (e *signalEnv) tell(what string) {
	select {
	case e.arrived <- what:
	default:
	}
}

// sync runs butler; signal, when set, is sent as soon as the server reports
// the event at ("fetch" or "reload"). It returns the exit code and stderr.
func (e *signalEnv) sync(sig syscall.Signal, at string) (int, string) {
	e.t.Helper()
	for len(e.arrived) > 0 {
		<-e.arrived // what earlier runs reported
	}
	cmd := exec.Command(butlerBin, "--config", e.config, "sync")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	if sig != 0 {
		e.waitFor(at, cmd, &stderr)
		if err := cmd.Process.Signal(sig); err != nil {
			e.t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		e.t.Fatalf("butler did not end 30s after the signal; stderr:\n%s", stderr.String())
	}
	return cmd.ProcessState.ExitCode(), stderr.String()
}

// waitFor waits until the server reports the event what.
func (e *signalEnv) waitFor(what string, cmd *exec.Cmd, stderr *bytes.Buffer) {
	e.t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case got := <-e.arrived:
			if got == what {
				return
			}
		case <-timeout:
			cmd.Process.Kill()
			e.t.Fatalf("no %s request within 30s; stderr:\n%s", what, stderr.String())
		}
	}
}

func (e *signalEnv) file(manager, name string) string {
	b, err := os.ReadFile(filepath.Join(e.dir, manager, name))
	if err != nil {
		return ""
	}
	return string(b)
}

func (e *signalEnv) metric(name string, labels textfile.Labels) float64 {
	e.t.Helper()
	v, ok := textfileValue(e.t, e.textfile, name, labels)
	if !ok {
		e.t.Fatalf("no %s%v in the textfile", name, labels)
	}
	return v
}

// assertClean checks what every interrupted run must leave: no temporary files,
// the lock free (a normal run does not exit 3), a valid textfile.
func (e *signalEnv) assertClean() {
	e.t.Helper()
	filepath.Walk(e.dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && strings.Contains(filepath.Base(p), ".tmp") {
			e.t.Errorf("temporary file left: %s", p)
		}
		return nil
	})
	if entries, _ := os.ReadDir(filepath.Join(e.stateDir, "tmp")); len(entries) > 0 {
		e.t.Errorf("staging area not cleared: %v", entries)
	}
	if _, err := os.Stat(filepath.Join(e.stateDir, "running.json")); err == nil {
		e.t.Error("run marker left behind")
	}
	e.fetchWait.Store(0)
	e.reloadMS.Store(0)
	if code, stderr := e.sync(0, ""); code != 0 {
		e.t.Errorf("next normal run exited %d (3 = lock still held):\n%s", code, stderr)
	}
}

// interrupt runs sync, sends sig once it reached phase, and requires the
// exit code of a process that sig ended (128+sig); it returns stderr.
func (e *signalEnv) interrupt(sig syscall.Signal, phase string) string {
	e.t.Helper()
	code, stderr := e.sync(sig, phase)
	if want := 128 + int(sig); code != want {
		e.t.Fatalf("exit %d, want %d; stderr:\n%s", code, want, stderr)
	}
	return stderr
}

// wantMetric requires the series name{labels} of the textfile to be want.
func (e *signalEnv) wantMetric(want float64, name string, labels textfile.Labels) {
	e.t.Helper()
	if v := e.metric(name, labels); v != want {
		e.t.Errorf("%s%v = %v, want %v", name, labels, v, want)
	}
}

func TestSignals(t *testing.T) {
	t.Run("SIGTERM during fetch", func(t *testing.T) {
		e := newSignalEnv(t)
		e.fetchWait.Store(5000)
		stderr := e.interrupt(syscall.SIGTERM, "fetch")
		if got := e.file("fetching", "slow.yml"); got != "" {
			t.Errorf("interrupted fetch wrote %q", got)
		}
		e.wantMetric(0, "butler_run_success", nil)
		if !strings.Contains(stderr, "interrupted by terminated") {
			t.Errorf("the log does not say why the run ended:\n%s", stderr)
		}
		e.assertClean()
	})
	t.Run("SIGINT during a reload that finishes within the grace period", func(t *testing.T) {
		e := newSignalEnv(t)
		e.fetchWait.Store(0)
		e.reloadMS.Store(2000)
		e.interrupt(syscall.SIGINT, "reload")
		if got := e.file("reloading", "fast.yml"); got != "fast: 1\n" {
			t.Errorf("file of the finished reload = %q", got)
		}
		// the reload was let finish
		e.wantMetric(200, "butler_reload_status", textfile.L("manager", "reloading"))
		e.wantMetric(0, "butler_run_success", nil)
		e.assertClean()
	})
	t.Run("SIGTERM during a reload that never answers", func(t *testing.T) {
		e := newSignalEnv(t)
		if code, stderr := e.sync(0, ""); code != 0 {
			t.Fatalf("first run: %d\n%s", code, stderr)
		}
		e.version.Store(2)
		e.reloadMS.Store(-1)
		start := time.Now()
		e.interrupt(syscall.SIGTERM, "reload")
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("took %v: the grace period is 5s", d)
		}
		if got := e.file("reloading", "fast.yml"); got != "fast: 1\n" {
			t.Errorf("half-applied manager: file = %q, want the version from before the run", got)
		}
		e.wantMetric(0, "butler_reload_status", textfile.L("manager", "reloading"))
		e.assertClean()
	})
}
