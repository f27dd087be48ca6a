package main

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// debVersionCases reads testdata/versions.txt: a describe output (quoted) and
// the version it gives, a line each.
func debVersionCases(t *testing.T) []struct{ describe, want string } {
	t.Helper()
	data, err := os.ReadFile("testdata/versions.txt")
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct{ describe, want string }
	for i, line := range strings.Split(string(data), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		quoted, want, _ := strings.Cut(line, "\" ")
		describe, err := strconv.Unquote(quoted + "\"")
		if err != nil || want == "" {
			t.Fatalf("testdata/versions.txt:%d: want \"DESCRIBE\" VERSION: %q", i+1, line)
		}
		cases = append(cases, struct{ describe, want string }{describe, want})
	}
	return cases
}

func TestDebVersion(t *testing.T) {
	commit := time.Date(2026, 12, 1, 23, 30, 0, 0, time.FixedZone("CET", 3600)) // 22:30 UTC
	for _, tt := range debVersionCases(t) {
		t.Run(tt.describe, func(t *testing.T) {
			got, err := debVersion(tt.describe, commit)
			if err != nil || got != tt.want {
				t.Errorf("debVersion(%q) = %q, %v; want %q", tt.describe, got, err, tt.want)
			}
		})
	}
	for _, bad := range []string{"", "dev", "release-x", "v1.2.3_beta", "v-1"} {
		t.Run("bad "+bad, func(t *testing.T) {
			if got, err := debVersion(bad, commit); err == nil {
				t.Errorf("debVersion(%q) = %q, want an error", bad, got)
			}
		})
	}
}

// TestDebVersionOrder asks dpkg itself that the versions sort as the commits do.
func TestDebVersionOrder(t *testing.T) {
	dpkg, err := exec.LookPath("dpkg")
	if err != nil && os.Getenv("CI") != "" {
		t.Fatal("dpkg is not installed: CI runs every test")
	}
	if err != nil {
		t.Skip("dpkg is not installed")
	}
	commit := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	order := []string{"abc1234", "v0.9.0", "v1.0.0-rc.1", "v1.0.0-rc.1-2-gabc1234", "v1.0.0", "v1.0.0-3-gdef5678", "v1.0.1"}
	for i := 1; i < len(order); i++ {
		a, errA := debVersion(order[i-1], commit)
		b, errB := debVersion(order[i], commit)
		if errA != nil || errB != nil {
			t.Fatal(errA, errB)
		}
		if out, err := exec.Command(dpkg, "--compare-versions", a, "lt", b).CombinedOutput(); err != nil {
			t.Errorf("dpkg: %s is not before %s (%s -> %s): %v %s", a, b, order[i-1], order[i], err, strings.TrimSpace(string(out)))
		}
	}
}
