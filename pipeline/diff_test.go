package pipeline

import (
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/butler-sre/butler/internal/envtest"
	"github.com/butler-sre/butler/internal/fstest"
	"github.com/butler-sre/butler/pipeline/write"
)

// diffLines joins numbered lines "<prefix>1\n" ... "<prefix>n\n".
func diffLines(prefix string, n int) string {
	var sb strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&sb, "%s%d\n", prefix, i)
	}
	return sb.String()
}

// diffRandom is n lines from a small alphabet, so that lines repeat, with
// CRLF endings now and then and sometimes no final newline.
func diffRandom(rng *rand.Rand, n int) string {
	words := []string{"a", "b", "c", "d", "key: value", "a\r"}
	var sb strings.Builder
	for range n {
		sb.WriteString(words[rng.IntN(len(words))] + "\n")
	}
	s := sb.String()
	if rng.IntN(3) == 0 {
		s = strings.TrimSuffix(s, "\n")
	}
	return s
}

// TestDryRunDiffAppliesWithPatch feeds the dry run's diffs to the real
// patch(1): applied to the file on disk, each gives exactly the rendered file.
func TestDryRunDiffAppliesWithPatch(t *testing.T) {
	patch := envtest.Program(t, "patch", "scripts/test-deps.sh installs it")
	ten, twenty := diffLines("line ", 10), diffLines("line ", 20)
	cases := []struct {
		name     string
		old, new string
		exists   bool
	}{
		{name: "insert at the start", old: ten, new: "new\n" + ten, exists: true},
		{name: "change in the middle", old: twenty, new: strings.Replace(twenty, "line 10\n", "line ten\n", 1), exists: true},
		{name: "two far hunks", old: twenty, new: strings.Replace(strings.Replace(twenty, "line 2\n", "x\n", 1), "line 19\n", "y\n", 1), exists: true},
		{name: "delete everything", old: ten, new: "", exists: true},
		{name: "from empty", old: "", new: ten, exists: true},
		{name: "new file", new: ten},
		{name: "no final newline before", old: "a\nb", new: "a\nc\n", exists: true},
		{name: "no final newline after", old: "a\nb\n", new: "a\nb", exists: true},
		{name: "crlf to lf", old: "a\r\nb\r\n", new: "a\nb\n", exists: true},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 20 {
		cases = append(cases, struct {
			name     string
			old, new string
			exists   bool
		}{name: fmt.Sprintf("random %d", i), old: diffRandom(rng, 30), new: diffRandom(rng, 30), exists: true})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			target := filepath.Join(dir, "conf.yml")
			if tc.exists {
				fstest.WriteFile(t, target, tc.old, 0o644)
			}
			d := unifiedDiff(target, tc.exists, []byte(tc.old), write.File{Path: "conf.yml", Data: []byte(tc.new), Mode: 0o644})
			if tc.exists && tc.old == tc.new {
				return
			}
			if !strings.HasPrefix(d, "--- ") {
				t.Fatalf("not a unified diff:\n%s", d)
			}
			cmd := exec.Command(patch, "--batch", "--forward", "--posix", target)
			cmd.Stdin = strings.NewReader(d)
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("patch: %v\n%s\ndiff:\n%s", err, out, d)
			}
			if got, _ := fstest.Read(t, target); got != tc.new {
				t.Errorf("patched file = %q, want %q\ndiff:\n%s", got, tc.new, d)
			}
		})
	}
}

func TestUnifiedDiffSpecialCases(t *testing.T) {
	cases := []struct {
		name   string
		exists bool
		old    string
		f      write.File
		want   string
	}{
		{name: "only the mode differs", exists: true, old: "a\n", f: write.File{Data: []byte("a\n"), Mode: 0o600},
			want: "--- /etc/x.yml\n+++ /etc/x.yml\n# mode becomes 0600\n"},
		{name: "binary", exists: true, old: "a\x00", f: write.File{Data: []byte("b\x00")},
			want: "Binary files /etc/x.yml and /etc/x.yml (rendered) differ\n"},
		{name: "new empty file", f: write.File{Data: nil},
			want: "--- /dev/null\n+++ /etc/x.yml (rendered)\n# new empty file\n"},
		{name: "new file", f: write.File{Data: []byte("a\n")},
			want: "--- /dev/null\n+++ /etc/x.yml (rendered)\n@@ -0,0 +1 @@\n+a\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := unifiedDiff("/etc/x.yml", tc.exists, []byte(tc.old), tc.f); got != tc.want {
				t.Errorf("got\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

// BenchmarkUnifiedDiff1MiB diffs two 1 MiB configuration-like files that
// differ in five scattered lines.
func BenchmarkUnifiedDiff1MiB(b *testing.B) {
	var old strings.Builder
	for i := 0; old.Len() < 1<<20; i++ {
		fmt.Fprintf(&old, "key%d: value %d\n", i, i*i)
	}
	o := old.String()
	n := o
	for _, k := range []string{"key10:", "key5000:", "key20000:", "key30000:", "key40000:"} {
		n = strings.Replace(n, k, k+" changed", 1)
	}
	f := write.File{Data: []byte(n), Mode: 0o644}
	b.ResetTimer()
	for b.Loop() {
		unifiedDiff("/etc/x.yml", true, []byte(o), f)
	}
}
