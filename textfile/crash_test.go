package textfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/butler-sre/butler/pipeline/atomicfile"
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
		{name: "temporary of the textfile", entry: ".butler.prom.tmp123456", removed: true},
		{name: "no digits", entry: ".butler.prom.tmp"},
		{name: "not only digits", entry: ".butler.prom.tmp12a"},
		{name: "other suffix", entry: ".butler.prom.swp123"},
		{name: "another textfile's temporary", entry: ".other.prom.tmp123"},
		{name: "not hidden", entry: "butler.prom.tmp123"},
		{name: "unrelated dotfile", entry: ".keep"},
		{name: "another textfile", entry: "other.prom"},
		{name: "a directory named like a temporary", entry: ".butler.prom.tmp77", dir: true},
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

// TestWriteFileRemovesItsOwnTemporaries removes a file named as the write
// sequence names its temporaries, as a killed writer leaves it, and checks
// that such a name is never one a collector reads.
func TestWriteFileRemovesItsOwnTemporaries(t *testing.T) {
	for _, base := range []string{"butler.prom", "x*.prom"} {
		t.Run(base, func(t *testing.T) {
			dir := t.TempDir()
			name := "." + base + ".tmp4711"
			if got, ok := atomicfile.IsTemp(name); !ok || got != base {
				t.Fatalf("IsTemp(%q) = %q, %v; want %q, true", name, got, ok, base)
			}
			if strings.HasSuffix(name, ".prom") {
				t.Errorf("temporary name %q ends in .prom", name)
			}
			if err := os.WriteFile(filepath.Join(dir, name), []byte("left behind"), 0o600); err != nil {
				t.Fatal(err)
			}
			fams := []Family{{Name: "m", Help: "h", Type: Gauge, Series: []Series{{Value: 1}}}}
			if err := WriteFile(filepath.Join(dir, base), fams); err != nil {
				t.Fatal(err)
			}
			assertOnlyFiles(t, dir, base)
		})
	}
}
