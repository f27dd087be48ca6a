package main

// End-to-end tests of the built binary, run as an operator would run it: the
// real Prometheus, Alertmanager and node_exporter where a user would meet them
// (e2e_test.go), and crash safety under SIGKILL (crash_test.go). This file holds
// what they share.

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/butler-sre/butler/internal/envtest"
	"github.com/butler-sre/butler/internal/textfiletest"
	"github.com/butler-sre/butler/textfile"
)

// butlerBin is the binary built once for every test of this package.
var butlerBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "butler-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	butlerBin = filepath.Join(dir, "butler")
	build := exec.Command("go", "build", "-o", butlerBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building butler:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// needProgram returns the path of a program the test needs. When it is
// missing the test is skipped, except under CI (CI set), where it fails.
func needProgram(t testing.TB, name string) string {
	t.Helper()
	return envtest.Program(t, name, "scripts/test-deps.sh installs it as root")
}

// runButler runs the built binary with args, in the environment of the test
// with env added, and returns its exit code and what it printed on stdout and
// on stderr. A binary that does not run fails the test.
func runButler(t testing.TB, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(butlerBin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
}

// butlerOutput runs the built binary with args and returns what it printed
// on stdout. An exit other than 0 fails the test.
func butlerOutput(t testing.TB, args ...string) []byte {
	t.Helper()
	out, err := exec.Command(butlerBin, args...).Output()
	if err != nil {
		t.Fatalf("butler %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestBundledExample is `make run` twice, as the README promises: the first sync
// of testdata/example writes and reloads, the second changes nothing; then
// `butler status` on the built binary judges the result.
func TestBundledExample(t *testing.T) {
	runDir := t.TempDir()
	butler := func(args ...string) (int, string, string) {
		t.Helper()
		return runButler(t, []string{"BUTLER_RUN_DIR=" + runDir}, append([]string{"--config", "testdata/example/butler.toml"}, args...)...)
	}
	code, _, stderr := butler("sync")
	if code != 0 || !strings.Contains(stderr, "applied=2") || strings.Count(stderr, "msg=written") != 4 {
		t.Fatalf("first sync: exit %d\n%s", code, stderr)
	}
	rules, err := os.ReadFile(filepath.Join(runDir, "etc/prometheus/rules/node.yml"))
	if err != nil || !strings.Contains(string(rules), "{{ $labels.instance }} is down") || !strings.Contains(string(rules), "node-ams1") {
		t.Errorf("rules/node.yml = %q, %v", rules, err)
	}
	code, _, stderr = butler("sync")
	if code != 0 || !strings.Contains(stderr, "unchanged=2") || strings.Contains(stderr, "msg=written") {
		t.Fatalf("second sync: exit %d\n%s", code, stderr)
	}
	// Within startup_grace every manager is UNKNOWN: Nagios exit 3.
	code, stdout, _ := butler("status", "--nagios")
	if code != 3 || !strings.HasPrefix(stdout, "BUTLER UNKNOWN - ") || !strings.Contains(stdout, " | managers=2 ") {
		t.Errorf("status --nagios: exit %d, %q", code, stdout)
	}
	code, stdout, _ = butler("check")
	if code != 0 || !strings.Contains(stdout, "configuration OK: 2 managers, 4 files") {
		t.Errorf("check: exit %d, %q", code, stdout)
	}
}

// TestMakeInstall installs into a DESTDIR with another PREFIX, as packagers do.
func TestMakeInstall(t *testing.T) {
	needProgram(t, "make")
	dest := t.TempDir()
	cmd := exec.Command("make", "install", "DESTDIR="+dest, "PREFIX=/opt/butler")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	for _, p := range []string{
		"opt/butler/bin/butler",
		"etc/systemd/system/butler.service",
		"etc/systemd/system/butler.timer",
		"opt/butler/share/doc/butler/examples/butler.toml",
		"opt/butler/share/doc/butler/examples/butler.env",
		"opt/butler/share/doc/butler/butler.cron",
		"opt/butler/share/doc/butler/butler-alerts.yml",
	} {
		if _, err := os.Stat(filepath.Join(dest, p)); err != nil {
			t.Errorf("not installed: %s", p)
		}
	}
	unit, _ := os.ReadFile(filepath.Join(dest, "etc/systemd/system/butler.service"))
	if !strings.Contains(string(unit), "ExecStart=/opt/butler/bin/butler ") {
		t.Errorf("the unit does not run the installed binary:\n%s", unit)
	}
	info, err := os.Stat(filepath.Join(dest, "opt/butler/bin/butler"))
	if err != nil || info.Mode().Perm() != 0o755 {
		t.Errorf("binary mode: %v %v", info, err)
	}
}

// textfileValue returns the value of the series name{labels} in the textfile
// at path, and whether it has that series. A textfile it cannot read fails
// the test.
func textfileValue(t *testing.T, path, name string, labels textfile.Labels) (float64, bool) {
	t.Helper()
	fams, err := textfiletest.ReadFile(path)
	if err != nil {
		t.Fatalf("textfile %s: %v", path, err)
	}
	f, _ := textfile.Find(fams, name)
	return f.Value(labels)
}

// TestTuneGC: butler sets its collector target unless GOGC is set, which
// it leaves to the runtime.
func TestTuneGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	for _, tt := range []struct {
		name string
		env  string // GOGC, "-" for unset
		want int
	}{
		{"GOGC unset", "-", gcPercent},
		{"GOGC set", "80", 100},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("GOGC", tt.env)
			if tt.env == "-" {
				os.Unsetenv("GOGC")
			}
			debug.SetGCPercent(100)
			tuneGC()
			if got := debug.SetGCPercent(100); got != tt.want {
				t.Errorf("GC percent %d, want %d", got, tt.want)
			}
		})
	}
}
