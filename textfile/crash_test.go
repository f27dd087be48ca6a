package textfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteFileRemovesStaleTemps checks that WriteFile clears the temporary
// files a killed writer of the same path left behind, and nothing else.
func TestWriteFileRemovesStaleTemps(t *testing.T) {
	fams := []Family{{Name: "butler_run_success", Help: "h", Type: Gauge, Series: []Series{{Value: 1}}}}
	tests := []struct {
		name    string
		entry   string
		dir     bool // a directory rather than a file
		removed bool
	}{
		{name: "temporary of the textfile", entry: ".butler.prom.123456.tmp", removed: true},
		{name: "no digits", entry: ".butler.prom..tmp"},
		{name: "not only digits", entry: ".butler.prom.12a.tmp"},
		{name: "other suffix", entry: ".butler.prom.123.swp"},
		{name: "another textfile's temporary", entry: ".other.prom.123.tmp"},
		{name: "not hidden", entry: "butler.prom.123.tmp"},
		{name: "unrelated dotfile", entry: ".keep"},
		{name: "another textfile", entry: "other.prom"},
		{name: "a directory named like a temporary", entry: ".butler.prom.77.tmp", dir: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, tc.entry)
			var err error
			if tc.dir {
				err = os.Mkdir(p, 0o755)
			} else {
				err = os.WriteFile(p, []byte("left behind"), 0o644)
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := WriteFile(filepath.Join(dir, "butler.prom"), fams); err != nil {
				t.Fatal(err)
			}
			_, err = os.Lstat(p)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.Fatal(err)
			}
			if exists := err == nil; exists == tc.removed {
				t.Errorf("%s exists = %v, want %v", tc.entry, exists, !tc.removed)
			}
		})
	}
}

// TestWriteFileRemovesItsOwnTempPattern removes a file made from the very
// pattern WriteFile uses, as a killed writer leaves it.
func TestWriteFileRemovesItsOwnTempPattern(t *testing.T) {
	for _, base := range []string{"butler.prom", "x*.prom"} {
		t.Run(base, func(t *testing.T) {
			dir := t.TempDir()
			f, err := os.CreateTemp(dir, tempPattern(base))
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
			fams := []Family{{Name: "m", Help: "h", Type: Gauge, Series: []Series{{Value: 1}}}}
			if err := WriteFile(filepath.Join(dir, base), fams); err != nil {
				t.Fatal(err)
			}
			assertOnlyFiles(t, dir, base)
		})
	}
}
