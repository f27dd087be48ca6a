package pipeline

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Other test files of this package may register -update as well; register it only once
// and read it through the flag set.
func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite golden files")
	}
}

func diffUpdating() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// diffLinesOf joins numbered lines "<prefix>1\n" ... "<prefix>n\n".
func diffLinesOf(prefix string, n int) string {
	var sb strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&sb, "%s%d\n", prefix, i)
	}
	return sb.String()
}

// diffEdit replaces line i (1-based) of text with repl, which may be several lines or "".
func diffEdit(text string, i int, repl string) string {
	lines := strings.SplitAfter(text, "\n")
	lines[i-1] = repl
	return strings.Join(lines, "")
}

type diffCase struct {
	name     string
	old, new []byte
	// noGNU: diff -u prints something else on purpose (see the case).
	noGNU bool
}

func diffCases() []diffCase {
	ten := diffLinesOf("line ", 10)
	twenty := diffLinesOf("line ", 20)
	return []diffCase{
		{name: "equal", old: []byte(ten), new: []byte(ten)},
		{name: "equal_empty", old: []byte{}, new: []byte{}},
		{name: "insert_start", old: []byte(ten), new: []byte("new\n" + ten)},
		{name: "insert_middle", old: []byte(ten), new: []byte(diffEdit(ten, 5, "line 5\nnew a\nnew b\n"))},
		{name: "insert_end", old: []byte(ten), new: []byte(ten + "new\n")},
		{name: "delete", old: []byte(ten), new: []byte(diffEdit(ten, 6, ""))},
		{name: "delete_start", old: []byte(ten), new: []byte(diffEdit(ten, 1, ""))},
		{name: "change", old: []byte(ten), new: []byte(diffEdit(ten, 4, "LINE 4\n"))},
		{name: "change_lines", old: []byte(ten), new: []byte(diffEdit(diffEdit(ten, 4, "four\n"), 5, "five\nfive and a half\n"))},
		{name: "two_hunks_far", old: []byte(twenty), new: []byte(diffEdit(diffEdit(twenty, 3, "three\n"), 17, "seventeen\n"))},
		// Changes 6 unchanged lines apart: the contexts touch and the hunks merge.
		{name: "two_changes_merged", old: []byte(twenty), new: []byte(diffEdit(diffEdit(twenty, 5, "five\n"), 12, "twelve\n"))},
		// 7 unchanged lines apart: one line between the contexts, two hunks.
		{name: "two_changes_gap7", old: []byte(twenty), new: []byte(diffEdit(diffEdit(twenty, 5, "five\n"), 13, "thirteen\n"))},
		{name: "new_file", old: nil, new: []byte("a: 1\nb: 2\n")},
		// diff prints nothing for /dev/null against an empty file; we show that the file
		// would be created.
		{name: "new_file_empty", old: nil, new: []byte{}, noGNU: true},
		{name: "from_empty", old: []byte{}, new: []byte("a: 1\n")},
		{name: "emptied", old: []byte(ten), new: []byte{}},
		{name: "no_newline_old", old: []byte("a\nb\nc"), new: []byte("a\nb\nc\n")},
		{name: "no_newline_new", old: []byte("a\nb\nc\n"), new: []byte("a\nb\nc")},
		{name: "no_newline_both", old: []byte("a\nb\nc\nd"), new: []byte("a\nB\nc\nd")},
		{name: "no_newline_change_last", old: []byte("a\nb\nc"), new: []byte("a\nb\nC")},
		{name: "crlf", old: []byte("a: 1\r\nb: 2\r\nc: 3\r\n"), new: []byte("a: 1\r\nb: 20\r\nc: 3\r\n")},
		{name: "crlf_to_lf", old: []byte("a: 1\r\nb: 2\r\n"), new: []byte("a: 1\nb: 2\r\n")},
		{name: "binary", old: []byte("a\x00b\n"), new: []byte("a\n")},
		{name: "binary_new", old: []byte("a\n"), new: []byte("a\x00\n")},
		{name: "binary_equal", old: []byte("a\x00b\n"), new: []byte("a\x00b\n")},
		// Two scripts of the same length: diff slides the insertion across the equal
		// lines to the end, we keep it where the matcher put it.
		{name: "repeated_lines", old: []byte("x\nx\nx\ny\nx\nx\n"), new: []byte("x\nx\ny\nx\nx\nx\n"), noGNU: true},
	}
}

func TestUnifiedDiffGolden(t *testing.T) {
	for _, tc := range diffCases() {
		t.Run(tc.name, func(t *testing.T) {
			got := UnifiedDiff("a/conf.yml", "b/conf.yml", tc.old, tc.new)
			golden := filepath.Join("..", "testdata", "diff", tc.name+".diff")
			if diffUpdating() {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("read golden file (run with -update to create it): %v", err)
			}
			if got != string(want) {
				t.Errorf("diff differs from %s\ngot:\n%s\nwant:\n%s", golden, got, want)
			}
			if equal := tc.old != nil && bytes.Equal(tc.old, tc.new); equal != (got == "") {
				t.Errorf("equal inputs: %v, empty diff: %v", equal, got == "")
			}
			if !strings.HasPrefix(got, "Binary files ") && got != "" {
				diffCheckApplies(t, got, "a/conf.yml", "b/conf.yml", tc.old, tc.new)
			}
		})
	}
}

// TestUnifiedDiffMatchesGNU compares with diff -u byte for byte, headers included
// (--label removes the timestamps).
func TestUnifiedDiffMatchesGNU(t *testing.T) {
	gnu, err := exec.LookPath("diff")
	if err != nil {
		t.Skip("no diff program on PATH")
	}
	if out, err := exec.Command(gnu, "--version").Output(); err != nil || !bytes.Contains(out, []byte("GNU diffutils")) {
		t.Skip("diff on PATH is not GNU diffutils")
	}
	dir := t.TempDir()
	run := func(t *testing.T, old, new []byte) string {
		t.Helper()
		oldPath := "/dev/null"
		if old != nil {
			oldPath = filepath.Join(dir, "old")
			if err := os.WriteFile(oldPath, old, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		newPath := filepath.Join(dir, "new")
		if err := os.WriteFile(newPath, new, 0o644); err != nil {
			t.Fatal(err)
		}
		oldLabel := "a/conf.yml"
		if old == nil {
			oldLabel = "/dev/null"
		}
		out, err := exec.Command(gnu, "-u", "--label", oldLabel, "--label", "b/conf.yml", oldPath, newPath).Output()
		var exit *exec.ExitError
		if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1) {
			t.Fatalf("diff: %v", err)
		}
		return string(out)
	}
	for _, tc := range diffCases() {
		if tc.noGNU {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			got := UnifiedDiff("a/conf.yml", "b/conf.yml", tc.old, tc.new)
			if want := run(t, tc.old, tc.new); got != want {
				t.Errorf("differs from diff -u\ngot:\n%s\nwant:\n%s", got, want)
			}
		})
	}
	// Larger inputs where the shortest edit script is unique: distinct lines, a few
	// scattered edits.
	rng := rand.New(rand.NewSource(7))
	for n := range 20 {
		t.Run("scattered_"+strconv.Itoa(n), func(t *testing.T) {
			var old, new strings.Builder
			for i := range 400 {
				line := fmt.Sprintf("key%d: value %d\n", i, i*i)
				fmt.Fprint(&old, line)
				switch rng.Intn(40) {
				case 0: // deleted
				case 1:
					fmt.Fprintf(&new, "key%d: changed %d\n", i, rng.Int())
				case 2:
					fmt.Fprintf(&new, "inserted %d\n%s", rng.Int(), line)
				default:
					fmt.Fprint(&new, line)
				}
			}
			got := UnifiedDiff("a/conf.yml", "b/conf.yml", []byte(old.String()), []byte(new.String()))
			if want := run(t, []byte(old.String()), []byte(new.String())); got != want {
				t.Errorf("differs from diff -u\ngot:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// diffRandomText returns up to n lines drawn from a small alphabet, so that lines repeat
// and many shortest edit scripts exist; the last line may lack its newline, and lines
// may end in CRLF.
func diffRandomText(rng *rand.Rand, n int) []byte {
	words := []string{"a", "b", "c", "d", "a\r"}
	var sb strings.Builder
	k := rng.Intn(n + 1)
	for i := range k {
		sb.WriteString(words[rng.Intn(len(words))])
		if i < k-1 || rng.Intn(4) != 0 {
			sb.WriteByte('\n')
		}
	}
	return []byte(sb.String())
}

// diffMutate returns text with a few random lines deleted, inserted or changed.
func diffMutate(rng *rand.Rand, text []byte) []byte {
	lines := strings.SplitAfter(string(text), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	for range rng.Intn(5) {
		i := rng.Intn(len(lines) + 1)
		w := string(rune('a'+rng.Intn(5))) + "\n"
		switch {
		case rng.Intn(3) == 0 && i < len(lines):
			lines = append(lines[:i], lines[i+1:]...)
		case rng.Intn(2) == 0 && i < len(lines):
			lines[i] = w
		default:
			lines = append(lines[:i], append([]string{w}, lines[i:]...)...)
		}
	}
	return []byte(strings.Join(lines, ""))
}

// diffLCS returns the length of a longest common subsequence of the lines of a and b,
// by the textbook quadratic table: an independent check of minimality.
func diffLCS(a, b []byte) int {
	la, lb := diffSplit(a), diffSplit(b)
	n, m := la.len(), lb.len()
	prev, cur := make([]int, m+1), make([]int, m+1)
	for i := 1; i <= n; i++ {
		for j := 1; j <= m; j++ {
			switch {
			case bytes.Equal(la.line(i-1), lb.line(j-1)):
				cur[j] = prev[j-1] + 1
			case prev[j] >= cur[j-1]:
				cur[j] = prev[j]
			default:
				cur[j] = cur[j-1]
			}
		}
		prev, cur = cur, prev
	}
	return prev[m]
}

// TestUnifiedDiffProperties checks over random inputs that applying the hunks to old
// gives new, that the hunk headers agree with their bodies, and that the number of
// changed lines is the minimum (lines(old) + lines(new) - 2*LCS).
func TestUnifiedDiffProperties(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for n := range 600 {
		old := diffRandomText(rng, 1+n%30)
		var new []byte
		if n%3 == 0 {
			new = diffRandomText(rng, 1+n%30)
		} else {
			new = diffMutate(rng, old)
		}
		if n%50 == 0 {
			old = nil
		}
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			got := UnifiedDiff("old", "new", old, new)
			if old != nil && bytes.Equal(old, new) {
				if got != "" {
					t.Fatalf("equal inputs gave %q", got)
				}
				return
			}
			dels, ins := diffCheckApplies(t, got, "old", "new", old, new)
			want := diffSplit(old).len() + diffSplit(new).len() - 2*diffLCS(old, new)
			if dels+ins != want {
				t.Errorf("old %q new %q: %d changed lines, shortest script has %d\n%s", old, new, dels+ins, want, got)
			}
		})
	}
}

// TestUnifiedDiffBudget checks that when the matcher's budget runs out the diff is still
// exact, only longer, for budgets from none to enough.
func TestUnifiedDiffBudget(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	for _, budget := range []int{-1, 0, 5, 50, 500} {
		t.Run("budget_"+strconv.Itoa(budget), func(t *testing.T) {
			longer := 0
			for range 100 {
				old := diffRandomText(rng, 60)
				new := diffMutate(rng, diffMutate(rng, old))
				if bytes.Equal(old, new) {
					continue
				}
				got := diffUnified("old", "new", old, new, budget)
				dels, ins := diffCheckApplies(t, got, "old", "new", old, new)
				if dels+ins > diffSplit(old).len()+diffSplit(new).len()-2*diffLCS(old, new) {
					longer++
				}
			}
			if budget <= 0 && longer == 0 {
				t.Errorf("no diff came out longer than needed: the budget was not applied")
			}
		})
	}
}

// TestUnifiedDiffLarge covers inputs where the edit distance is huge: every line
// replaced (no line in common), and two unrelated files of repeated lines, which
// exhausts the budget. Both must finish and apply exactly.
func TestUnifiedDiffLarge(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	alternating := func(size int) []byte {
		var sb strings.Builder
		for sb.Len() < size {
			sb.WriteString([]string{"a\n", "b\n", "c\n"}[rng.Intn(3)])
		}
		return []byte(sb.String())
	}
	cases := []struct {
		name     string
		old, new []byte
	}{
		{name: "rewritten", old: []byte(diffLinesOf("old line ", 50000)), new: []byte(diffLinesOf("new line ", 50000))},
		{name: "repeated_lines", old: alternating(256 << 10), new: alternating(256 << 10)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := UnifiedDiff("old", "new", tc.old, tc.new)
			diffCheckApplies(t, got, "old", "new", tc.old, tc.new)
		})
	}
}

// diffCheckApplies parses a unified diff, checks its headers and hunk ranges, applies it
// to old and compares the result with new. It returns the numbers of - and + lines.
func diffCheckApplies(t *testing.T, diff, oldName, newName string, old, new []byte) (dels, ins int) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("old %q new %q: %s\ndiff:\n%s", old, new, fmt.Sprintf(format, args...), diff)
	}
	rest := diff
	next := func() string {
		i := strings.IndexByte(rest, '\n')
		if i < 0 {
			fail("output does not end in a newline")
		}
		line := rest[:i+1]
		rest = rest[i+1:]
		return line
	}
	wantOld := "--- " + oldName + "\n"
	if old == nil {
		wantOld = "--- /dev/null\n"
	}
	if h := next(); h != wantOld {
		fail("first header %q, want %q", h, wantOld)
	}
	if h := next(); h != "+++ "+newName+"\n" {
		fail("second header %q", h)
	}
	oldLines := strings.SplitAfter(string(old), "\n")
	if oldLines[len(oldLines)-1] == "" {
		oldLines = oldLines[:len(oldLines)-1]
	}
	var out strings.Builder
	at := 0      // next line of old to copy
	written := 0 // lines written to out
	for rest != "" {
		h := next()
		var oStart, oCount, nStart, nCount int
		if _, err := fmt.Sscanf(diffFullRange(h), "@@ -%d,%d +%d,%d @@\n", &oStart, &oCount, &nStart, &nCount); err != nil {
			fail("hunk header %q: %v", h, err)
		}
		start, nFirst := oStart-1, nStart-1 // 0-based first lines of the hunk
		if oCount == 0 {
			start = oStart
		}
		if nCount == 0 {
			nFirst = nStart
		}
		if start < at {
			fail("hunk %q starts before the end of the previous one", h)
		}
		for ; at < start; at++ {
			out.WriteString(oldLines[at])
			written++
		}
		if written != nFirst {
			fail("hunk %q: new range starts at line %d, %d lines written before it", h, nStart, written)
		}
		// Read the body; a "\ No newline" line takes the newline off the line before.
		type bodyLine struct {
			op   byte
			text string
		}
		var body []bodyLine
		for rest != "" && !strings.HasPrefix(rest, "@@ ") {
			l := next()
			switch l[0] {
			case ' ', '-', '+':
				body = append(body, bodyLine{l[0], l[1:]})
			case '\\':
				if l != "\\ No newline at end of file\n" || len(body) == 0 {
					fail("misplaced line %q", l)
				}
				body[len(body)-1].text = strings.TrimSuffix(body[len(body)-1].text, "\n")
			default:
				fail("unexpected line %q", l)
			}
		}
		var seenOld, seenNew int
		for _, l := range body {
			if l.op != '+' {
				if at >= len(oldLines) || oldLines[at] != l.text {
					fail("line %q of the hunk does not match old line %d", l.text, at+1)
				}
				at++
				seenOld++
			}
			if l.op != '-' {
				out.WriteString(l.text)
				written++
				seenNew++
			}
			switch l.op {
			case '-':
				dels++
			case '+':
				ins++
			}
		}
		if seenOld != oCount || seenNew != nCount {
			fail("hunk %q has %d old and %d new lines", h, seenOld, seenNew)
		}
	}
	for ; at < len(oldLines); at++ {
		out.WriteString(oldLines[at])
	}
	if out.String() != string(new) {
		fail("applying gives %q", out.String())
	}
	return dels, ins
}

// diffFullRange rewrites the ranges of a hunk header to the "l,s" form: "l" alone means
// one line.
func diffFullRange(header string) string {
	fields := strings.Fields(header)
	if len(fields) != 4 {
		return header
	}
	for _, i := range []int{1, 2} {
		if !strings.Contains(fields[i], ",") {
			fields[i] += ",1"
		}
	}
	return strings.Join(fields, " ") + "\n"
}

// BenchmarkUnifiedDiff1MiB diffs two 1 MiB configuration-like files differing in five
// scattered lines.
func BenchmarkUnifiedDiff1MiB(b *testing.B) {
	rng := rand.New(rand.NewSource(4))
	var sb strings.Builder
	for i := 0; sb.Len() < 1<<20; i++ {
		fmt.Fprintf(&sb, "  - job_name: job%d\n    target: host%d.example:%d\n", i, rng.Intn(1000), 9000+rng.Intn(100))
	}
	old := []byte(sb.String())
	lines := strings.SplitAfter(sb.String(), "\n")
	for _, i := range []int{10, 9000, 18000, 27000, 36000} {
		lines[i%(len(lines)-1)] = "    changed: true\n"
	}
	new := []byte(strings.Join(lines, ""))
	b.SetBytes(int64(len(old) + len(new)))
	b.ReportAllocs()
	for b.Loop() {
		if UnifiedDiff("old", "new", old, new) == "" {
			b.Fatal("no diff")
		}
	}
}
