package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestExampleConfigs checks the example configurations that make install and
// the Debian package ship, with the variables of the example butler.env set.
func TestExampleConfigs(t *testing.T) {
	env := exampleEnv(t, filepath.Join("scripts", "examples", "butler.env"))
	tests := []struct {
		file string
		want string
	}{
		{"butler.toml", "configuration OK: 2 managers, 5 files"},
		{"nginx.toml", "configuration OK: 1 managers, 2 files"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			cmd := exec.Command(butlerBin, "--config", filepath.Join("scripts", "examples", tt.file), "check")
			cmd.Env = append(os.Environ(), env...)
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), tt.want) {
				t.Errorf("butler check: %v\n%s", err, out)
			}
		})
	}
}

// exampleEnv reads NAME=value lines as systemd's EnvironmentFile= does: blank
// lines and comments skipped, single quotes around a value removed.
func exampleEnv(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var env []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: not NAME=value: %q", path, line)
		}
		env = append(env, name+"="+strings.Trim(value, "'"))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(env) == 0 {
		t.Fatalf("%s sets no variable", path)
	}
	return env
}
