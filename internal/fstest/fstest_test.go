package fstest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// recorder is a testing.TB that keeps what the helpers report instead of
// failing the test.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// TestCheckers: each checker reports what it is there to notice, and nothing
// when there is nothing to notice.
func TestCheckers(t *testing.T) {
	isTemp := func(name string) (string, bool) { return "", strings.HasSuffix(name, ".tmp1") }
	tests := []struct {
		name   string
		change func(t *testing.T, dir string) // between the listing and the checks
		check  func(tb testing.TB, dir string, before map[string]string)
		want   []string // substrings of the errors, in order; none when empty
	}{
		{name: "same tree", check: func(tb testing.TB, dir string, before map[string]string) { SameTree(tb, dir, before) }},
		{name: "rewritten file", change: func(t *testing.T, dir string) { WriteFile(t, filepath.Join(dir, "a"), "b", 0o644) },
			check: func(tb testing.TB, dir string, before map[string]string) { SameTree(tb, dir, before) },
			want:  []string{`a: was "file -rw-r--r-- \"a\""`}},
		{name: "mode changed", change: func(t *testing.T, dir string) { WriteFile(t, filepath.Join(dir, "a"), "a", 0o600) },
			check: func(tb testing.TB, dir string, before map[string]string) { SameTree(tb, dir, before) },
			want:  []string{"-rw-------"}},
		{name: "new entry", change: func(t *testing.T, dir string) { WriteFile(t, filepath.Join(dir, "sub", "n"), "", 0o644) },
			check: func(tb testing.TB, dir string, before map[string]string) { SameTree(tb, dir, before) },
			want:  []string{"sub appeared", filepath.Join("sub", "n") + " appeared"}},
		{name: "removed entry", change: func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, "a")); err != nil {
				t.Fatal(err)
			}
		}, check: func(tb testing.TB, dir string, before map[string]string) { SameTree(tb, dir, before) },
			want: []string{`now ""`}},
		{name: "no temporary", check: func(tb testing.TB, dir string, _ map[string]string) { NoTemp(tb, dir, isTemp) }},
		{name: "temporary left", change: func(t *testing.T, dir string) { WriteFile(t, filepath.Join(dir, "d", ".a.tmp1"), "", 0o600) },
			check: func(tb testing.TB, dir string, _ map[string]string) { NoTemp(tb, dir, isTemp) },
			want:  []string{filepath.Join("d", ".a.tmp1")}},
		{name: "missing", check: func(tb testing.TB, dir string, _ map[string]string) { Missing(tb, filepath.Join(dir, "b")) }},
		{name: "not missing", check: func(tb testing.TB, dir string, _ map[string]string) { Missing(tb, filepath.Join(dir, "a")) },
			want: []string{"want it absent"}},
		{name: "directory mode", change: func(t *testing.T, dir string) { Mkdir(t, filepath.Join(dir, "d"), 0o700) },
			check: func(tb testing.TB, dir string, _ map[string]string) { DirMode(tb, filepath.Join(dir, "d"), 0o700) }},
		{name: "not a directory of that mode", check: func(tb testing.TB, dir string, _ map[string]string) { DirMode(tb, filepath.Join(dir, "a"), 0o644) },
			want: []string{"want a directory of mode -rw-r--r--"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			WriteFile(t, filepath.Join(dir, "a"), "a", 0o644)
			before := Tree(t, dir)
			if tt.change != nil {
				tt.change(t, dir)
			}
			r := &recorder{TB: t}
			tt.check(r, dir, before)
			if len(r.errs) != len(tt.want) {
				t.Fatalf("reported %q, want %d errors containing %q", r.errs, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(r.errs[i], w) {
					t.Errorf("error %q does not contain %q", r.errs[i], w)
				}
			}
		})
	}
}

// TestWriteFileRead: WriteFile sets the mode exactly, special bits included,
// and Read, Exists, Inode and Names see the file; Symlink makes a link.
func TestWriteFileRead(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x", "y", "f")
	WriteFile(t, p, "data", os.ModeSetgid|0o750)
	if data, mode := Read(t, p); data != "data" || mode != os.ModeSetgid|0o750 {
		t.Errorf("Read = %q, %v; want %q, %v", data, mode, "data", os.ModeSetgid|0o750)
	}
	if !Exists(t, p) || Exists(t, filepath.Join(dir, "none")) {
		t.Error("Exists is wrong about f or none")
	}
	if err := os.Link(p, filepath.Join(dir, "x", "hard")); err != nil {
		t.Fatal(err)
	}
	if Inode(t, p) != Inode(t, filepath.Join(dir, "x", "hard")) || Inode(t, p) == Inode(t, dir) {
		t.Error("Inode does not tell files apart")
	}
	if got := fmt.Sprint(Names(t, filepath.Join(dir, "x"))); got != "[hard y]" {
		t.Errorf("Names = %s, want [hard y]", got)
	}
	Symlink(t, "x", filepath.Join(dir, "link"))
	if target, err := os.Readlink(filepath.Join(dir, "link")); err != nil || target != "x" {
		t.Errorf("Readlink = %q, %v; want x", target, err)
	}
}
