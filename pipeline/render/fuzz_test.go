package render

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/butler-sre/butler/internal/badinput"
)

// fuzzFiles returns the remote files of every bad-input case and the files
// of the bundled example and the end-to-end tests: templates, YAML, JSON and
// text of every kind butler meets.
func fuzzFiles(f *testing.F) [][]byte {
	f.Helper()
	out := badinput.Files(f, func(name string) bool {
		return strings.HasPrefix(name, "remote/") || strings.HasPrefix(name, "dest/")
	})
	for _, dir := range []string{"../../testdata/example/remote", "../../testdata/e2e", "../../testdata/demo", "../../testdata/notify", "../../testdata/status"} {
		err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := os.ReadFile(p)
			out = append(out, data)
			return err
		})
		if err != nil {
			f.Fatal(err)
		}
	}
	return out
}

// fuzzData is the context of the fuzzed templates: every kind of value vars
// can hold, lists of tables among them.
func fuzzData() map[string]any {
	return TemplateData(map[string]any{
		"dc":    "ams1",
		"port":  int64(9090),
		"ratio": 0.5,
		"on":    true,
		"off":   false,
		"blank": " ",
		"none":  []any{},
		"hosts": []any{"a", "b", "c"},
		"jobs": []any{
			map[string]any{"name": "node", "port": int64(9100), "tags": []any{"x", "y"}},
			map[string]any{"name": "blackbox", "port": int64(9115), "tags": []any{}},
		},
		"site": map[string]any{"name": "north", "rack": map[string]any{"row": int64(3)}},
	}, "prometheus", []string{"HOME=/home/butler", "PATH=/bin"}, "web-01")
}

// FuzzRender: Render never panics, leaves content without an opening
// delimiter byte for byte as it is, and never produces more than
// MaxOutput bytes.
func FuzzRender(f *testing.F) {
	for _, seed := range fuzzFiles(f) {
		f.Add(seed, "", "")
		f.Add(seed, "[[", "]]")
	}
	for _, s := range []string{
		"{{dc}}", "{{#jobs}}{{name}}:{{port}} {{/jobs}}", "{{^none}}empty{{/none}}", "{{host.hostname}} {{env.HOME}}",
		"{{=<% %>=}}<% dc %>", "{{> partial}}", "{{{dc}}} {{&dc}}", "{{#site}}{{rack.row}}{{/site}}", "{{missing}}",
		"{{#jobs}}{{#tags}}{{.}}{{/tags}}{{/jobs}}", "{{#hosts}}{{#hosts}}{{#hosts}}{{.}}{{/hosts}}{{/hosts}}{{/hosts}}",
		"{{! comment }}", "{{#dc}}{{/dc}}", "{{", "}}", "{{#a}}", "{{/a}}",
	} {
		f.Add([]byte(s), "", "")
	}
	f.Add([]byte("[[dc]] {{ $labels.instance }}"), "[[", "]]")
	data := fuzzData()
	f.Fuzz(func(t *testing.T, content []byte, open, closing string) {
		var delims []string
		if open != "" || closing != "" {
			delims = []string{open, closing}
		}
		out, err := Render(content, data, delims)
		if err != nil {
			return
		}
		if len(out) > MaxOutput {
			t.Fatalf("Render gave %d bytes, more than %d", len(out), MaxOutput)
		}
		if open == "" && closing == "" {
			open = "{{"
		}
		if !bytes.Contains(content, []byte(open)) && !bytes.Equal(out, content) {
			t.Fatalf("content without %q changed: %q -> %q", open, content, out)
		}
	})
}

// TestRenderLimits: a few hundred bytes of sections nested over a list
// rendered 3^depth times, for hours; and a variable's value can make the
// output larger than any file should be.
func TestRenderLimits(t *testing.T) {
	nested := func(depth int) []byte {
		return []byte(strings.Repeat("{{#hosts}}", depth) + "{{.}}" + strings.Repeat("{{/hosts}}", depth))
	}
	big := strings.Repeat("y", MaxOutput-1)
	tests := []struct {
		name    string
		content []byte
		data    map[string]any
		wantErr string // "" for success
	}{
		{name: "nested sections within the limit", content: nested(9), data: fuzzData()}, // 3^9 items
		{name: "nested sections past the limit", content: nested(14), data: fuzzData(), wantErr: "more than 2000000 tags"},
		{name: "output at the limit", content: []byte("{{big}}y"), data: map[string]any{"big": big}},
		{name: "output past the limit by text", content: []byte("{{big}}yy"), data: map[string]any{"big": big}, wantErr: "exceeds 64 MiB"},
		{name: "output past the limit by a variable", content: []byte("{{big}}{{big}}"), data: map[string]any{"big": big}, wantErr: "exceeds 64 MiB"},
		{name: "output past the limit by a list", content: []byte("{{#l}}{{big}}{{/l}}"), data: map[string]any{"big": big, "l": []any{1, 2}}, wantErr: "exceeds 64 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := Render(tt.content, tt.data, nil)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Render: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Render = %d bytes, %v; want an error containing %q", len(out), err, tt.wantErr)
			case len(out) > MaxOutput:
				t.Fatalf("Render = %d bytes", len(out))
			}
		})
	}
}

// FuzzValidate: Validate never panics, and agrees with the libraries: text
// is exactly UTF-8 without NUL; JSON it accepts is JSON, and JSON it refuses
// is not, or not UTF-8, or holds a duplicate key; YAML it accepts decodes
// into Go values, unless a key repeats in another spelling (1 and 01) or is
// a list or a table (valid YAML, which only some programs can load).
//
// Found by it and fixed: "!!binary 0" (an explicit tag on a value not of
// its type) passed, though decoding refuses it.
func FuzzValidate(f *testing.F) {
	for _, seed := range fuzzFiles(f) {
		f.Add(seed)
	}
	for _, s := range []string{
		"", "a: 1\na: 2\n", "a: 1\n---\nb: [\n", `{"a":1,"a":2}`, `{"a":1} x`, "[1, 2", "\x00", "\xff", "1e400",
		"&a [*a, *a]", "? [a]\n: 1\n", "a: !!binary AAAA\n", `"\ud800"`, "{\"a\":{\"b\":{}}}",
		"!!int abc", "a: !!timestamp 2001-12-14\n", "<<: 1\n", "b: &x {k: 1}\n<<: [*x, {j: 2}]\n", "b: &x [1]\nc:\n  <<: *x\n",
		"a: \"x\nb: y\"\n", "a: |\n x\nb: 1\n", "- a\n- b: 1\n  c: 2\n", "a: 1\nb:\n- 2\nc: 3\n", "a: &x 1\nb: *x\n",
		"groups:\n  - a: 1\n  - b: |\n      x\n  - c: [1]\n", "a:\n  b:\n    - 1\n    - 2\n  c: 3\n", "outer:\n  a: 1\n  b: 2\n", "s:\n- a\n- b\nt: 1\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, content []byte) {
		// text
		err := Validate("text", content)
		if want := utf8.Valid(content) && bytes.IndexByte(content, 0) < 0; (err == nil) != want {
			t.Fatalf("Validate(text, %q) = %v, want ok=%v", content, err, want)
		}
		// json
		err = Validate("json", content)
		if err == nil && !json.Valid(content) {
			t.Fatalf("Validate(json, %q) accepted what encoding/json refuses", content)
		}
		if err != nil && json.Valid(content) && utf8.Valid(content) && !strings.Contains(err.Error(), "duplicate key") {
			t.Fatalf("Validate(json, %q) = %v; encoding/json accepts it", content, err)
		}
		// yml: what segments show valid, the whole is.
		for _, size := range []int{1, 16} {
			if ok, _ := validateYAMLSegments(content, size); ok {
				if err := validateYAMLWhole(content); err != nil {
					t.Fatalf("validateYAMLSegments(%q, %d) passes what the whole refuses: %v", content, size, err)
				}
			}
		}
		err = Validate("yml", content)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "yaml: ") {
				t.Fatalf("Validate(yml) error %q does not start with \"yaml: \"", err)
			}
			return
		}
		if err := Validate("yaml", content); err != nil {
			t.Fatalf("yml accepts what yaml refuses: %v", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(content))
		for {
			var v any
			err := dec.Decode(&v)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil && !strings.Contains(err.Error(), "already defined") && !strings.Contains(err.Error(), "invalid map key") {
				t.Fatalf("Validate(yml, %q) accepted what decoding refuses: %v", content, err)
			}
			if err != nil {
				break
			}
		}
	})
}
