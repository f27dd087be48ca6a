package casefile

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		line string
		want []string
	}{
		{"a | b | c", []string{"a", "b", "c"}},
		{"  a|b  ", []string{"a", "b"}},
		{"a |  | c", []string{"a", "", "c"}},
		{"a | ", []string{"a", ""}},
		{`a | "  " | "x|y" | error: "q"`, []string{"a", "  ", "x|y", `error: "q"`}},
		{`a | "\t"`, []string{"a", "\t"}},
	} {
		got, err := split(tc.line)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("split(%q) = %q, %v; want %q", tc.line, got, err, tc.want)
		}
	}
	for _, bad := range []string{`a | "open`, `a | "x" y`} {
		if got, err := split(bad); err == nil {
			t.Errorf("split(%q) = %q, want an error", bad, got)
		}
	}
}

func TestLoad(t *testing.T) {
	p := filepath.Join(t.TempDir(), "cases.txt")
	text := "# comment\n\none | 1 | x\n  # indented comment\ntwo | 2 | error: no\n"
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	got := Load(t, p, 2)
	want := []Case{{Name: "one", Fields: []string{"1", "x"}, Line: 3}, {Name: "two", Fields: []string{"2", "error: no"}, Line: 5}}
	if !slices.EqualFunc(got, want, func(a, b Case) bool {
		return a.Name == b.Name && a.Line == b.Line && slices.Equal(a.Fields, b.Fields)
	}) {
		t.Errorf("Load = %+v, want %+v", got, want)
	}
}

func TestCheck(t *testing.T) {
	if text, ok := WantErr("error: boom"); !ok || text != "boom" {
		t.Errorf(`WantErr("error: boom") = %q, %v`, text, ok)
	}
	if _, ok := WantErr("boom"); ok {
		t.Error(`WantErr("boom") wants an error`)
	}
	if Check(t, "x", nil, "x", "f()") {
		t.Error("Check of a value wanted an error")
	}
	if !Check(t, "", errors.New("it went boom"), "error: boom", "f(%d)", 1) {
		t.Error("Check of an error did not want one")
	}
	if CheckErr(t, nil, "", "f()") {
		t.Error("CheckErr of no error wanted one")
	}
	if !CheckErr(t, errors.New("it went boom"), "boom", "f()") {
		t.Error("CheckErr of an error did not want one")
	}
}
