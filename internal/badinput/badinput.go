// Package badinput reads the bad-input cases of testdata/badinput, the
// txtar archives that the end-to-end tests run, for the fuzz tests that seed
// their corpus with the files of those cases. Tests only.
package badinput

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/tools/txtar"
)

// Files returns the data of the files of every case whose name keep
// accepts, case by case in name order and in each case in the archive's
// order. It fails tb when there are no cases or one does not parse.
func Files(tb testing.TB, keep func(name string) bool) [][]byte {
	tb.Helper()
	cases, err := filepath.Glob(filepath.Join(dir(tb), "*.txtar"))
	if err != nil || len(cases) == 0 {
		tb.Fatalf("no bad-input cases: %v", err)
	}
	var out [][]byte
	for _, p := range cases {
		arch, err := txtar.ParseFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		for _, file := range arch.Files {
			if keep(file.Name) {
				out = append(out, file.Data)
			}
		}
	}
	return out
}

// dir is testdata/badinput at the root of the module, found from the
// package directory the test runs in.
func dir(tb testing.TB) string {
	tb.Helper()
	d, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, "testdata", "badinput")
		}
		parent := filepath.Dir(d)
		if parent == d {
			tb.Fatal("no go.mod above the test's directory")
		}
		d = parent
	}
}
