package config

import (
	"reflect"
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
