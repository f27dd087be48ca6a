package render

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cbroglie/mustache"
)

func renderTestData() map[string]any {
	vars := map[string]any{
		"datacenter": "ams1",
		"port":       int64(9090),
		"ratio":      0.5,
		"enabled":    true,
		"disabled":   false,
		"blank":      "  ",
		"html":       `<a href="x">&'</a>`,
		"none":       []any{},
		"targets":    []any{"a:9100", "b:9100"},
		"jobs": []map[string]any{
			{"name": "node", "port": int64(9100)},
			{"name": "blackbox", "port": int64(9115)},
		},
		"site": map[string]any{"name": "north", "rack": map[string]any{"row": int64(3)}},
	}
	return TemplateData(vars, "prometheus", []string{"HOME=/home/butler", "PATH=/bin"}, "web-01")
}

func TestRenderTemplateData(t *testing.T) {
	tests := []struct {
		name    string
		vars    map[string]any
		environ []string
		want    map[string]any
	}{
		{
			name:    "vars env host manager",
			vars:    map[string]any{"dc": "ams1"},
			environ: []string{"HOME=/root", "EMPTY="},
			want: map[string]any{
				"dc":      "ams1",
				"env":     map[string]string{"HOME": "/root", "EMPTY": ""},
				"host":    map[string]string{"hostname": "web-01"},
				"manager": "prom",
			},
		},
		{
			name:    "value holding equals signs",
			environ: []string{"OPTS=a=b=c"},
			want: map[string]any{
				"env":     map[string]string{"OPTS": "a=b=c"},
				"host":    map[string]string{"hostname": "web-01"},
				"manager": "prom",
			},
		},
		{
			name:    "first of a repeated name wins, malformed entries skipped",
			environ: []string{"A=1", "A=2", "NOEQUALS", "=C:=x"},
			want: map[string]any{
				"env":     map[string]string{"A": "1"},
				"host":    map[string]string{"hostname": "web-01"},
				"manager": "prom",
			},
		},
		{
			name: "reserved keys win over vars",
			vars: map[string]any{"env": "x", "host": "y", "manager": "z", "keep": int64(1)},
			want: map[string]any{
				"keep":    int64(1),
				"env":     map[string]string{},
				"host":    map[string]string{"hostname": "web-01"},
				"manager": "prom",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := fmt.Sprint(tt.vars)
			got := TemplateData(tt.vars, "prom", tt.environ, "web-01")
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("TemplateData() = %#v, want %#v", got, tt.want)
			}
			if after := fmt.Sprint(tt.vars); after != before {
				t.Errorf("vars modified: %s, was %s", after, before)
			}
		})
	}
}

func TestRender(t *testing.T) {
	data := renderTestData()
	tests := []struct {
		name    string
		content string
		delims  []string
		want    string
		wantErr []string // substrings of the error; nil means success
	}{
		{name: "plain vars", content: "dc={{datacenter}} port={{port}} ratio={{ratio}}\n", want: "dc=ams1 port=9090 ratio=0.5\n"},
		{name: "blanks inside tags", content: "{{ datacenter }}", want: "ams1"},
		{name: "manager", content: "{{manager}}", want: "prometheus"},
		{name: "dotted host and env", content: "{{host.hostname}} {{env.HOME}}", want: "web-01 /home/butler"},
		{name: "dotted nested tables", content: "{{site.name}} row {{site.rack.row}}", want: "north row 3"},
		{name: "comment removed", content: "a{{! a note }}b", want: "ab"},
		{name: "list of strings", content: "{{#targets}}- {{.}}\n{{/targets}}", want: "- a:9100\n- b:9100\n"},
		{name: "list of tables", content: "{{#jobs}}{{name}}:{{port}};{{/jobs}}", want: "node:9100;blackbox:9115;"},
		{name: "outer names inside a list", content: "{{#jobs}}{{manager}}/{{name}}@{{datacenter}} {{/jobs}}", want: "prometheus/node@ams1 prometheus/blackbox@ams1 "},
		{name: "section on a table", content: "{{#site}}{{name}}{{/site}}", want: "north"},
		{name: "section on true", content: "{{#enabled}}on{{/enabled}}", want: "on"},
		{name: "section on false", content: "{{#disabled}}on{{/disabled}}", want: ""},
		{name: "section on blank string is false", content: "{{#blank}}on{{/blank}}", want: ""},
		{name: "inverted on false", content: "{{^disabled}}off{{/disabled}}", want: "off"},
		{name: "inverted on empty list", content: "{{^none}}no targets{{/none}}", want: "no targets"},
		{name: "inverted on non-empty list", content: "{{^targets}}no targets{{/targets}}", want: ""},
		{
			name:    "standalone section lines vanish",
			content: "a\n{{#enabled}}\nb\n{{/enabled}}\nc\n",
			want:    "a\nb\nc\n",
		},
		{
			name:    "no HTML escaping",
			content: `{{html}} {{{html}}} {{&html}} <>&"'`,
			want:    `<a href="x">&'</a> <a href="x">&'</a> <a href="x">&'</a> <>&"'`,
		},
		{name: "CRLF kept around tags", content: "a: {{datacenter}}\r\nb: 2\r\n", want: "a: ams1\r\nb: 2\r\n"},
		{name: "missing variable", content: "dc: {{datacentre}}\n", wantErr: []string{`missing variable "datacentre"`}},
		{name: "missing dotted name", content: "{{host.fqdn}}", wantErr: []string{`missing variable "host.fqdn"`}},
		{name: "missing first part of a dotted name", content: "{{nohost.fqdn}}", wantErr: []string{`missing variable "nohost.fqdn"`}},
		{name: "missing env variable", content: "{{env.NOT_SET_ANYWHERE}}", wantErr: []string{`missing variable "env.NOT_SET_ANYWHERE"`}},
		{
			name:    "missing in a list section",
			content: "{{#jobs}}{{name}} {{scheme}}{{/jobs}}",
			wantErr: []string{`missing variable "scheme"`, `in section "jobs"`},
		},
		{name: "missing in a true section", content: "{{#enabled}}{{nope}}{{/enabled}}", wantErr: []string{`missing variable "nope"`}},
		{name: "missing in a rendered inverted section", content: "{{^disabled}}{{nope}}{{/disabled}}", wantErr: []string{`missing variable "nope"`}},
		{name: "missing section name", content: "{{#tls}}tls: on{{/tls}}", wantErr: []string{`missing variable "tls"`}},
		{name: "missing inverted section name", content: "{{^tls}}tls: off{{/tls}}", wantErr: []string{`missing variable "tls"`}},
		{name: "names in a section not rendered are not looked up", content: "{{#disabled}}{{nope}}{{/disabled}}{{#none}}{{nope}}{{/none}}", want: ""},
		{name: "variable holding a list", content: "{{targets}}", wantErr: []string{`variable "targets" is a list`}},
		{name: "variable holding a table", content: "{{site}}", wantErr: []string{`variable "site" is a table`}},
		{
			name:    "delims leave Go templates intact",
			content: "summary: '{{ $labels.instance }} down in [[datacenter]]'\n",
			delims:  []string{"[[", "]]"},
			want:    "summary: '{{ $labels.instance }} down in ams1'\n",
		},
		{
			name:    "delims with sections",
			content: "[[#targets]]- [[.]] {{ $value }}\n[[/targets]]",
			delims:  []string{"[[", "]]"},
			want:    "- a:9100 {{ $value }}\n- b:9100 {{ $value }}\n",
		},
		{
			name:    "delims keep leading blank lines",
			content: "\n  \n[[datacenter]]\n",
			delims:  []string{"[[", "]]"},
			want:    "\n  \nams1\n",
		},
		{name: "delims missing variable", content: "[[nope]]", delims: []string{"[[", "]]"}, wantErr: []string{`missing variable "nope"`}},
		{name: "delims equal to the default", content: "{{datacenter}}", delims: []string{"{{", "}}"}, want: "ams1"},
		{name: "in-template delimiter change", content: "{{=<% %>=}}<%datacenter%> {{x}}", want: "ams1 {{x}}"},
		{name: "in-template change from custom delims", content: "[[=<% %>=]]<%datacenter%> [[x]]", delims: []string{"[[", "]]"}, want: "ams1 [[x]]"},
		{name: "unclosed section", content: "a\nb\n{{#enabled}}x\n", wantErr: []string{"malformed template", "line 3", "no closing tag"}},
		{name: "unclosed tag", content: "a: {{datacenter\n", wantErr: []string{"malformed template", "unmatched open tag"}},
		{name: "unmatched close", content: "{{/enabled}}", wantErr: []string{"malformed template", "unmatched close tag"}},
		{name: "interleaved close", content: "{{#enabled}}{{/disabled}}", wantErr: []string{"malformed template", "interleaved closing tag"}},
		{name: "empty tag", content: "{{ }}", wantErr: []string{"malformed template", "empty tag"}},
		{name: "malformed with delims keeps the line", content: "a\n[[#enabled]]", delims: []string{"[[", "]]"}, wantErr: []string{"malformed template", "line 2"}},
		{name: "no tags LF", content: "a: 1\nb: {x}\n", want: "a: 1\nb: {x}\n"},
		{name: "no tags CRLF", content: "a: 1\r\nb: 2\r\n", want: "a: 1\r\nb: 2\r\n"},
		{name: "no tags no final newline", content: "a: 1", want: "a: 1"},
		{name: "no tags empty", content: "", want: ""},
		{name: "no tags with custom delims", content: "x: {{ $labels.job }}\r\n", delims: []string{"[[", "]]"}, want: "x: {{ $labels.job }}\r\n"},
		{name: "partial", content: "{{> common}}", wantErr: []string{`partial "common"`, "not supported"}},
		{name: "partial in a section not rendered", content: "{{#disabled}}{{> common}}{{/disabled}}", wantErr: []string{"partials are not supported"}},
		{name: "delims one element", content: "x", delims: []string{"[["}, wantErr: []string{"two strings"}},
		{name: "delims three elements", content: "x", delims: []string{"[[", "]]", "!!"}, wantErr: []string{"two strings"}},
		{name: "delims empty strings", content: "x", delims: []string{"", ""}, wantErr: []string{"empty"}},
		{name: "delims one empty", content: "x", delims: []string{"[[", ""}, wantErr: []string{"empty"}},
		{name: "delims with a blank", content: "x", delims: []string{"[ [", "]]"}, wantErr: []string{`"[ ["`, "whitespace"}},
		{name: "delims with equals", content: "x", delims: []string{"[=", "]]"}, wantErr: []string{`"[="`}},
		{name: "delims with closing braces", content: "x", delims: []string{"<<", "}}"}, wantErr: []string{`"}}"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Render([]byte(tt.content), data, tt.delims)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("Render() = %q, want an error containing %q", got, tt.wantErr)
				}
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("Render() error %q does not contain %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Render() error: %v", err)
			}
			if !bytes.Equal(got, []byte(tt.want)) {
				t.Errorf("Render() = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestRenderPartialReadsNoFile makes sure a partial naming an existing file
// is refused rather than read (the library's default provider reads files).
func TestRenderPartialReadsNoFile(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("TOPSECRET"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		content string
	}{
		{name: "absolute path", content: "x{{> " + secret + "}}"},
		{name: "absolute path in a section", content: "{{#enabled}}{{>" + secret + "}}{{/enabled}}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Render([]byte(tt.content), renderTestData(), nil)
			if err == nil || !strings.Contains(err.Error(), "partials are not supported") {
				t.Fatalf("Render() = %q, %v; want the partial refused", got, err)
			}
			if bytes.Contains(got, []byte("TOPSECRET")) || strings.Contains(err.Error(), "TOPSECRET") {
				t.Errorf("partial file content leaked: %q, %v", got, err)
			}
		})
	}
}

// TestRenderSetsLibraryStrict checks the second line of defence: once Render
// has parsed a template, the library itself fails on a missing variable.
func TestRenderSetsLibraryStrict(t *testing.T) {
	t.Run("after a render with tags", func(t *testing.T) {
		if _, err := Render([]byte("{{manager}}"), renderTestData(), nil); err != nil {
			t.Fatal(err)
		}
		if mustache.AllowMissingVariables {
			t.Error("mustache.AllowMissingVariables is still true")
		}
		if _, err := mustache.Render("{{nope}}", map[string]any{}); err == nil {
			t.Error("the library rendered a missing variable without error")
		}
	})
}

// TestRenderAliasing: a rendered template is a new slice; content without
// tags comes back as it is, and appending to it never writes into the input.
func TestRenderAliasing(t *testing.T) {
	tests := []struct {
		name, content string
		same          bool
	}{
		{name: "no tags", content: "a: 1\n", same: true},
		{name: "tags", content: "a: {{port}}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := make([]byte, len(tt.content), len(tt.content)+8)
			copy(in, tt.content)
			out, err := Render(in, renderTestData(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if same := &out[0] == &in[0]; same != tt.same {
				t.Errorf("result shares the input's memory: %v, want %v", same, tt.same)
			}
			_ = append(out, "more"...)
			if extra := in[len(in):cap(in)]; string(extra[:4]) == "more" {
				t.Error("appending to the result wrote into the input's spare capacity")
			}
			if string(in) != tt.content {
				t.Errorf("input changed to %q", in)
			}
		})
	}
}

func TestRenderConcurrent(t *testing.T) {
	const goroutines, rounds = 8, 40
	tests := []struct {
		name, tmpl string
		delims     []string
	}{
		{name: "default delims", tmpl: "m: {{manager}}\n{{#jobs}}- {{name}}:{{port}}@{{host.hostname}}\n{{/jobs}}"},
		{name: "custom delims", delims: []string{"[[", "]]"}, tmpl: "m: [[manager]]\n[[#jobs]]- [[name]]:[[port]]@[[host.hostname]]\n[[/jobs]]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Go(func() {
					mgr := fmt.Sprintf("m%d", g)
					data := TemplateData(map[string]any{
						"jobs": []any{map[string]any{"name": mgr, "port": int64(g)}},
					}, mgr, nil, "h")
					want := fmt.Sprintf("m: %s\n- %s:%d@h\n", mgr, mgr, g)
					for r := range rounds {
						if g%2 == 1 && r%4 == 0 {
							// strict failures interleaved with successes
							if _, err := Render([]byte("{{missing}}[[missing]]"), data, tt.delims); err == nil {
								t.Errorf("goroutine %d: missing variable rendered without error", g)
							}
							continue
						}
						got, err := Render([]byte(tt.tmpl), data, tt.delims)
						if err != nil {
							t.Errorf("goroutine %d: %v", g, err)
							return
						}
						if string(got) != want {
							t.Errorf("goroutine %d: got %q, want %q", g, got, want)
							return
						}
					}
				})
			}
			wg.Wait()
		})
	}
}

// renderBenchTemplate builds a Prometheus-like YAML template of about
// 200 KiB, with variables, dotted names and a list section.
func renderBenchTemplate() []byte {
	var b strings.Builder
	b.WriteString("global:\n  scrape_interval: 15s\n  external_labels:\n    dc: {{datacenter}}\n    host: {{host.hostname}}\n    manager: {{manager}}\nscrape_configs:\n")
	for i := 0; b.Len() < 200*1024; i++ {
		fmt.Fprintf(&b, "  - job_name: job_%d_{{datacenter}}\n", i)
		b.WriteString("    scheme: {{scheme}}\n    metrics_path: /metrics\n    static_configs:\n      - targets:\n")
		b.WriteString("{{#targets}}\n          - {{.}}\n{{/targets}}\n")
		b.WriteString("        labels:\n          role: {{role}}\n          env: \"{{env.DEPLOY}}\"\n")
	}
	return []byte(b.String())
}

func renderBenchData() map[string]any {
	targets := make([]any, 5)
	for i := range targets {
		targets[i] = fmt.Sprintf("10.0.0.%d:9100", i+1)
	}
	return TemplateData(map[string]any{
		"datacenter": "ams1", "scheme": "https", "role": "edge", "targets": targets,
	}, "prometheus", []string{"DEPLOY=prod"}, "web-01")
}

// TestRenderValidateLarge checks that the benchmark's template renders to
// valid YAML, so the benchmark measures the success path.
func TestRenderValidateLarge(t *testing.T) {
	tmpl := renderBenchTemplate()
	out, err := Render(tmpl, renderBenchData(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate("yml", out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"dc: ams1\n", "host: web-01\n", "          - 10.0.0.5:9100\n", "env: \"prod\"\n"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("output lacks %q", want)
		}
	}
	if bytes.Contains(out, []byte("{{")) {
		t.Error("output still holds a tag")
	}
}

func BenchmarkRenderValidate(b *testing.B) {
	tmpl := renderBenchTemplate()
	data := renderBenchData()
	b.SetBytes(int64(len(tmpl)))
	b.ReportAllocs()
	for b.Loop() {
		out, err := Render(tmpl, data, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := Validate("yml", out); err != nil {
			b.Fatal(err)
		}
	}
}

// TestEnvNames: the variables a template may use are those it names, in
// any form mustache can name them; the others cannot change its output.
func TestEnvNames(t *testing.T) {
	environ := []string{"HOME=/root", "SITE=a", "INVOCATION_ID=9", "PATH=/bin", "=odd", "NOEQUALS", "SITE=shadowed"}
	cases := map[string]struct {
		tmpl string
		want []string
	}{
		"variable":           {"home: {{env.HOME}}", []string{"HOME"}},
		"section":            {"{{#env}}{{SITE}}{{/env}}", []string{"SITE"}},
		"other delimiters":   {"{{=<% %>=}}<% env.PATH %>", []string{"PATH"}},
		"two, each once":     {"{{env.SITE}} {{env.HOME}} {{env.SITE}}", []string{"HOME", "SITE"}},
		"none":               {"static: true", nil},
		"name as plain text": {"path: /usr/bin # PATH", []string{"PATH"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := EnvNames([]byte(tc.tmpl), environ); !slices.Equal(got, tc.want) {
				t.Errorf("EnvNames(%q) = %q, want %q", tc.tmpl, got, tc.want)
			}
		})
	}
}
