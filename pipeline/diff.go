package pipeline

import (
	"bytes"
	"math"
	"strconv"
	"strings"
)

// diffContext is the number of unchanged lines shown around each change, as in diff -u.
const diffContext = 3

// diffBudget bounds the work of the line matcher, counted in diagonals visited plus
// line comparisons. Close files (a few thousand changed lines in a few MiB) need far
// less than this; when it runs out, what is left unresolved is reported as replaced.
const diffBudget = 1 << 25

// UnifiedDiff returns a unified diff (like `diff -u`, 3 lines of context) turning old into new,
// with "--- oldName" and "+++ newName" headers and "@@ -l,s +l,s @@" hunks. It returns "" when
// old and new are equal. A missing final newline is marked with "\ No newline at end of file"
// as diff does. old == nil means the file did not exist: header "--- /dev/null", hunk "-0,0".
// Binary content (a NUL byte in either side) gives a single line "Binary files oldName and
// newName differ\n" instead of hunks.
//
// Hunk ranges follow diff: a range of one line prints only its start ("-3"), an empty range
// prints the number of the line before it ("-0,0"). Lines are compared byte for byte, so
// CRLF endings are kept as they are. A nil new is an empty file. When old is nil and new is
// empty, the result is the two header lines alone: the file would be created empty.
//
// Lines are matched with Myers' O(ND) algorithm in its linear-space form (divide and
// conquer on middle snakes), after setting aside common leading and trailing lines and
// lines found on one side only (these cannot match, so the result stays minimal). Memory
// is linear in the number of lines. Work is bounded by diffBudget, a few tenths of a
// second: a few MiB with thousands of scattered changes stay well within it. Past it
// (tens of thousands of changes to lines that recur on both sides, or huge files of a
// few repeated lines), the regions not yet resolved are reported as deleted and
// inserted whole. The diff then remains exact, applying it to old gives new, but shows
// more lines than needed.
func UnifiedDiff(oldName, newName string, old, new []byte) string {
	return diffUnified(oldName, newName, old, new, diffBudget)
}

// diffUnified is UnifiedDiff with the matcher's work budget as a parameter.
func diffUnified(oldName, newName string, old, new []byte, budget int) string {
	if old != nil && bytes.Equal(old, new) {
		return ""
	}
	if old == nil {
		oldName = "/dev/null"
	}
	if bytes.IndexByte(old, 0) >= 0 || bytes.IndexByte(new, 0) >= 0 {
		return "Binary files " + oldName + " and " + newName + " differ\n"
	}
	a, b := diffSplit(old), diffSplit(new)
	ca, cb := diffChanges(a, b, budget)
	var sb strings.Builder
	sb.WriteString("--- " + oldName + "\n+++ " + newName + "\n")
	diffWriteHunks(&sb, a, b, ca, cb)
	return sb.String()
}

// diffText is a file cut into lines; each line keeps its terminator, if any.
type diffText struct {
	data   []byte
	starts []int // start offset of each line, then len(data)
}

func diffSplit(data []byte) *diffText {
	n := bytes.Count(data, []byte{'\n'})
	if len(data) > 0 && data[len(data)-1] != '\n' {
		n++
	}
	starts := make([]int, 0, n+1)
	starts = append(starts, 0)
	for off := 0; off < len(data); {
		i := bytes.IndexByte(data[off:], '\n')
		if i < 0 {
			off = len(data)
		} else {
			off += i + 1
		}
		starts = append(starts, off)
	}
	return &diffText{data: data, starts: starts}
}

func (t *diffText) len() int { return len(t.starts) - 1 }

func (t *diffText) line(i int) []byte { return t.data[t.starts[i]:t.starts[i+1]] }

// diffChanges marks the lines of a that are deleted and the lines of b that are
// inserted. The unmarked lines of a and b pair up in order and are equal.
func diffChanges(a, b *diffText, budget int) (ca, cb []bool) {
	n, m := a.len(), b.len()
	ca, cb = make([]bool, n), make([]bool, m)
	pre := 0
	for pre < n && pre < m && bytes.Equal(a.line(pre), b.line(pre)) {
		pre++
	}
	suf := 0
	for suf < n-pre && suf < m-pre && bytes.Equal(a.line(n-1-suf), b.line(m-1-suf)) {
		suf++
	}
	an, bn := n-pre-suf, m-pre-suf
	if an == 0 || bn == 0 || an+bn > math.MaxInt32/2 {
		diffMark(ca[pre : n-suf])
		diffMark(cb[pre : m-suf])
		return ca, cb
	}

	// Number the distinct lines. Keys are substrings of one copy per side, so the
	// map costs no allocation per line.
	ids := make(map[string]int32, an)
	var sides []uint8 // per id: 1 seen in a, 2 seen in b
	number := func(t *diffText, first, count int, side uint8) []int32 {
		base := t.starts[first]
		text := string(t.data[base:t.starts[first+count]])
		out := make([]int32, count)
		for i := range out {
			key := text[t.starts[first+i]-base : t.starts[first+i+1]-base]
			id, ok := ids[key]
			if !ok {
				id = int32(len(sides))
				ids[key] = id
				sides = append(sides, 0)
			}
			sides[id] |= side
			out[i] = id
		}
		return out
	}
	aid := number(a, pre, an, 1)
	bid := number(b, pre, bn, 2)

	// Lines present on one side only are changes; the matcher sees the others.
	compact := func(id []int32, changed []bool) (ids, index []int32) {
		ids, index = make([]int32, 0, len(id)), make([]int32, 0, len(id))
		for i, v := range id {
			if sides[v] == 3 {
				ids = append(ids, v)
				index = append(index, int32(pre+i))
			} else {
				changed[pre+i] = true
			}
		}
		return ids, index
	}
	mt := &diffMatcher{ca: ca, cb: cb, work: budget}
	mt.a, mt.ai = compact(aid, ca)
	mt.b, mt.bi = compact(bid, cb)
	mt.off = len(mt.b) + 1
	mt.fd = make([]int32, len(mt.a)+len(mt.b)+3)
	mt.bd = make([]int32, len(mt.a)+len(mt.b)+3)
	mt.compare(0, len(mt.a), 0, len(mt.b))
	return ca, cb
}

func diffMark(changed []bool) {
	for i := range changed {
		changed[i] = true
	}
}

// diffMatcher finds a shortest edit script between the line ids a and b by divide and
// conquer on middle snakes (Myers 1986, section 4b). Diagonal k holds the points (x, y)
// with x-y == k; fd[k+off] is the furthest x reached on it from the start of the current
// box, bd[k+off] the smallest x reached from its end, -1 for none.
type diffMatcher struct {
	a, b   []int32 // line ids
	ai, bi []int32 // line numbers in the files of the entries of a and b
	ca, cb []bool  // change marks, indexed by line numbers in the files
	fd, bd []int32
	off    int
	work   int // what is left of the budget
}

// compare marks the changes between a[xlo:xhi] and b[ylo:yhi].
func (mt *diffMatcher) compare(xlo, xhi, ylo, yhi int) {
	for xlo < xhi && ylo < yhi && mt.a[xlo] == mt.b[ylo] {
		xlo++
		ylo++
	}
	for xlo < xhi && ylo < yhi && mt.a[xhi-1] == mt.b[yhi-1] {
		xhi--
		yhi--
	}
	if xlo < xhi && ylo < yhi {
		x, y, ok := mt.split(xlo, xhi, ylo, yhi)
		// A split at a corner would not make the problem smaller; it cannot come out of
		// split, but giving up there keeps the recursion finite whatever happens.
		if ok && (x > xlo || y > ylo) && (x < xhi || y < yhi) {
			mt.compare(xlo, x, ylo, y)
			mt.compare(x, xhi, y, yhi)
			return
		}
	}
	for _, i := range mt.ai[xlo:xhi] {
		mt.ca[i] = true
	}
	for _, j := range mt.bi[ylo:yhi] {
		mt.cb[j] = true
	}
}

// split returns a point on a shortest path from (xlo, ylo) to (xhi, yhi), not at either
// end, by running the search from both ends until they meet. It returns false when the
// work budget runs out first. Both sides must be non-empty and differ in their first and
// in their last line.
func (mt *diffMatcher) split(xlo, xhi, ylo, yhi int) (x, y int, ok bool) {
	a, b, fd, bd, off := mt.a, mt.b, mt.fd, mt.bd, mt.off
	dmin, dmax := xlo-yhi, xhi-ylo // diagonals of the box's corners (xlo, yhi) and (xhi, ylo)
	fmid, bmid := xlo-ylo, xhi-yhi // diagonals of the start and of the end
	odd := (fmid-bmid)&1 != 0
	fd[fmid+off] = int32(xlo)
	bd[bmid+off] = int32(xhi)
	fmin, fmax, bmin, bmax := fmid, fmid, bmid, bmid
	for {
		// One more edit forward. Diagonals of the other parity hold the previous step.
		pmin, pmax := fmin, fmax
		if fmin > dmin {
			fmin--
		} else {
			fmin++
		}
		if fmax < dmax {
			fmax++
		} else {
			fmax--
		}
		for k := fmax; k >= fmin; k -= 2 {
			x = -1
			if k-1 >= pmin { // right, a deletion, from diagonal k-1
				if t := int(fd[k-1+off]); t >= 0 && t < xhi {
					x = t + 1
				}
			}
			if k+1 <= pmax { // down, an insertion, from diagonal k+1
				if t := int(fd[k+1+off]); t >= 0 && t-k <= yhi && t > x {
					x = t
				}
			}
			if x < 0 {
				fd[k+off] = -1
				continue
			}
			y = x - k
			x0 := x
			for x < xhi && y < yhi && a[x] == b[y] {
				x++
				y++
			}
			mt.work -= 1 + x - x0
			fd[k+off] = int32(x)
			if odd && bmin <= k && k <= bmax {
				if t := int(bd[k+off]); t >= 0 && t <= x {
					return x, y, true
				}
			}
		}
		if mt.work < 0 {
			return 0, 0, false
		}

		// One more edit backward.
		pmin, pmax = bmin, bmax
		if bmin > dmin {
			bmin--
		} else {
			bmin++
		}
		if bmax < dmax {
			bmax++
		} else {
			bmax--
		}
		for k := bmax; k >= bmin; k -= 2 {
			x = xhi + 1
			if k-1 >= pmin { // up, an insertion read backward, from diagonal k-1
				if t := int(bd[k-1+off]); t >= 0 && t-k >= ylo {
					x = t
				}
			}
			if k+1 <= pmax { // left, a deletion read backward, from diagonal k+1
				if t := int(bd[k+1+off]); t > xlo && t-1 < x {
					x = t - 1
				}
			}
			if x > xhi {
				bd[k+off] = -1
				continue
			}
			y = x - k
			x0 := x
			for x > xlo && y > ylo && a[x-1] == b[y-1] {
				x--
				y--
			}
			mt.work -= 1 + x0 - x
			bd[k+off] = int32(x)
			if !odd && fmin <= k && k <= fmax {
				if t := int(fd[k+off]); t >= 0 && x <= t {
					return x, y, true
				}
			}
		}
		if mt.work < 0 {
			return 0, 0, false
		}
	}
}

// diffGroup is a run of changes: del lines of a from i replaced by ins lines of b from j.
type diffGroup struct{ i, del, j, ins int }

// diffWriteHunks writes the hunks for the change marks ca and cb.
func diffWriteHunks(sb *strings.Builder, a, b *diffText, ca, cb []bool) {
	n, m := a.len(), b.len()
	var groups []diffGroup
	for i, j := 0, 0; i < n || j < m; {
		if i < n && j < m && !ca[i] && !cb[j] {
			i++
			j++
			continue
		}
		g := diffGroup{i: i, j: j}
		// A side that has run out cannot pair what is left of the other: take it all.
		for i < n && (ca[i] || j == m) {
			i++
		}
		for j < m && (cb[j] || i == n) {
			j++
		}
		g.del, g.ins = i-g.i, j-g.j
		groups = append(groups, g)
	}

	for first := 0; first < len(groups); {
		// Unchanged lines pair up, so a gap measured in a is the same in b. Hunks whose
		// context would touch or overlap are merged.
		last := first
		for last+1 < len(groups) && groups[last+1].i-(groups[last].i+groups[last].del) <= 2*diffContext {
			last++
		}
		g, h := groups[first], groups[last]
		aStart := max(0, g.i-diffContext)
		bStart := g.j - (g.i - aStart)
		aEnd := min(n, h.i+h.del+diffContext)
		bEnd := h.j + h.ins + (aEnd - (h.i + h.del))

		sb.WriteString("@@ -")
		diffWriteRange(sb, aStart, aEnd-aStart)
		sb.WriteString(" +")
		diffWriteRange(sb, bStart, bEnd-bStart)
		sb.WriteString(" @@\n")
		at := aStart
		for _, g := range groups[first : last+1] {
			for ; at < g.i; at++ {
				diffWriteLine(sb, ' ', a.line(at))
			}
			for ; at < g.i+g.del; at++ {
				diffWriteLine(sb, '-', a.line(at))
			}
			for j := g.j; j < g.j+g.ins; j++ {
				diffWriteLine(sb, '+', b.line(j))
			}
		}
		for ; at < aEnd; at++ {
			diffWriteLine(sb, ' ', a.line(at))
		}
		first = last + 1
	}
}

// diffWriteRange writes a hunk range of count lines from the 0-based line start the way
// diff does: "l,s", "l" when s is 1, and the number of the line before when s is 0.
func diffWriteRange(sb *strings.Builder, start, count int) {
	switch count {
	case 0:
		sb.WriteString(strconv.Itoa(start))
		sb.WriteString(",0")
	case 1:
		sb.WriteString(strconv.Itoa(start + 1))
	default:
		sb.WriteString(strconv.Itoa(start + 1))
		sb.WriteByte(',')
		sb.WriteString(strconv.Itoa(count))
	}
}

func diffWriteLine(sb *strings.Builder, prefix byte, line []byte) {
	sb.WriteByte(prefix)
	sb.Write(line)
	if len(line) == 0 || line[len(line)-1] != '\n' {
		sb.WriteString("\n\\ No newline at end of file\n")
	}
}
