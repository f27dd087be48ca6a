// Package golden compares test output with golden files under testdata/, for
// every package of butler, behind one flag: `go test ./... -update` rewrites
// the files instead of comparing.
//
// It is imported by tests only.
package golden

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/ instead of comparing")

// Updating reports whether the test run rewrites golden files.
func Updating() bool { return *update }

// Assert compares got with the golden file at path (relative to the test's
// package directory, e.g. "../../testdata/notify/text.txt") and fails the
// test with both texts when they differ. With -update it writes got there.
func Assert(t testing.TB, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden file %s: %v (run the test with -update to create it)", path, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (run with -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}
