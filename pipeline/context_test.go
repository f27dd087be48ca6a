package pipeline

import (
	"slices"
	"testing"

	"github.com/butler-sre/butler/pipeline/config"
	"github.com/butler-sre/butler/pipeline/render"
)

// TestTemplateContextHash: the hash of a list of names is the one computed
// for it, whichever lists were asked for before; lists that differ in a
// name, its order or its value differ.
func TestTemplateContextHash(t *testing.T) {
	m := &config.Manager{Name: "prom"}
	data := render.TemplateData(nil, m.Name, []string{"A=1", "B=2", "AB=3"}, "host1")
	tc := newTemplateContext(m, "host1", data)
	lists := [][]string{nil, {"A"}, {"B"}, {"A", "B"}, {"B", "A"}, {"AB"}, {"A", "B", "C"}, {"C"}}
	seen := map[string][]string{}
	for range 2 { // the second round reads the memo
		for _, names := range lists {
			got := tc.hash(names)
			if want := tc.hashNames(names); got != want {
				t.Errorf("hash(%q) = %s, computed %s", names, got, want)
			}
			if other, ok := seen[got]; ok && !slices.Equal(other, names) {
				t.Errorf("hash(%q) = hash(%q)", names, other)
			}
			seen[got] = names
		}
	}
	if len(seen) != len(lists) {
		t.Errorf("%d distinct hashes of %d lists", len(seen), len(lists))
	}
	other := newTemplateContext(m, "host1", render.TemplateData(nil, m.Name, []string{"A=9", "B=2", "AB=3"}, "host1"))
	if tc.hash([]string{"A"}) == other.hash([]string{"A"}) || tc.hash([]string{"B"}) != other.hash([]string{"B"}) {
		t.Error("a value of A changes the hash of the lists naming A, and only of those")
	}
}
