package main

// End-to-end tests of the built binary, run as an operator would run it: the
// real Prometheus, Alertmanager and node_exporter where a user would meet them
// (e2e_test.go), and crash safety under SIGKILL (crash_test.go). This file holds
// what they share.

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
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

// needProgram returns the path of a program the test needs. When it is missing the
// test is skipped with a message naming it, except under CI (CI set), where it fails:
// CI must run every test (scripts/test-deps.sh installs the programs).
func needProgram(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	msg := fmt.Sprintf("%s is not installed (scripts/test-deps.sh installs it as root)", name)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
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
