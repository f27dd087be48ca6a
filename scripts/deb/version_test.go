package main

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestDebVersion(t *testing.T) {
	commit := time.Date(2026, 12, 1, 23, 30, 0, 0, time.FixedZone("CET", 3600)) // 22:30 UTC
	tests := []struct {
		describe, want string
	}{
		{"v1.2.3", "1.2.3"},
		{"1.2.3", "1.2.3"},
		{"v1.2", "1.2"},
		{"v1.2.3-rc.1", "1.2.3~rc.1"},
		{"v1.2.3-rc-1", "1.2.3~rc.1"},
		{"v1.2.3-4-gabc1234", "1.2.3+4.gabc1234"},
		{"v1.2.3-rc.1-4-gabc1234", "1.2.3~rc.1+4.gabc1234"},
		{"v1.2.3-dirty", "1.2.3+dirty"},
		{"v1.2.3-4-gabc1234-dirty", "1.2.3+4.gabc1234.dirty"},
		{"abc1234", "0.0.0~git20261201.abc1234"},
		{"abc1234-dirty", "0.0.0~git20261201.abc1234+dirty"},
		{"abc1234\n", "0.0.0~git20261201.abc1234"},
	}
	for _, tt := range tests {
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
