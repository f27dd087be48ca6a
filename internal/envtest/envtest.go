// Package envtest holds what tests need of their environment: a made-up
// set of environment variables, and the programs a test runs, which must
// be there under CI. Tests only.
package envtest

import (
	"os"
	"os/exec"
	"testing"
)

// Lookup returns a lookup of the variables vars, as os.LookupEnv looks up
// the process environment (for config.Parse).
func Lookup(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}

// Program returns the path of the program name, looked up on PATH. When it
// is missing the test is skipped, except under CI (CI set), where it
// fails: CI must run every test. install says how to get the program, for
// the message ("scripts/test-deps.sh installs it").
func Program(t testing.TB, name, install string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	msg := name + " is not installed (" + install + ")"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}
