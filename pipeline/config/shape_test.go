package config

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/butler-sre/butler/pipeline/source"
)

// TestTomlFields checks the key table of a struct type: the fields of an
// embedded struct count as its own, and every field is there by its tag.
func TestTomlFields(t *testing.T) {
	got := tomlFields(reflect.TypeFor[rawDir]())
	want := map[string]reflect.Type{
		"source":      reflect.TypeFor[string](),
		"path":        reflect.TypeFor[string](),
		"format":      reflect.TypeFor[string](),
		"template":    reflect.TypeFor[*bool](),
		"delims":      reflect.TypeFor[[]string](),
		"mode":        reflect.TypeFor[string](),
		"headers":     reflect.TypeFor[map[string]string](),
		"include":     reflect.TypeFor[[]string](),
		"max_files":   reflect.TypeFor[*int](),
		"allow_empty": reflect.TypeFor[bool](),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("tomlFields(rawDir) = %v, want %v", got, want)
	}
}

// TestExpectedType walks keys of each kind through rawConfig.
func TestExpectedType(t *testing.T) {
	for _, tc := range []struct {
		key  []string
		want reflect.Type // nil: not a key butler knows
	}{
		{[]string{"butler"}, reflect.TypeFor[rawButler]()},
		{[]string{"butler", "schemes"}, reflect.TypeFor[[]string]()},
		{[]string{"managers", "m", "files"}, reflect.TypeFor[[]*rawFile]()},
		{[]string{"managers", "m", "files", "headers"}, reflect.TypeFor[map[string]string]()},
		{[]string{"managers", "m", "dirs", "source"}, reflect.TypeFor[string]()},
		{[]string{"managers", "m", "dirs", "max_files"}, reflect.TypeFor[*int]()},
		{[]string{"managers", "m", "vars", "x"}, nil},
		{[]string{"vars", "x"}, nil},
		{[]string{"managers", "m", "nope"}, nil},
		{[]string{"managers", "m", "dest", "x"}, nil},
	} {
		got, ok := expectedType(tc.key)
		if ok != (tc.want != nil) || got != tc.want {
			t.Errorf("expectedType(%v) = %v, %v; want %v", tc.key, got, ok, tc.want)
		}
	}
}

// FuzzHTTPSourceAsWritten: checker.source takes an http(s) source as
// written without calling source.Resolve, which must agree.
func FuzzHTTPSourceAsWritten(f *testing.F) {
	for _, src := range []string{
		"https://h/a.yml", "HTTP://h/a.yml?x=1", "http::github.com/o/r", "https::rel/p.yml",
		"https://h//sub/a.yml", "http://u:p@h:8080/a%20b.yml#f", "http:///x", "https://h/a?b=c\nd",
	} {
		f.Add(src)
	}
	f.Fuzz(func(t *testing.T, src string) {
		scheme, err := source.Scheme(src)
		if err != nil || scheme != "http" && scheme != "https" {
			return
		}
		for _, base := range []string{"/", "/etc/butler"} {
			if got, err := source.Resolve(src, base); got != src || err != nil {
				t.Errorf("Resolve(%q, %q) = %q, %v; want it as written", src, base, got, err)
			}
		}
	})
}

func TestUnquote(t *testing.T) {
	for key, want := range map[string]string{
		"managers.m.files":        "managers.m.files",
		`managers."my-app".files`: "managers.my-app.files",
		"managers . m":            "managers.m",
		"'a'.b":                   "a.b",
		"a.\tb":                   "a.b",
		"a.\u00a0b\u00a0":         "a.b",
		"é.b":                     "é.b",
		"":                        "",
	} {
		if got := unquote(key); got != want {
			t.Errorf("unquote(%q) = %q, want %q", key, got, want)
		}
	}
}

// TestCheckDepthStrings: brackets inside strings of each kind do not count,
// and the line of the error counts the lines inside them.
func TestCheckDepthStrings(t *testing.T) {
	deep := strings.Repeat("[", maxDepth+1)
	for _, tc := range []struct {
		text string
		line int // 0: no error
	}{
		{`a = "` + deep + `"`, 0},
		{`a = '` + deep + `'`, 0},
		{"a = \"\"\"\n" + deep + "\n\"\"\"", 0},
		{"a = '''\n" + deep + "\n'''", 0},
		{`a = "\"` + deep + `"`, 0},
		{"a = \"\"\"\n\"\"\"\nb = " + deep, 3},
		{"a = '\\'\nb = " + deep, 2},
		{"# " + deep + "\nb = " + deep, 2},
		{`a = "x`, 0},
		{`a = """x""`, 0},
	} {
		line, err := checkDepth([]byte(tc.text))
		if line != tc.line || (err != nil) != (tc.line != 0) {
			t.Errorf("checkDepth(%q) = %d, %v; want line %d", tc.text, line, err, tc.line)
		}
	}
}

func TestCheckInlineExtended(t *testing.T) {
	text := strings.Join([]string{
		`a = 1`,
		`[managers.m]`,
		`vars = { a = 1 }`,
		`vars.b = 2`,
		`varsx = 3`,
		`[managers.m.vars.c]`,
		`[managers.m.files]`,
		`headers = {}`,
		`"headers".x = 1`,
		`headers.y.z = 1`,
		`s = """`,
		`headers.q = 1`,
		`"""`,
		`t = { u = { v = 1 } }`,
		`t.u.w = 1`,
	}, "\n")
	got := checkInlineExtended([]byte(text))
	want := []string{
		"line 4: managers.m.vars.b adds to the inline table managers.m.vars of line 3, which TOML forbids: write the key inside the braces",
		"line 6: managers.m.vars.c adds to the inline table managers.m.vars of line 3, which TOML forbids: write the key inside the braces",
		"line 10: managers.m.files.headers.y.z adds to the inline table managers.m.files.headers of line 8, which TOML forbids: write the key inside the braces",
		"line 15: managers.m.files.t.u.w adds to the inline table managers.m.files.t of line 14, which TOML forbids: write the key inside the braces",
	}
	if !slices.Equal(got, want) {
		t.Errorf("checkInlineExtended:\ngot  %q\nwant %q", got, want)
	}
}
