// Package loctest runs the table tests of the object store locations (the
// ParseLocation functions of fetch/s3 and fetch/gcs) from data files under
// the package's testdata. Each case is a source as a user writes it, and
// the Location, or a part of the error, that parsing it must give; one
// subtest a case, named by the case. Tests only.
//
// A data file holds one case a line, "name | source | want", and passes
// over blank lines and lines that start with "#". In a file of Locations,
// want lists every field that is not empty, as "Field=value", separated
// by "; ", in the order of the struct, with the fields of a nested struct
// as "field.sub=value" (unexported ones too). In a file of errors, want is
// a part of the error text.
package loctest

import (
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/butler-sre/butler/internal/fstest"
)

// Parse is a ParseLocation: it parses u, with its query q (nil for u's
// own).
type Parse[L any] func(u *url.URL, q url.Values) (L, error)

// Case is one line of a data file.
type Case struct {
	Name, Src, Want string
}

// Read returns the cases of the data file path; a line that is not a case
// fails the test.
func Read(t testing.TB, path string) []Case {
	t.Helper()
	data, _ := fstest.Read(t, path)
	var cases []Case
	for i, line := range strings.Split(data, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cols := strings.Split(line, " | ")
		if len(cols) != 3 {
			t.Fatalf("%s:%d: want name | source | want, got %q", path, i+1, line)
		}
		cases = append(cases, Case{Name: cols[0], Src: cols[1], Want: cols[2]})
	}
	if len(cases) == 0 {
		t.Fatalf("%s: no cases", path)
	}
	return cases
}

// URL parses src, failing the test when it is not a URL.
func URL(t testing.TB, src string) *url.URL {
	t.Helper()
	u, err := url.Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// Run checks that parse gives, for each case of the data file path, the
// Location the case describes.
func Run[L any](t *testing.T, path string, parse Parse[L]) {
	t.Helper()
	for _, tc := range Read(t, path) {
		t.Run(tc.Name, func(t *testing.T) {
			got, err := parse(URL(t, tc.Src), nil)
			if err != nil {
				t.Fatalf("ParseLocation: %v", err)
			}
			if d := Describe(got); d != tc.Want {
				t.Errorf("got  %s\nwant %s", d, tc.Want)
			}
		})
	}
}

// RunErrors checks that parse fails on each case of the data file path
// with an error that contains the case's want and none of secrets.
func RunErrors[L any](t *testing.T, path string, parse Parse[L], secrets ...string) {
	t.Helper()
	for _, tc := range Read(t, path) {
		t.Run(tc.Name, func(t *testing.T) {
			_, err := parse(URL(t, tc.Src), nil)
			if err == nil || !strings.Contains(err.Error(), tc.Want) {
				t.Fatalf("error %v, want one containing %q", err, tc.Want)
			}
			for _, s := range secrets {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error holds the secret: %v", err)
				}
			}
		})
	}
}

// Describe lists the fields of the struct l that are not empty, as a data
// file writes a Location. Its fields are strings or structs of strings.
func Describe(l any) string {
	var parts []string
	describe(reflect.ValueOf(l), "", &parts)
	return strings.Join(parts, "; ")
}

func describe(v reflect.Value, prefix string, parts *[]string) {
	for i := range v.NumField() {
		f, name := v.Field(i), prefix+v.Type().Field(i).Name
		switch f.Kind() {
		case reflect.Struct:
			describe(f, name+".", parts)
		case reflect.String:
			if f.String() != "" {
				*parts = append(*parts, name+"="+f.String())
			}
		default:
			panic(fmt.Sprintf("loctest: field %s is a %s", name, f.Kind()))
		}
	}
}
