package source

import (
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/butler-sre/butler/internal/casefile"
)

func TestScheme(t *testing.T) {
	casefile.Run(t, "testdata/scheme.txt", 2, func(t *testing.T, tc casefile.Case) {
		src, want := tc.Fields[0], tc.Fields[1]
		got, err := Scheme(src)
		if casefile.Check(t, got, err, want, "Scheme(%q)", src) {
			for _, s := range []string{"topsecretpw", "tok-secret-1"} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q contains the secret %q", err, s)
				}
			}
		}
	})
}

func TestResolve(t *testing.T) {
	absConf, err := filepath.Abs("conf")
	if err != nil {
		t.Fatal(err)
	}
	casefile.Run(t, "testdata/resolve.txt", 3, func(t *testing.T, tc casefile.Case) {
		src, base, want := tc.Fields[0], tc.Fields[1], strings.ReplaceAll(tc.Fields[2], "{abs-conf}", absConf)
		got, err := Resolve(src, base)
		casefile.Check(t, got, err, want, "Resolve(%q, %q)", src, base)
	})
}

func TestKnownSchemes(t *testing.T) {
	known := Known()
	if want := []string{"https", "http", "s3", "gcs", "file", "git"}; !slices.Equal(known, want) {
		t.Fatalf("Known() = %q, want %q", known, want)
	}
	known[0] = "ftp"
	if Known()[0] != "https" || IsKnown("ftp") {
		t.Error("changing the slice Known returned changed the known schemes")
	}
	tests := []struct {
		scheme string
		known  bool
	}{
		{scheme: "https", known: true},
		{scheme: "git", known: true},
		{scheme: "hg", known: false},
		{scheme: "HTTPS", known: false}, // callers lower-case first
		{scheme: "", known: false},
	}
	for _, tt := range tests {
		t.Run("IsKnown "+tt.scheme, func(t *testing.T) {
			if got := IsKnown(tt.scheme); got != tt.known {
				t.Errorf("IsKnown(%q) = %v, want %v", tt.scheme, got, tt.known)
			}
		})
	}
	t.Run("defaults", func(t *testing.T) {
		defaults := DefaultSchemes()
		if slices.Contains(defaults, "git") {
			t.Errorf("DefaultSchemes() = %q allows git, which runs an external program", defaults)
		}
		for _, s := range defaults {
			if !IsKnown(s) {
				t.Errorf("default scheme %q is not known", s)
			}
		}
		if want := []string{"https", "http", "s3", "gcs", "file"}; !slices.Equal(defaults, want) {
			t.Errorf("DefaultSchemes() = %q, want %q", defaults, want)
		}
	})
}

// TestDetect pins the expanded form of each shorthand (testdata/detect.txt).
func TestDetect(t *testing.T) {
	casefile.Run(t, "testdata/detect.txt", 3, func(t *testing.T, tc casefile.Case) {
		src, pwd, want := tc.Fields[0], tc.Fields[1], tc.Fields[2]
		got, _, err := Detect(src, pwd)
		casefile.Check(t, got, err, want, "Detect(%q, %q)", src, pwd)
	})
}

// forcedPattern is the definition of a forced getter prefix that
// SplitForced follows: a name of letters and digits, "::" and a rest
// without a newline.
var forcedPattern = regexp.MustCompile(`^([A-Za-z0-9]+)::(.+)$`)

// splitForcedByPattern is SplitForced written with forcedPattern.
func splitForcedByPattern(src string) (string, string) {
	if m := forcedPattern.FindStringSubmatch(src); m != nil {
		return m[1], m[2]
	}
	return "", src
}

var splitForcedSeeds = []string{
	"", "s3::https://x", "git::https://h/r.git//p?ref=x", "S3::x", "a::", "::x",
	"a:b::c", "a::b::c", "a::b\nc", "a::\n", "a-b::c", "\xff::x", "s3::\xff",
	"https://h/p", "C:\\x", "file::rules.yml", "a::b\r",
}

func TestSplitForced(t *testing.T) {
	for _, src := range splitForcedSeeds {
		name, rest := SplitForced(src)
		wantName, wantRest := splitForcedByPattern(src)
		if name != wantName || rest != wantRest {
			t.Errorf("SplitForced(%q) = %q, %q; want %q, %q", src, name, rest, wantName, wantRest)
		}
	}
}

func FuzzSplitForced(f *testing.F) {
	for _, src := range splitForcedSeeds {
		f.Add(src)
	}
	f.Fuzz(func(t *testing.T, src string) {
		name, rest := SplitForced(src)
		wantName, wantRest := splitForcedByPattern(src)
		if name != wantName || rest != wantRest {
			t.Errorf("SplitForced(%q) = %q, %q; want %q, %q", src, name, rest, wantName, wantRest)
		}
	})
}
