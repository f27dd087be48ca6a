package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/butler-sre/butler/internal/badinput"
	"github.com/butler-sre/butler/pipeline/health"
)

// fuzzSeeds returns state files: those of earlier releases kept under
// testdata/state, those of the bad-input cases, and one of this version with
// every field set.
func fuzzSeeds(f *testing.F) [][]byte {
	f.Helper()
	var out [][]byte
	kept, _ := filepath.Glob("../../testdata/state/*.json")
	for _, p := range kept {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, data)
	}
	out = append(out, badinput.Files(f, func(name string) bool { return strings.HasPrefix(name, "state/") })...)
	if len(out) < 3 {
		f.Fatalf("%d seed state files; want those of testdata/state and testdata/badinput", len(out))
	}
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	st := New()
	st.Run = RunState{Start: t0, Duration: time.Second, Success: true, LastSuccess: t0}
	st.FirstRun, st.RunStarts, st.StartupGrace, st.Owner = t0, []time.Time{t0}, time.Minute, "/etc/butler/butler.toml"
	st.Notify = NotifyState{
		Pending:  map[string][]health.Change{"email": {{Time: t0, Manager: "prom", From: health.OK, To: health.Critical, Reason: "refused"}}},
		Failures: map[string]int64{"webhook": 2},
	}
	ms := st.Manager("prom")
	ms.Ran, ms.Phase, ms.Error, ms.Refused, ms.Health = true, "reload", "refused", "abc", health.Warning
	ms.Events = []Event{{Time: t0, Kind: "applied", Message: "wrote 1 file(s)", Files: []string{"p.yml"}}}
	ms.File("p.yml").FetchesTotal = 7
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		f.Fatal(err)
	}
	return append(out, data)
}

// FuzzParse: Parse never panics; what it accepts is a state of this
// version without null entries, which Save can write and Parse reads back
// the same; a newer version is refused as ErrNewer.
func FuzzParse(f *testing.F) {
	for _, seed := range fuzzSeeds(f) {
		f.Add(seed)
	}
	f.Add([]byte(`{"version":3}`))
	f.Add([]byte(`{"version":1,"notify":{"pending":[]}}`))
	f.Add([]byte(`{"version":2,"managers":{"a":null,"b":{"files":{"x":null}}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := Parse(data)
		// The fast path reads what encoding/json reads.
		slow, slowErr := parseV1(data)
		if (err == nil) != (slowErr == nil) {
			t.Fatalf("Parse: %v; by encoding/json: %v", err, slowErr)
		}
		if err == nil {
			a, _ := json.Marshal(st)
			b, _ := json.Marshal(slow)
			if !bytes.Equal(a, b) {
				t.Fatalf("Parse and encoding/json read otherwise:\n%s\n%s", a, b)
			}
		}
		if err != nil {
			var head struct{ Version int }
			if json.Unmarshal(data, &head) == nil && head.Version > Version && !errors.Is(err, ErrNewer) {
				t.Fatalf("version %d refused without ErrNewer: %v", head.Version, err)
			}
			return
		}
		if st.Version != Version || st.Managers == nil {
			t.Fatalf("Parse gave version %d, managers %v", st.Version, st.Managers)
		}
		for name, ms := range st.Managers {
			if ms == nil || ms.Files == nil {
				t.Fatalf("manager %q: %+v", name, ms)
			}
			for p, fs := range ms.Files {
				if fs == nil {
					t.Fatalf("manager %q: file %q is null", name, p)
				}
			}
		}
		saved, err := json.MarshalIndent(st, "", "  ")
		if err != nil {
			t.Fatalf("a state Parse accepts cannot be saved: %v", err)
		}
		again, err := Parse(saved)
		if err != nil {
			t.Fatalf("the saved state does not parse: %v\n%s", err, saved)
		}
		resaved, err := json.MarshalIndent(again, "", "  ")
		if err != nil || !bytes.Equal(saved, resaved) {
			t.Fatalf("the saved state reads back otherwise (%v):\n%s\n---\n%s", err, saved, resaved)
		}
	})
}
