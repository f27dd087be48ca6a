// Package program finds the programs a test runs. Tests only.
package program

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// Need returns the path of the program name. When it is missing the test is
// skipped with a message naming it, except under CI (CI set), where it fails:
// CI must run every test (scripts/test-deps.sh installs the programs).
func Need(t testing.TB, name string) string {
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
