package textfile_test

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/butler-sre/butler/internal/envtest"
	"github.com/butler-sre/butler/internal/fstest"
	"github.com/butler-sre/butler/internal/textfiletest"
	"github.com/butler-sre/butler/pipeline/golden"
	"github.com/butler-sre/butler/textfile"
)

// goldenDir holds the expected output of each golden case.
var goldenDir = filepath.Join("..", "testdata", "textfile")

// goldenCase is an input built in Go and the name of its expected output file.
type goldenCase struct {
	name string
	fams []textfile.Family
}

func goldenCases() []goldenCase {
	return []goldenCase{
		{"ordering", []textfile.Family{
			{Name: "butler_write", Help: "1 when the last write succeeded.", Type: textfile.Gauge, Series: []textfile.Series{
				{Labels: textfile.L("manager", "prometheus", "file", "rules/b.yml"), Value: 1},
				{Labels: textfile.L("manager", "alertmanager", "file", "alertmanager.yml"), Value: 0},
				{Labels: textfile.L("file", "rules/a.yml", "manager", "prometheus"), Value: 1},
				{Labels: textfile.L("manager", "prometheus", "file", "prometheus.yml"), Value: 1},
			}},
			{Name: "butler_run_success", Help: "1 when this run exited 0.", Type: textfile.Gauge, Series: []textfile.Series{
				{Value: 1},
			}},
			{Name: "butler_cfg_render", Help: "1 when the rendered content is valid for its method.", Type: textfile.Gauge, Series: []textfile.Series{
				{Labels: textfile.L("method", "yml", "manager", "prometheus", "file", "prometheus.yml"), Value: 1},
				{Labels: textfile.L("method", "json", "manager", "grafana", "file", "dash.json"), Value: 0},
			}},
			{Name: "butler_manager_success", Help: "1 when the manager is in step after this run.", Type: textfile.Gauge, Series: []textfile.Series{
				{Labels: textfile.L("manager", "prometheus"), Value: 1},
				{Labels: textfile.L("manager", "alertmanager"), Value: 0},
				{Labels: textfile.L("manager", "Zed"), Value: 1},
			}},
		}},
		{"counters_and_gauges", []textfile.Family{
			{Name: "butler_remote_fetches_total", Help: "Fetches attempted.", Type: textfile.Counter, Series: []textfile.Series{
				{Labels: textfile.L("manager", "prometheus", "file", "prometheus.yml"), Value: 1234},
				{Labels: textfile.L("manager", "prometheus", "file", "rules.yml"), Value: 0},
			}},
			{Name: "butler_reload_failures_total", Help: "Reloads that failed.", Type: textfile.Counter, Series: []textfile.Series{
				{Labels: textfile.L("manager", "prometheus"), Value: 3},
			}},
			{Name: "butler_remote_status", Help: "Response code of the last fetch.", Type: textfile.Gauge, Series: []textfile.Series{
				{Labels: textfile.L("manager", "prometheus", "file", "prometheus.yml"), Value: 200},
				{Labels: textfile.L("manager", "prometheus", "file", "rules.yml"), Value: 404},
			}},
			{Name: "butler_build_info", Help: "Build information; always 1.", Type: textfile.Gauge, Series: []textfile.Series{
				{Labels: textfile.L("version", "1.0.0", "revision", "", "goversion", "go1.26.8"), Value: 1},
			}},
		}},
		{"escaping", []textfile.Family{
			{Name: "butler_write", Help: "Help with a backslash \\ and a\nnewline.", Type: textfile.Gauge, Series: []textfile.Series{
				{Labels: textfile.L("manager", "m", "file", `say "hi".yml`), Value: 1},
				{Labels: textfile.L("manager", "m", "file", `C:\conf\x.yml`), Value: 1},
				{Labels: textfile.L("manager", "m", "file", "two\nlines.yml"), Value: 0},
				{Labels: textfile.L("manager", "m", "file", "ünïcode {x=1}, #.yml"), Value: 1},
			}},
		}},
		{"empty_family", []textfile.Family{
			{Name: "butler_lkg", Help: "Unix time the last-known-good copy was stored.", Type: textfile.Gauge},
			{Name: "butler_reloads_total", Help: "Reloads attempted.", Type: textfile.Counter, Series: []textfile.Series{}},
			{Name: "butler_run_success", Help: "1 when this run exited 0.", Type: textfile.Gauge, Series: []textfile.Series{{Value: 0}}},
		}},
		{"large_values", []textfile.Family{
			{Name: "butler_remote_time", Help: "Unix time of the last successful fetch.", Type: textfile.Gauge, Series: []textfile.Series{
				{Labels: textfile.L("manager", "a"), Value: 1763780000},
				{Labels: textfile.L("manager", "b"), Value: 1763780123},
				{Labels: textfile.L("manager", "c"), Value: 1763780123.456789},
				{Labels: textfile.L("manager", "d"), Value: 1 << 53},
				{Labels: textfile.L("manager", "e"), Value: 0.1},
				{Labels: textfile.L("manager", "f"), Value: -1.5e-9},
				{Labels: textfile.L("manager", "g"), Value: math.MaxFloat64},
			}},
		}},
	}
}

func TestEncodeGolden(t *testing.T) {
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := textfile.Encode(&buf, tc.fams); err != nil {
				t.Fatalf("Encode: %v", err)
			}
			golden.Assert(t, filepath.Join(goldenDir, tc.name+".prom"), buf.Bytes())
			if !strings.HasSuffix(buf.String(), "\n") {
				t.Error("output does not end in a newline")
			}
		})
	}
}

// TestEncodeDoesNotModifyInput guards the caller's slices against in-place sorting.
func TestEncodeDoesNotModifyInput(t *testing.T) {
	fams := goldenCases()[0].fams
	before := fmt.Sprint(fams)
	if err := textfile.Encode(&bytes.Buffer{}, fams); err != nil {
		t.Fatal(err)
	}
	if after := fmt.Sprint(fams); after != before {
		t.Errorf("Encode reordered its input:\nbefore %s\nafter  %s", before, after)
	}
}

// TestEncodeValuesExact proves that values, Unix times above all, are printed
// in the shortest form that reads back to the same float64.
func TestEncodeValuesExact(t *testing.T) {
	tests := []struct {
		name  string
		value float64
		text  string
	}{
		{"unix time", 1763780000, "1.76378e+09"},
		{"unix time with seconds", 1763780123, "1.763780123e+09"},
		{"unix time with fraction", 1763780123.456789, "1.763780123456789e+09"},
		{"2^53", 1 << 53, "9.007199254740992e+15"},
		{"small integer", 404, "404"},
		{"zero", 0, "0"},
		{"tenth", 0.1, "0.1"},
		{"negative tiny", -1.5e-9, "-1.5e-09"},
		{"largest float", math.MaxFloat64, "1.7976931348623157e+308"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fams := []textfile.Family{{Name: "m", Help: "h", Type: textfile.Gauge, Series: []textfile.Series{{Value: tt.value}}}}
			var buf bytes.Buffer
			if err := textfile.Encode(&buf, fams); err != nil {
				t.Fatal(err)
			}
			wantLine := "\nm " + tt.text + "\n"
			if !strings.Contains(buf.String(), wantLine) {
				t.Errorf("output %q does not contain %q", buf.String(), wantLine)
			}
			path := filepath.Join(t.TempDir(), "m.prom")
			if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			back, err := textfiletest.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := back[0].Value(nil)
			if !ok || math.Float64bits(got) != math.Float64bits(tt.value) {
				t.Errorf("read back %v (found %v), want exactly %v", got, ok, tt.value)
			}
		})
	}
}

// invalidCases are inputs Encode and WriteFile must refuse.
func invalidCases() []struct {
	name    string
	fams    []textfile.Family
	wantErr string
} {
	gauge := func(name string, series ...textfile.Series) textfile.Family {
		return textfile.Family{Name: name, Help: "h", Type: textfile.Gauge, Series: series}
	}
	one := textfile.Series{Value: 1}
	labelled := func(kv ...string) textfile.Series { return textfile.Series{Labels: textfile.L(kv...), Value: 1} }
	return []struct {
		name    string
		fams    []textfile.Family
		wantErr string
	}{
		{"metric name with dash", []textfile.Family{gauge("butler-write", one)}, `invalid metric name "butler-write"`},
		{"metric name starting with digit", []textfile.Family{gauge("1m", one)}, `invalid metric name "1m"`},
		{"metric name utf-8", []textfile.Family{gauge("bütler", one)}, `invalid metric name "bütler"`},
		{"empty metric name", []textfile.Family{gauge("", one)}, `invalid metric name ""`},
		{"invalid name in empty family", []textfile.Family{gauge("a.b")}, `invalid metric name "a.b"`},
		{"label name with colon", []textfile.Family{gauge("m", labelled("a:b", "x"))}, `invalid label name "a:b"`},
		{"label name with dot", []textfile.Family{gauge("m", labelled("a.b", "x"))}, `invalid label name "a.b"`},
		{"reserved label name", []textfile.Family{gauge("m", labelled("__name__", "x"))}, `reserved label name "__name__"`},
		{"label name twice", []textfile.Family{gauge("m", labelled("a", "1", "b", "2", "a", "3"))}, `label "a" given twice`},
		{"duplicate family", []textfile.Family{gauge("m", one), gauge("n", one), gauge("m", labelled("a", "1"))}, "duplicate metric family m"},
		{"duplicate family one empty", []textfile.Family{gauge("m", one), gauge("m")}, "duplicate metric family m"},
		{"duplicate series no labels", []textfile.Family{gauge("m", one, one)}, "metric m: duplicate series {}"},
		{"duplicate series", []textfile.Family{gauge("m", labelled("a", "1", "b", "2"), labelled("a", "2"), labelled("b", "2", "a", "1"))},
			`metric m: duplicate series {a="1",b="2"}`},
		{"duplicate series by empty label value", []textfile.Family{gauge("m", labelled("a", "1", "b", ""), labelled("a", "1"))},
			`metric m: duplicate series {a="1"}`},
		{"empty help", []textfile.Family{{Name: "m", Type: textfile.Gauge, Series: []textfile.Series{one}}}, "metric m: empty help text"},
		{"zero type", []textfile.Family{{Name: "m", Help: "h", Series: []textfile.Series{one}}}, "metric m: unsupported type Type(0)"},
	}
}

// TestEncodeKeepsLabels checks that Encode sorts labels for its output only:
// series may share one Labels, which it never reorders.
func TestEncodeKeepsLabels(t *testing.T) {
	shared := textfile.L("manager", "m", "file", "a.yml")
	fams := []textfile.Family{
		{Name: "x", Help: "h", Type: textfile.Gauge, Series: []textfile.Series{{Labels: shared, Value: 1}}},
		{Name: "y", Help: "h", Type: textfile.Gauge, Series: []textfile.Series{{Labels: shared, Value: 2}}},
	}
	var buf bytes.Buffer
	if err := textfile.Encode(&buf, fams); err != nil {
		t.Fatal(err)
	}
	if want := textfile.L("manager", "m", "file", "a.yml"); !slices.Equal(shared, want) {
		t.Errorf("labels after Encode = %v, want %v as given", shared, want)
	}
	if !strings.Contains(buf.String(), `x{file="a.yml",manager="m"} 1`) {
		t.Errorf("Encode wrote\n%s\nwant the labels sorted by name", buf.String())
	}
}

func TestEncodeErrors(t *testing.T) {
	for _, tc := range invalidCases() {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			// A valid family first, so a partial write would show.
			fams := append([]textfile.Family{{Name: "aaa", Help: "h", Type: textfile.Gauge, Series: []textfile.Series{{Value: 1}}}}, tc.fams...)
			err := textfile.Encode(&buf, fams)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Encode error = %v, want one containing %q", err, tc.wantErr)
			}
			if buf.Len() != 0 {
				t.Errorf("Encode wrote %q despite the error", buf.String())
			}
		})
	}
}

func TestWriteFileErrorsKeepOldFile(t *testing.T) {
	for _, tc := range invalidCases() {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "butler.prom")
			old := []byte("# HELP old h\n# TYPE old gauge\nold 1\n")
			if err := os.WriteFile(path, old, 0o644); err != nil {
				t.Fatal(err)
			}
			err := textfile.WriteFile(path, tc.fams)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), path) {
				t.Fatalf("WriteFile error = %v, want one naming %s and containing %q", err, path, tc.wantErr)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, old) {
				t.Errorf("old file changed to %q", got)
			}
			assertOnlyFiles(t, dir, "butler.prom")
		})
	}
}

func TestWriteFileThenReadFile(t *testing.T) {
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "butler.prom")
			if err := textfile.WriteFile(path, tc.fams); err != nil {
				t.Fatal(err)
			}
			got, err := textfiletest.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			want, err := textfile.Check(tc.fams)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("read back\n%v\nwant\n%v", got, want)
			}
		})
	}
}

func TestWriteFile(t *testing.T) {
	fams := []textfile.Family{{Name: "butler_run_success", Help: "h", Type: textfile.Gauge, Series: []textfile.Series{{Value: 1}}}}
	want := "# HELP butler_run_success h\n# TYPE butler_run_success gauge\nbutler_run_success 1\n"

	t.Run("replaces an existing file and leaves nothing else", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "butler.prom")
		if err := os.WriteFile(path, []byte("old content that is longer than the new one\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if err := textfile.WriteFile(path, fams); err != nil {
				t.Fatal(err)
			}
		}
		assertFile(t, path, want, 0o644)
		assertOnlyFiles(t, dir, "butler.prom")
	})
	t.Run("creates a missing directory", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "a", "b")
		path := filepath.Join(dir, "butler.prom")
		if err := textfile.WriteFile(path, fams); err != nil {
			t.Fatal(err)
		}
		assertFile(t, path, want, 0o644)
		info, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if !info.IsDir() {
			t.Errorf("%s is not a directory", dir)
		}
	})
	t.Run("failed rename removes the temporary file", func(t *testing.T) {
		dir := t.TempDir()
		// A non-empty directory where the file should go: rename fails late.
		path := filepath.Join(dir, "butler.prom")
		if err := os.MkdirAll(filepath.Join(path, "keep"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := textfile.WriteFile(path, fams); err == nil {
			t.Fatal("WriteFile over a directory succeeded")
		}
		assertOnlyFiles(t, dir, "butler.prom")
	})
	t.Run("no families gives an empty file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "butler.prom")
		if err := textfile.WriteFile(path, nil); err != nil {
			t.Fatal(err)
		}
		assertFile(t, path, "", 0o644)
	})
}

func TestFindAndValue(t *testing.T) {
	fams := goldenCases()[1].fams
	status, ok := textfile.Find(fams, "butler_remote_status")
	if !ok || status.Name != "butler_remote_status" {
		t.Fatalf("Find = %v, %v", status.Name, ok)
	}
	if _, ok := textfile.Find(fams, "butler_nothing"); ok {
		t.Error("Find found a family that does not exist")
	}
	info, _ := textfile.Find(fams, "butler_build_info")
	tests := []struct {
		name   string
		fam    textfile.Family
		labels textfile.Labels
		want   float64
		found  bool
	}{
		{"exact labels", status, textfile.L("manager", "prometheus", "file", "rules.yml"), 404, true},
		{"other series", status, textfile.L("file", "prometheus.yml", "manager", "prometheus"), 200, true},
		{"subset of labels", status, textfile.L("manager", "prometheus"), 0, false},
		{"extra label", status, textfile.L("manager", "prometheus", "file", "rules.yml", "x", "1"), 0, false},
		{"no labels", status, nil, 0, false},
		{"empty value same as absent", info, textfile.L("version", "1.0.0", "goversion", "go1.26.8"), 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, found := tt.fam.Value(tt.labels)
			if got != tt.want || found != tt.found {
				t.Errorf("Value(%v) = %v, %v, want %v, %v", tt.labels, got, found, tt.want, tt.found)
			}
		})
	}
}

// TestPromtoolCheckMetrics lints every golden file the way node_exporter
// lints its fixtures: exit 0 and nothing to report.
func TestPromtoolCheckMetrics(t *testing.T) {
	promtool := envtest.Program(t, "promtool", "the Debian package prometheus has it")
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			f, err := os.Open(filepath.Join(goldenDir, tc.name+".prom"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			cmd := exec.Command(promtool, "check", "metrics")
			cmd.Stdin = f
			out, err := cmd.CombinedOutput()
			if err != nil || len(out) != 0 {
				t.Errorf("promtool check metrics: %v, output %q", err, out)
			}
		})
	}
	t.Run("lint finding is reported", func(t *testing.T) {
		// Guards the test itself: promtool must complain about a counter without _total.
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader("# HELP m h\n# TYPE m counter\nm 1\n")
		if out, err := cmd.CombinedOutput(); err == nil || len(out) == 0 {
			t.Errorf("promtool accepted a counter without _total: %v, output %q", err, out)
		}
	})
}

// BenchmarkEncode encodes the file of 50 managers with 20 files each.
func BenchmarkEncode(b *testing.B) {
	fileFamilies := []string{"butler_remote_status", "butler_remote_time", "butler_cfg_mustache", "butler_cfg_render", "butler_write"}
	managerFamilies := []string{"butler_reload_status", "butler_reload_time", "butler_lkg", "butler_manager_success"}
	var fams []textfile.Family
	for _, name := range fileFamilies {
		f := textfile.Family{Name: name, Help: "h", Type: textfile.Gauge}
		for m := range 50 {
			for i := range 20 {
				labels := textfile.L("manager", fmt.Sprintf("manager%02d", m), "file", fmt.Sprintf("/etc/app/conf.d/file%02d.yml", i))
				f.Series = append(f.Series, textfile.Series{Labels: labels, Value: 1763780000 + float64(i)})
			}
		}
		fams = append(fams, f)
	}
	for _, name := range managerFamilies {
		f := textfile.Family{Name: name, Help: "h", Type: textfile.Gauge}
		for m := range 50 {
			f.Series = append(f.Series, textfile.Series{Labels: textfile.L("manager", "manager"+strconv.Itoa(m)), Value: 200})
		}
		fams = append(fams, f)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := textfile.Encode(&bytes.Buffer{}, fams); err != nil {
			b.Fatal(err)
		}
	}
}

// assertFile checks a file's content and permission bits.
func assertFile(t *testing.T, path, want string, mode os.FileMode) {
	t.Helper()
	got, gotMode := fstest.Read(t, path)
	if got != want {
		t.Errorf("%s = %q, want %q", path, got, want)
	}
	if gotMode != mode {
		t.Errorf("%s mode = %v, want %v", path, gotMode, mode)
	}
}

// assertOnlyFiles checks that dir holds exactly the named entries: no
// temporary files were left behind.
func assertOnlyFiles(t *testing.T, dir string, names ...string) {
	t.Helper()
	if got := fstest.Names(t, dir); !slices.Equal(got, names) {
		t.Errorf("%s holds %v, want %v", dir, got, names)
	}
}
