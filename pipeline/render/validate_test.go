package render

import (
	"fmt"
	"strings"
	"testing"
)

func TestValidateContent(t *testing.T) {
	// A mapping larger than validateYAMLSmall, so that the map-based
	// duplicate check runs, with its duplicate on line 12.
	var big strings.Builder
	for i := range 10 {
		fmt.Fprintf(&big, "k%d: %d\n", i, i)
	}
	bigOK := big.String()
	big.WriteString("other: 1\nk3: again\n")

	tests := []struct {
		name    string
		format  string
		content string
		wantErr []string // substrings of the error; nil means valid
	}{
		{name: "yml single document", format: "yml", content: "global:\n  scrape_interval: 15s\nrule_files: [a.yml, b.yml]\n"},
		{name: "yaml format name", format: "yaml", content: "a: 1\n"},
		{name: "yml multi-document", format: "yml", content: "a: 1\n---\nb: 2\n---\n- x\n- y\n"},
		{name: "yml explicit start and end markers", format: "yml", content: "---\na: 1\n...\n---\nb: 2\n...\n"},
		{name: "yml empty", format: "yml", content: ""},
		{name: "yml comments only", format: "yml", content: "# nothing here\n"},
		{name: "yml same key in different mappings", format: "yml", content: "a:\n  x: 1\nb:\n  x: 2\nl:\n  - x: 1\n  - x: 2\n"},
		{name: "yml anchors and aliases", format: "yml", content: "base: &b {x: 1}\nuse: *b\nmerged:\n  <<: *b\n  y: 2\n"},
		{name: "yml tab inside a quoted value", format: "yml", content: "a: \"x\ty\"\n"},
		{name: "yml large mapping", format: "yml", content: bigOK},
		{name: "yml CRLF", format: "yml", content: "a: 1\r\nb: 2\r\n"},
		{name: "yml duplicate key", format: "yml", content: "a: 1\nb: 2\na: 3\n", wantErr: []string{`duplicate key "a"`, "line 3", "first at line 1"}},
		{name: "yml duplicate nested key", format: "yml", content: "a:\n  x: 1\n  y: 2\n  x: 3\n", wantErr: []string{`duplicate key "x"`, "line 4"}},
		{name: "yml duplicate key in a list item", format: "yml", content: "l:\n  - x: 1\n    x: 2\n", wantErr: []string{`duplicate key "x"`, "line 3"}},
		{name: "yml duplicate flow key", format: "yml", content: "a: {x: 1, x: 2}\n", wantErr: []string{`duplicate key "x"`, "line 1"}},
		{name: "yml duplicate key quoted and plain", format: "yml", content: "a: 1\n\"a\": 2\n", wantErr: []string{`duplicate key "a"`, "line 2"}},
		{name: "yml duplicate key in a large mapping", format: "yml", content: big.String(), wantErr: []string{`duplicate key "k3"`, "line 12", "first at line 4"}},
		{name: "yml duplicate key in the second document", format: "yml", content: "a: 1\n---\nb: 1\nc: 2\nb: 3\n", wantErr: []string{`duplicate key "b"`, "line 5"}},
		{name: "yml syntax error", format: "yml", content: "a: 1\nb: [1, 2\nc: 3\n", wantErr: []string{"line"}},
		{name: "yml syntax error line", format: "yml", content: "a: 1\nb: 2\n  c: 3\n", wantErr: []string{"line 3"}},
		{name: "yml syntax error in the second document", format: "yml", content: "a: 1\n---\nb: : :\n", wantErr: []string{"line 3"}},
		{name: "yml tab indentation", format: "yml", content: "a:\n\tb: 1\n", wantErr: []string{"line 2"}},
		{name: "yml unknown alias", format: "yml", content: "a: *nope\n", wantErr: []string{"nope"}},
		{name: "yml NUL byte", format: "yml", content: "a: \x00\n", wantErr: []string{"yaml"}},

		{name: "json object", format: "json", content: `{"a": 1, "b": [true, null, "x"], "c": {"d": 1.5e3}}`},
		{name: "json array", format: "json", content: `[{"a": 1}, {"a": 1}]`},
		{name: "json scalar", format: "json", content: `"just a string"`},
		{name: "json whitespace around", format: "json", content: "\n  {}\r\n\n"},
		{name: "json huge number", format: "json", content: `{"n": 1e400}`},
		{name: "json key equal to a value", format: "json", content: `{"a": "a", "b": {"a": "b"}}`},
		{name: "json empty key", format: "json", content: `{"": 1}`},
		{name: "json trailing garbage", format: "json", content: "{\"a\": 1}\nx", wantErr: []string{"after the JSON value", "line 2, column 1"}},
		{name: "json second value", format: "json", content: `{} {}`, wantErr: []string{"after the JSON value"}},
		{name: "json trailing closing brace", format: "json", content: `{}}`, wantErr: []string{"after the JSON value"}},
		{name: "json duplicate key", format: "json", content: `{"a": 1, "a": 2}`, wantErr: []string{`duplicate key "a"`, "line 1, column 10"}},
		{name: "json duplicate nested key", format: "json", content: "{\"a\": {\"b\": 1,\n  \"b\": 2}}", wantErr: []string{`duplicate key "b"`, "line 2, column 3"}},
		{name: "json duplicate key in an array item", format: "json", content: `[{"x": 1}, {"x": 1, "x": 2}]`, wantErr: []string{`duplicate key "x"`}},
		{name: "json duplicate key after a nested value", format: "json", content: `{"a": [1, {"a": 2}], "b": "a", "a": 3}`, wantErr: []string{`duplicate key "a"`, "column 32"}},
		{name: "json duplicate escaped key", format: "json", content: `{"a": 1, "\u0061": 2}`, wantErr: []string{`duplicate key "a"`}},
		{name: "json invalid", format: "json", content: `[1,]`, wantErr: []string{"invalid character"}},
		{name: "json missing colon", format: "json", content: "{\n\"a\" 1}", wantErr: []string{"line 2"}},
		{name: "json unclosed", format: "json", content: `{"a": [1`, wantErr: []string{"unexpected end"}},
		{name: "json empty", format: "json", content: "", wantErr: []string{"no value"}},
		{name: "json only whitespace", format: "json", content: " \n\t", wantErr: []string{"no value"}},
		{name: "json invalid UTF-8", format: "json", content: "{\"a\": \"\xff\"}", wantErr: []string{"invalid UTF-8", "line 1, column 8"}},
		{name: "json yaml content", format: "json", content: "a: 1\n", wantErr: []string{"invalid character"}},

		{name: "text plain", format: "text", content: "server {\n  listen 80;\n}\n"},
		{name: "text empty", format: "text", content: ""},
		{name: "text CRLF and tabs", format: "text", content: "a\tb\r\nc\r\n"},
		{name: "text unicode", format: "text", content: "héllo wörld ✓\n"},
		{name: "text NUL", format: "text", content: "a\nb\x00c", wantErr: []string{"NUL", "line 2, column 2"}},
		{name: "text binary", format: "text", content: "\x7fELF\x02\x01\x01\x00\x00", wantErr: []string{"NUL"}},
		{name: "text invalid UTF-8", format: "text", content: "ok\nbad \xc3\x28 here", wantErr: []string{"invalid UTF-8", "line 2, column 5"}},
		{name: "text truncated UTF-8", format: "text", content: "end \xe2\x9c", wantErr: []string{"invalid UTF-8"}},

		{name: "unknown format", format: "toml", content: "a = 1", wantErr: []string{`unknown format "toml"`}},
		{name: "empty format", format: "", content: "a", wantErr: []string{`unknown format ""`}},
		{name: "format is case-sensitive", format: "YML", content: "a: 1", wantErr: []string{"unknown format"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.format, []byte(tt.content))
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Validate(%q) error: %v", tt.format, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate(%q) = nil, want an error containing %q", tt.format, tt.wantErr)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Validate(%q) error %q does not contain %q", tt.format, err, s)
				}
			}
		})
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
