package state

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/butler-sre/butler/internal/fstest"
)

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
			fstest.WriteFile(t, filepath.Join(dir, tt.stale), "left behind", 0o600)
			fstest.WriteFile(t, filepath.Join(dir, tt.kept), "left behind", 0o600)
			d, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if err := tt.write(d); err != nil {
				t.Fatal(err)
			}
			if fstest.Exists(t, filepath.Join(dir, tt.stale)) {
				t.Errorf("%s is still there", tt.stale)
			}
			if !fstest.Exists(t, filepath.Join(dir, tt.kept)) {
				t.Errorf("%s was removed", tt.kept)
			}
		})
	}
}
