package state

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// crashTouch creates the file rel under dir, with its parents.
func crashTouch(t *testing.T, dir, rel string) {
	t.Helper()
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("left behind"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func crashExists(t *testing.T, p string) bool {
	t.Helper()
	_, err := os.Lstat(p)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

// TestWritesRemoveStaleTemps: each file written in the state directory
// first removes the temporaries a killed run left of it, and only those.
func TestWritesRemoveStaleTemps(t *testing.T) {
	tests := []struct {
		name        string
		stale, kept string
		write       func(d *Dir) error
	}{
		{name: "state file", stale: ".state.json.tmp4242", kept: ".state.json.tmp-keep", write: func(d *Dir) error { return d.Save(New()) }},
		{name: "run marker", stale: ".running.json.tmp7", kept: ".running.json.tmp7.bak", write: func(d *Dir) error {
			return d.WriteMarker(time.Unix(1_700_000_000, 0), time.Minute)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			crashTouch(t, dir, tt.stale)
			crashTouch(t, dir, tt.kept)
			d, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if err := tt.write(d); err != nil {
				t.Fatal(err)
			}
			if crashExists(t, filepath.Join(dir, tt.stale)) {
				t.Errorf("%s is still there", tt.stale)
			}
			if !crashExists(t, filepath.Join(dir, tt.kept)) {
				t.Errorf("%s was removed", tt.kept)
			}
		})
	}
}
