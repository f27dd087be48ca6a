package textfile_test

import (
	"path/filepath"
	"testing"

	"github.com/butler-sre/butler/internal/fstest"
	"github.com/butler-sre/butler/textfile"
)

// TestWriteFileRemovesStaleTemps checks that WriteFile clears the temporary
// files a killed writer of the same path left behind, and nothing else. Which
// names are temporaries, and what is swept, is atomicfile's (its tests of
// IsTemp and RemoveStale); this shows that WriteFile sweeps.
func TestWriteFileRemovesStaleTemps(t *testing.T) {
	fams := []textfile.Family{{Name: "butler_run_success", Help: "h", Type: textfile.Gauge, Series: []textfile.Series{{Value: 1}}}}
	tests := []struct {
		name    string
		entry   string
		removed bool
	}{
		{name: "temporary of the textfile", entry: ".butler.prom.tmp123456", removed: true},
		{name: "another textfile's temporary", entry: ".other.prom.tmp123"},
		{name: "another textfile", entry: "other.prom"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, tc.entry)
			fstest.WriteFile(t, p, "left behind", 0o644)
			if err := textfile.WriteFile(filepath.Join(dir, "butler.prom"), fams); err != nil {
				t.Fatal(err)
			}
			if exists := fstest.Exists(t, p); exists == tc.removed {
				t.Errorf("%s exists = %v, want %v", tc.entry, exists, !tc.removed)
			}
		})
	}
}
