package render

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/butler-sre/butler/internal/casefile"
)

// TestValidateContent validates the content of each case of
// testdata/validate.txt, and two large mappings made here.
func TestValidateContent(t *testing.T) {
	// A mapping larger than validateYAMLSmall, so that the map-based
	// duplicate check runs, with its duplicate on line 12.
	var big strings.Builder
	for i := range 10 {
		fmt.Fprintf(&big, "k%d: %d\n", i, i)
	}
	bigOK := big.String()
	big.WriteString("other: 1\nk3: again\n")

	casefile.Run(t, "testdata/validate.txt", 3, func(t *testing.T, tc casefile.Case) {
		format, content, want := tc.Fields[0], tc.Fields[1], tc.Fields[2]
		var wantErr []string
		if text, ok := casefile.WantErr(want); ok {
			wantErr = strings.Split(text, "; ")
		} else if want != "ok" {
			t.Fatalf("line %d: want %q is neither ok nor an error", tc.Line, want)
		}
		validateCheck(t, format, content, wantErr)
	})
	t.Run("yml large mapping", func(t *testing.T) { validateCheck(t, "yml", bigOK, nil) })
	t.Run("yml duplicate key in a large mapping", func(t *testing.T) {
		validateCheck(t, "yml", big.String(), []string{`duplicate key "k3"`, "line 12", "first at line 4"})
	})
}

// validateCheck validates content as format: it must be valid when wantErr
// is nil, else fail with an error that contains each of wantErr.
func validateCheck(t *testing.T, format, content string, wantErr []string) {
	t.Helper()
	err := Validate(format, []byte(content))
	if wantErr == nil {
		if err != nil {
			t.Fatalf("Validate(%q) error: %v", format, err)
		}
		return
	}
	if err == nil {
		t.Fatalf("Validate(%q) = nil, want an error containing %q", format, wantErr)
	}
	for _, s := range wantErr {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("Validate(%q) error %q does not contain %q", format, err, s)
		}
	}
}

// TestValidateYAMLLargeMapping holds the sorted check of large mappings to
// the one of small ones: the first key that repeats an earlier one, in
// document order, and the line of its first occurrence.
func TestValidateYAMLLargeMapping(t *testing.T) {
	const n = validateYAMLLarge + 100
	doc := func(set map[int]string) string {
		var b strings.Builder
		for i := range n {
			k, ok := set[i]
			if !ok {
				k = fmt.Sprintf("k%d", i)
			}
			fmt.Fprintf(&b, "%s: %d\n", k, i)
		}
		return b.String()
	}
	cases := []struct {
		name string
		set  map[int]string // line index -> key, the others unique
		want string
	}{
		{"no duplicate", nil, ""},
		{"one repeat", map[int]string{4000: "k10"}, `line 4001: duplicate key "k10" (first at line 11)`},
		{"earliest repeat wins, not earliest first", map[int]string{100: "a", 50: "b", 3000: "a", 200: "b"}, `line 201: duplicate key "b" (first at line 51)`},
		{"three times", map[int]string{7: "x", 9: "x", 4090: "x"}, `line 10: duplicate key "x" (first at line 8)`},
		{"quoted and plain are one key", map[int]string{3: `"k5"`}, `line 6: duplicate key "k5" (first at line 4)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate("yml", []byte(doc(tc.set)))
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate = %v, want no error", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestValidateYAMLSegments validates each case of testdata/segments.txt in
// segments of one key and whole: the segments show valid only what the
// whole does, and the whole gives the error.
func TestValidateYAMLSegments(t *testing.T) {
	casefile.Run(t, "testdata/segments.txt", 2, func(t *testing.T, tc casefile.Case) {
		content, want := []byte(tc.Fields[0]), tc.Fields[1]
		seg, _ := validateYAMLSegments(content, 1)
		if seg != (want == "segments") {
			t.Errorf("validateYAMLSegments = %v, want %v", seg, want == "segments")
		}
		err := validateYAMLWhole(content)
		text, isErr := casefile.WantErr(want)
		switch {
		case !isErr && want != "segments" && want != "whole":
			t.Fatalf("line %d: want %q is neither segments, whole nor an error", tc.Line, want)
		case !isErr && err != nil:
			t.Fatalf("the whole is refused: %v", err)
		case isErr && err == nil:
			t.Fatalf("the whole passes, want an error containing %q", text)
		case isErr:
			for _, s := range strings.Split(text, "; ") {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		}
	})
}

// TestValidateYAMLLarge: a file above yamlSegmentMin is shown valid in
// segments when it can be, and otherwise gets the whole's answer, with the
// lines of the whole.
func TestValidateYAMLLarge(t *testing.T) {
	// A head, then lines of "kI: vvv..." of 64 bytes or more, each an entry
	// in the shape's way: eight segments of size or more; edit changes some
	// entries. Validate cuts only files of yamlSegmentMin, so the cases are
	// smaller and cut by validateYAMLSegments with a smaller size, but for
	// two, given to Validate.
	const size = 16 << 10
	const lines = 8 * size / 64
	type shape struct{ head, entry string }
	var (
		mapping    = shape{"", "k%d: %s\n"}
		sequence   = shape{"", "- k%d: %s\n"}
		rules      = shape{"# rules\ngroups:\n", "  - k%d: %s\n"}
		indentless = shape{"scrape_configs:\n", "- k%d: %s\n"}
		nested     = shape{"outer:\n", "  k%d: %s\n"}
		twoLevels  = shape{"a:\n  b:\n", "    - k%d: %s\n"}
	)
	doc := func(sh shape, edit map[int]string) []byte {
		b := bytes.NewBufferString(sh.head)
		for i := range lines {
			if line, ok := edit[i]; ok {
				b.WriteString(line)
			} else {
				fmt.Fprintf(b, sh.entry, i, strings.Repeat("v", 54))
			}
		}
		return b.Bytes()
	}
	last := lines - 1
	cases := []struct {
		name     string
		content  []byte
		segments bool   // shown valid in segments, none longer than two
		want     string // Validate's error, "" for none
	}{
		{"mapping", doc(mapping, nil), true, ""},
		{"sequence", doc(sequence, nil), true, ""},
		{"rules: a sequence below one key", doc(rules, nil), true, ""},
		{"an indentless sequence of one key", doc(indentless, nil), true, ""},
		{"a mapping below one key", doc(nested, nil), true, ""},
		{"two levels of one key", doc(twoLevels, nil), true, ""},
		{"duplicate key across segments", doc(mapping, map[int]string{last: "k3: again\n"}), false,
			fmt.Sprintf(`line %d: duplicate key "k3" (first at line 4)`, lines)},
		{"duplicate key across segments below one key", doc(nested, map[int]string{last: "  k3: again\n"}), false,
			fmt.Sprintf(`line %d: duplicate key "k3" (first at line 5)`, lines+1)},
		{"alias across segments", doc(mapping, map[int]string{2: "k2: &a x\n", last: "end: *a\n"}), false, ""},
		{"alias across segments below one key", doc(rules, map[int]string{2: "  - &a x\n", last: "  - *a\n"}), false, ""},
		{"syntax error in the last segment", doc(mapping, map[int]string{last: "k: [1\n"}), false,
			"did not find expected ',' or ']'"},
		{"syntax error in the last segment below one key", doc(rules, map[int]string{last: " - k: 1\n"}), false,
			"did not find expected key"},
		{"second document", doc(mapping, map[int]string{last: "---\n"}), false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, largest := validateYAMLSegments(tc.content, size)
			if got != tc.segments {
				t.Errorf("validateYAMLSegments = %v, want %v", got, tc.segments)
			}
			if tc.segments && largest > 2*size {
				t.Errorf("a segment of %d bytes, more than two of %d", largest, size)
			}
			err := validateYAMLWhole(tc.content)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("the whole: %v, want no error", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("the whole: %v, want %q", err, tc.want)
			}
		})
	}
	// Validate itself: a file of yamlSegmentMin is cut, and an error in
	// one gets the whole's words.
	var big bytes.Buffer
	for i := 0; big.Len() < yamlSegmentMin+yamlSegmentSize; i++ {
		fmt.Fprintf(&big, "  - k%d: %s\n", i, strings.Repeat("v", 54))
	}
	for _, tc := range []struct {
		name    string
		content []byte
		want    string
	}{
		{"Validate cuts a large file", append([]byte("groups:\n"), big.Bytes()...), ""},
		{"Validate gives the whole's error", append(append([]byte("groups:\n"), big.Bytes()...), "  - k3: [\n"...), "did not find expected node content"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, largest := validateYAMLSegments(tc.content, yamlSegmentSize)
			if ok != (tc.want == "") || (ok && largest > 2*yamlSegmentSize) {
				t.Errorf("validateYAMLSegments = %v, longest segment %d", ok, largest)
			}
			err := Validate("yml", tc.content)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate = %v, want no error", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Validate = %v, want %q", err, tc.want)
			case err != nil:
				if whole := validateYAMLWhole(tc.content); err.Error() != whole.Error() {
					t.Errorf("Validate = %v, not the whole's error %v", err, whole)
				}
			}
		})
	}
}

// TestValidateYAMLLargeRealFiles: real configurations of the repository,
// their list under one key repeated until they are large (as the library
// writes them back, comments kept), are shown valid in segments of a few
// entries, none longer than two segments and the longest entry.
func TestValidateYAMLLargeRealFiles(t *testing.T) {
	const size = 16 << 10
	for _, tc := range []struct{ file, key string }{
		{"../../testdata/example/remote/prometheus.yml", "scrape_configs"},
		{"../../testdata/example/remote/rules/node.yml", "groups"},
		{"../../testdata/example/remote/alertmanager.yml", "receivers"},
		{"../../testdata/e2e/prometheus/prometheus.yml", "scrape_configs"},
		{"../../testdata/e2e/prometheus/rules/dc.yml", "groups"},
		{"../../testdata/e2e/prometheus/rules/instance.yml", "groups"},
		{"../../testdata/e2e/alertmanager/bootstrap.yml", "receivers"},
		{"../../testdata/demo/store/prometheus/rules/demo.yml", "groups"},
	} {
		t.Run(filepath.Base(filepath.Dir(tc.file))+"/"+filepath.Base(tc.file)+"/"+tc.key, func(t *testing.T) {
			data, err := os.ReadFile(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			var doc yaml.Node
			if err := yaml.Unmarshal(data, &doc); err != nil {
				t.Fatal(err)
			}
			root := doc.Content[0]
			var list *yaml.Node
			for i := 0; i+1 < len(root.Content); i += 2 {
				if root.Content[i].Value == tc.key && root.Content[i+1].Kind == yaml.SequenceNode {
					list = root.Content[i+1]
				}
			}
			if list == nil || len(list.Content) == 0 {
				t.Fatalf("no list under %q", tc.key)
			}
			items := list.Content
			var big bytes.Buffer
			for big.Len() < 8*size { // the list doubled until the file is large
				list.Content = append(list.Content, list.Content...)
				big.Reset()
				enc := yaml.NewEncoder(&big)
				enc.SetIndent(2)
				if err := enc.Encode(&doc); err != nil {
					t.Fatal(err)
				}
			}
			if err := validateYAMLWhole(big.Bytes()); err != nil {
				t.Fatalf("the whole: %v", err)
			}
			longest := 0
			for _, item := range items {
				out, err := yaml.Marshal(item)
				if err != nil {
					t.Fatal(err)
				}
				longest = max(longest, len(out)+len(out)/4) // its lines indented
			}
			ok, largest := validateYAMLSegments(big.Bytes(), size)
			if !ok || largest > 2*size+longest {
				t.Errorf("validateYAMLSegments = %v, longest segment %d bytes (segments of %d, entries of up to %d)", ok, largest, size, longest)
			}
		})
	}
}

// BenchmarkValidateYAMLLarge validates 10 MiB of YAML whole and in
// segments: a mapping of many keys, and a rules file (one key whose value is
// a sequence); peak-heap-MiB is the most heap the objects took while it ran
// (sampled), the figure that segments bring down.
func BenchmarkValidateYAMLLarge(b *testing.B) {
	doc := func(head, entry string) []byte {
		d := bytes.NewBufferString(head)
		for i := 0; d.Len() < 10<<20; i++ {
			fmt.Fprintf(d, entry, i, strings.Repeat("v", 60))
		}
		return d.Bytes()
	}
	// Each document is made in its benchmark: only one is live at a time.
	mapping := func() []byte { return doc("", "k%d: %s\n") }
	rules := func() []byte { return doc("groups:\n", "  - name: g%d\n    rules: [{record: r, expr: %s}]\n") }
	for _, bc := range []struct {
		name     string
		doc      func() []byte
		validate func([]byte) error
	}{
		{"mapping/whole", mapping, validateYAMLWhole},
		{"mapping/segments", mapping, validateYAML},
		{"rules/whole", rules, validateYAMLWhole},
		{"rules/segments", rules, validateYAML},
	} {
		b.Run(bc.name, func(b *testing.B) {
			content := bc.doc()
			b.SetBytes(int64(len(content)))
			b.ReportAllocs()
			peak := heapPeak()
			for b.Loop() {
				if err := bc.validate(content); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(peak())/(1<<20), "peak-heap-MiB")
		})
	}
}

// heapPeak samples the heap's objects until the returned func is called,
// which returns the most it saw.
func heapPeak() func() uint64 {
	runtime.GC()
	stop, done := make(chan struct{}), make(chan uint64)
	go func() {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		var most uint64
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(s)
			most = max(most, s[0].Value.Uint64())
			select {
			case <-stop:
				done <- most
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 { close(stop); return <-done }
}
