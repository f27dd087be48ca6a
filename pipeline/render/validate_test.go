package render

import (
	"fmt"
	"strings"
	"testing"

	"github.com/butler-sre/butler/internal/casefile"
)

// TestValidateContent validates the content of each case of
// testdata/validate.txt, and two large mappings made here.
func TestValidateContent(t *testing.T) {
	// A mapping larger than validateYAMLSmall, so that the map-based
	// duplicate check runs, with its duplicate on line 12.
	var big strings.Builder
	for i := range 10 {
		fmt.Fprintf(&big, "k%d: %d\n", i, i)
	}
	bigOK := big.String()
	big.WriteString("other: 1\nk3: again\n")

	casefile.Run(t, "testdata/validate.txt", 3, func(t *testing.T, tc casefile.Case) {
		format, content, want := tc.Fields[0], tc.Fields[1], tc.Fields[2]
		var wantErr []string
		if text, ok := casefile.WantErr(want); ok {
			wantErr = strings.Split(text, "; ")
		} else if want != "ok" {
			t.Fatalf("line %d: want %q is neither ok nor an error", tc.Line, want)
		}
		validateCheck(t, format, content, wantErr)
	})
	t.Run("yml large mapping", func(t *testing.T) { validateCheck(t, "yml", bigOK, nil) })
	t.Run("yml duplicate key in a large mapping", func(t *testing.T) {
		validateCheck(t, "yml", big.String(), []string{`duplicate key "k3"`, "line 12", "first at line 4"})
	})
}

// validateCheck validates content as format: it must be valid when wantErr
// is nil, else fail with an error that contains each of wantErr.
func validateCheck(t *testing.T, format, content string, wantErr []string) {
	t.Helper()
	err := Validate(format, []byte(content))
	if wantErr == nil {
		if err != nil {
			t.Fatalf("Validate(%q) error: %v", format, err)
		}
		return
	}
	if err == nil {
		t.Fatalf("Validate(%q) = nil, want an error containing %q", format, wantErr)
	}
	for _, s := range wantErr {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("Validate(%q) error %q does not contain %q", format, err, s)
		}
	}
}

// TestValidateYAMLLargeMapping holds the sorted check of large mappings to
// the one of small ones: the first key that repeats an earlier one, in
// document order, and the line of its first occurrence.
func TestValidateYAMLLargeMapping(t *testing.T) {
	const n = validateYAMLLarge + 100
	doc := func(set map[int]string) string {
		var b strings.Builder
		for i := range n {
			k, ok := set[i]
			if !ok {
				k = fmt.Sprintf("k%d", i)
			}
			fmt.Fprintf(&b, "%s: %d\n", k, i)
		}
		return b.String()
	}
	cases := []struct {
		name string
		set  map[int]string // line index -> key, the others unique
		want string
	}{
		{"no duplicate", nil, ""},
		{"one repeat", map[int]string{4000: "k10"}, `line 4001: duplicate key "k10" (first at line 11)`},
		{"earliest repeat wins, not earliest first", map[int]string{100: "a", 50: "b", 3000: "a", 200: "b"}, `line 201: duplicate key "b" (first at line 51)`},
		{"three times", map[int]string{7: "x", 9: "x", 4090: "x"}, `line 10: duplicate key "x" (first at line 8)`},
		{"quoted and plain are one key", map[int]string{3: `"k5"`}, `line 6: duplicate key "k5" (first at line 4)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate("yml", []byte(doc(tc.set)))
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate = %v, want no error", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
}
