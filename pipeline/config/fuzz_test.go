package config

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/butler-sre/butler/internal/badinput"
	"github.com/butler-sre/butler/pipeline/atomicfile"
)

// fuzzSeeds returns the butler.toml of every bad-input case and every
// configuration shipped as an example.
func fuzzSeeds(f *testing.F) [][]byte {
	f.Helper()
	out := badinput.Files(f, func(name string) bool { return name == "butler.toml" })
	examples, _ := filepath.Glob("../../scripts/examples/*.toml")
	for _, p := range append(examples, "../../testdata/example/butler.toml") {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, data)
	}
	return out
}

// fuzzEnv is the environment of the fuzzed configurations.
func fuzzEnv(name string) (string, bool) {
	switch name {
	case "UNSET":
		return "", false
	case "EMPTY":
		return "", true
	case "NESTED":
		return "${HOME}", true
	}
	return "value-of-" + name, true
}

// fuzzAllocLimit bounds what Parse may allocate for an input of n bytes: a
// few kilobytes of nesting once took gigabytes.
func fuzzAllocLimit(n int) uint64 { return 64<<20 + 1024*uint64(n) }

// FuzzParse: Parse never panics, allocates a bounded amount, wraps every
// error in ErrInvalid, and what it accepts keeps every rule a run relies on.
func FuzzParse(f *testing.F) {
	for _, seed := range fuzzSeeds(f) {
		f.Add(seed)
	}
	base := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > MaxSize {
			t.Skip("larger than MaxSize: refused before parsing")
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		cfg, err := Parse(data, "butler.toml", base, fuzzEnv)
		runtime.ReadMemStats(&after)
		if got := after.TotalAlloc - before.TotalAlloc; got > fuzzAllocLimit(len(data)) {
			t.Fatalf("Parse of %d bytes allocated %d MiB", len(data), got>>20)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		fuzzCheckConfig(t, cfg)
	})
}

// fuzzCheckConfig asserts what a valid configuration guarantees.
func fuzzCheckConfig(t *testing.T, cfg *Config) {
	t.Helper()
	b := cfg.Butler
	if b.Concurrency < 1 || b.MaxFileSize < 1 || b.Timeout <= 0 || b.Splay < 0 {
		t.Fatalf("[butler] limits out of range: %+v", b)
	}
	if b.StateDir == "" || !filepath.IsAbs(b.StateDir) {
		t.Fatalf("state_dir %q is not absolute", b.StateDir)
	}
	if !slices.IsSortedFunc(cfg.Managers, func(a, b *Manager) int { return strings.Compare(a.Name, b.Name) }) {
		t.Fatal("managers are not sorted by name")
	}
	for i, m := range cfg.Managers {
		if !managerNameRE.MatchString(m.Name) {
			t.Fatalf("manager name %q", m.Name)
		}
		if !filepath.IsAbs(m.Dest) || filepath.Clean(m.Dest) != m.Dest || m.Dest == "/" {
			t.Fatalf("manager %s: dest %q is not absolute and clean, or is /", m.Name, m.Dest)
		}
		for _, other := range cfg.Managers[i+1:] {
			if fuzzWithin(m.Dest, other.Dest) || fuzzWithin(other.Dest, m.Dest) {
				t.Fatalf("managers %s and %s: dests %s and %s overlap", m.Name, other.Name, m.Dest, other.Dest)
			}
		}
		if fuzzWithin(m.Dest, b.StateDir) || fuzzWithin(b.StateDir, m.Dest) {
			t.Fatalf("manager %s: dest %s overlaps state_dir %s", m.Name, m.Dest, b.StateDir)
		}
		if len(m.Files) == 0 {
			t.Fatalf("manager %s has no files", m.Name)
		}
		seen := map[string]bool{}
		for _, f := range m.Files {
			if clean, err := atomicfile.CleanRel(f.Path); err != nil || clean != f.Path {
				t.Fatalf("manager %s: path %q is not clean and relative (%v)", m.Name, f.Path, err)
			}
			if seen[f.Path] {
				t.Fatalf("manager %s: path %q twice", m.Name, f.Path)
			}
			seen[f.Path] = true
			if !slices.Contains([]string{"yml", "json", "text"}, f.Format) {
				t.Fatalf("manager %s: %s: format %q", m.Name, f.Path, f.Format)
			}
			if f.Mode&^atomicfile.ModeMask != 0 {
				t.Fatalf("manager %s: %s: mode %v", m.Name, f.Path, f.Mode)
			}
			if f.Source == "" {
				t.Fatalf("manager %s: %s: empty source", m.Name, f.Path)
			}
		}
		if r := m.Reload; r != nil && (r.URL == "") == (len(r.Command) == 0) {
			t.Fatalf("manager %s: reload has url %q and command %q", m.Name, r.URL, r.Command)
		}
	}
}

// fuzzWithin reports whether path is dir or under it.
func fuzzWithin(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, strings.TrimSuffix(dir, "/")+"/")
}

// FuzzExpandEnv: ExpandEnv never panics, its output is bounded by its input
// and the values it inserts, and escaping every "${" as "$${" gives the text
// back unchanged.
func FuzzExpandEnv(f *testing.F) {
	for _, s := range []string{
		"", "plain", "${HOME}", "$${HOME}", "$$${HOME}", "${", "${}", "${UNSET}", "${1X}", "a${X}b${Y}c",
		"Bearer ${CFG_TOKEN}", "${NESTED}", "${EMPTY}", "$", "}${A}{", "${A", "$${", "${A}${B}$${C}",
	} {
		f.Add(s)
	}
	for _, seed := range fuzzSeeds(f) {
		for line := range strings.Lines(string(seed)) {
			if strings.Contains(line, "$") {
				f.Add(line)
			}
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := ExpandEnv(s, fuzzEnv)
		if err == nil {
			refs := strings.Count(s, "${")
			// Each reference inserts at most "value-of-" and its name.
			if max := len(s) + refs*(len("value-of-")+len(s)); len(out) > max {
				t.Fatalf("ExpandEnv(%q) = %d bytes, more than %d", s, len(out), max)
			}
		}
		if !strings.Contains(s, "${") && (err != nil || out != s) {
			t.Fatalf("ExpandEnv(%q) = %q, %v; want it unchanged", s, out, err)
		}
		escaped := strings.ReplaceAll(s, "${", "$${")
		if back, err := ExpandEnv(escaped, fuzzEnv); err != nil || back != s {
			t.Fatalf("ExpandEnv(%q) = %q, %v; want %q", escaped, back, err, s)
		}
	})
}
