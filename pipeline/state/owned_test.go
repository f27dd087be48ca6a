package state

import (
	"encoding/json"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/butler-sre/butler/pipeline/config"
)

func TestOwned(t *testing.T) {
	ms := New().Manager("m")
	ms.MarkWritten([]string{"rules/b.yml", "a.yml"})
	ms.MarkWritten([]string{"a.yml", "rules/a.yml", "z.yml"})
	if want := []string{"a.yml", "rules/a.yml", "rules/b.yml", "z.yml"}; !slices.Equal(ms.Owned, want) {
		t.Fatalf("Owned = %q, want %q", ms.Owned, want)
	}
	tests := []struct {
		name    string
		desired []string
		want    []string
	}{
		{name: "everything still wanted", desired: []string{"z.yml", "a.yml", "rules/a.yml", "rules/b.yml"}},
		{name: "two dropped", desired: []string{"a.yml", "z.yml"}, want: []string{"rules/a.yml", "rules/b.yml"}},
		{name: "nothing wanted", want: []string{"a.yml", "rules/a.yml", "rules/b.yml", "z.yml"}},
		{name: "new files are not butler's yet", desired: []string{"a.yml", "rules/a.yml", "rules/b.yml", "z.yml", "new.yml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ms.Unwanted(tt.desired); !slices.Equal(got, tt.want) {
				t.Errorf("Unwanted(%q) = %q, want %q", tt.desired, got, tt.want)
			}
		})
	}
	ms.Forget([]string{"rules/a.yml", "never.yml", "z.yml"})
	if want := []string{"a.yml", "rules/b.yml"}; !slices.Equal(ms.Owned, want) {
		t.Fatalf("Owned after Forget = %q, want %q", ms.Owned, want)
	}
	ms.Forget([]string{"a.yml", "rules/b.yml"})
	if ms.Owned != nil {
		t.Errorf("Owned after forgetting everything = %q, want nil", ms.Owned)
	}
}

// TestOwnedAndSignedAtKept: both survive a save and a load; a state without
// them (written before they existed) loads with none; and they are left out
// of the file while empty.
func TestOwnedAndSignedAtKept(t *testing.T) {
	sd, err := Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	defer sd.Close()
	signed := time.Unix(1_700_000_000, 0).UTC()
	st := New()
	ms := st.Manager("m")
	ms.MarkWritten([]string{"rules/a.yml"})
	ms.File("rules/a.yml").SignedAt = signed
	ms.File("b.yml")
	if err := sd.Save(st); err != nil {
		t.Fatal(err)
	}
	got, _, err := sd.Load(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	g := got.Managers["m"]
	if !slices.Equal(g.Owned, []string{"rules/a.yml"}) || !g.Files["rules/a.yml"].SignedAt.Equal(signed) || !g.Files["b.yml"].SignedAt.IsZero() {
		t.Errorf("after a round trip: owned %q, files %+v", g.Owned, g.Files)
	}

	empty, err := json.Marshal(New().Manager("x"))
	if err != nil {
		t.Fatal(err)
	}
	file, err := json.Marshal(&FileState{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(empty), "owned") || strings.Contains(string(file), "signed_at") {
		t.Errorf("empty fields written: %s %s", empty, file)
	}

	old, err := Parse([]byte(`{"version": 2, "managers": {"m": {"files": {"a.yml": {"remote_status": 200}}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if om := old.Managers["m"]; om.Owned != nil || !om.Files["a.yml"].SignedAt.IsZero() || om.Unwanted(nil) != nil {
		t.Errorf("a state without the fields: %+v", om)
	}
}

func TestParseSortsOwned(t *testing.T) {
	st, err := Parse([]byte(`{"version": 2, "managers": {"m": {"files": {}, "owned": ["z.yml", "a.yml", "z.yml"]}}}`))
	if err != nil {
		t.Fatal(err)
	}
	ms := st.Managers["m"]
	ms.MarkWritten([]string{"m.yml"})
	if want := []string{"a.yml", "m.yml", "z.yml"}; !slices.Equal(ms.Owned, want) {
		t.Errorf("Owned = %q, want %q", ms.Owned, want)
	}
}

// TestPruneKeepsDirFiles: the files under a dir's path stay until the
// directory is listed; KeepFiles then drops those gone from it.
func TestPruneKeepsDirFiles(t *testing.T) {
	st := New()
	ms := st.Manager("m")
	for _, p := range []string{"a.yml", "dropped.yml", "rules/x.yml", "rules/deep/y.yml", "rulesx.yml", "rules"} {
		ms.File(p)
	}
	ms.MarkWritten([]string{"dropped.yml"})
	cfg := &config.Config{Managers: []*config.Manager{{
		Name:  "m",
		Files: []*config.File{{Path: "a.yml"}},
		Dirs:  []*config.Dir{{Path: "rules"}},
	}}}
	st.Prune(cfg)
	if got, want := slices.Sorted(maps.Keys(ms.Files)), []string{"a.yml", "rules/deep/y.yml", "rules/x.yml"}; !slices.Equal(got, want) {
		t.Errorf("after Prune: %q, want %q", got, want)
	}
	if !slices.Equal(ms.Owned, []string{"dropped.yml"}) {
		t.Errorf("Prune dropped what butler wrote: %q", ms.Owned)
	}
	ms.KeepFiles([]string{"a.yml", "rules/x.yml"})
	if got, want := slices.Sorted(maps.Keys(ms.Files)), []string{"a.yml", "rules/x.yml"}; !slices.Equal(got, want) {
		t.Errorf("after KeepFiles: %q, want %q", got, want)
	}
}
