package textfiletest

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/butler-sre/butler/internal/fstest"
	"github.com/butler-sre/butler/textfile"
)

// TestReadFile checks what a file reads back as: the families sorted as
// Encode writes them, escapes undone, no HELP line an empty Help, and nil
// Labels for a series without labels.
func TestReadFile(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    []textfile.Family
	}{
		{"empty file", "", []textfile.Family{}},
		{"no help text", "# TYPE m gauge\nm 1\n", []textfile.Family{
			{Name: "m", Type: textfile.Gauge, Series: []textfile.Series{{Value: 1}}},
		}},
		{"sorted as Encode sorts", "# HELP z h\n# TYPE z counter\nz{b=\"2\",a=\"1\"} 3\nz{a=\"0\"} 4\n# HELP a h\n# TYPE a gauge\na 1\n",
			[]textfile.Family{
				{Name: "a", Help: "h", Type: textfile.Gauge, Series: []textfile.Series{{Value: 1}}},
				{Name: "z", Help: "h", Type: textfile.Counter, Series: []textfile.Series{
					{Labels: textfile.L("a", "0"), Value: 4},
					{Labels: textfile.L("a", "1", "b", "2"), Value: 3},
				}},
			}},
		{"escapes", "# HELP m back\\\\slash\\nnewline\n# TYPE m gauge\nm{f=\"say \\\"hi\\\"\\n\\\\\"} 1\n", []textfile.Family{
			{Name: "m", Help: "back\\slash\nnewline", Type: textfile.Gauge, Series: []textfile.Series{
				{Labels: textfile.L("f", "say \"hi\"\n\\"), Value: 1},
			}},
		}},
		{"infinities", "# HELP m h\n# TYPE m gauge\nm{s=\"+\"} +Inf\nm{s=\"-\"} -Inf\n", []textfile.Family{
			{Name: "m", Help: "h", Type: textfile.Gauge, Series: []textfile.Series{
				{Labels: textfile.L("s", "+"), Value: math.Inf(1)},
				{Labels: textfile.L("s", "-"), Value: math.Inf(-1)},
			}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x.prom")
			fstest.WriteFile(t, path, tt.content, 0o644)
			got, err := ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ReadFile = %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestReadFileErrors(t *testing.T) {
	tests := []struct {
		name    string
		content string
		wantErr string
	}{
		{"malformed", "# TYPE m gauge\nm{a=1} 1\n", "parse metrics"},
		{"untyped", "m 1\n", "unsupported type UNTYPED"},
		{"summary", "# TYPE m summary\nm_sum 1\nm_count 1\n", "unsupported type SUMMARY"},
		{"timestamp", "# TYPE m gauge\nm 1 1763780000000\n", "sample timestamps are not allowed"},
		{"duplicate series", "# TYPE m gauge\nm{a=\"1\"} 1\nm{a=\"1\"} 2\n", `duplicate series {a="1"}`},
		{"reserved label", "# TYPE m gauge\nm{__x=\"1\"} 1\n", `reserved label name "__x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x.prom")
			fstest.WriteFile(t, path, tt.content, 0o644)
			_, err := ReadFile(path)
			if err == nil || !strings.HasPrefix(err.Error(), "parse metrics "+path+": ") || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ReadFile error = %v, want one starting \"parse metrics %s: \" and containing %q", err, path, tt.wantErr)
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		_, err := ReadFile(filepath.Join(t.TempDir(), "none.prom"))
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("ReadFile error = %v, want os.ErrNotExist", err)
		}
	})
}
