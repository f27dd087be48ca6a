//go:build unix

package textfile_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/butler-sre/butler/textfile"
)

// TestWriteFileModeUnderUmask shows the mode is set explicitly: a restrictive
// umask must not make the file unreadable for the collector.
func TestWriteFileModeUnderUmask(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	fams := []textfile.Family{{Name: "m", Help: "h", Type: textfile.Gauge, Series: []textfile.Series{{Value: 1}}}}
	for _, tc := range []struct {
		name     string
		existing bool
	}{{"new file", false}, {"over an existing 0600 file", true}} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "butler.prom")
			if tc.existing {
				if err := os.WriteFile(path, []byte("old\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := textfile.WriteFile(path, fams); err != nil {
				t.Fatal(err)
			}
			assertFile(t, path, "# HELP m h\n# TYPE m gauge\nm 1\n", 0o644)
		})
	}
}
