package textfile

import (
	"bufio"
	"bytes"
	"cmp"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/butler-sre/butler/pipeline/atomicfile"
)

// Encode writes fams to w in the Prometheus text format: families sorted by
// name, series sorted by their labels (names sorted, then values), HELP and
// TYPE for every family, no timestamps, a final newline. Families without
// series are left out. Values are printed in Go's shortest exact form, so
// every float64, Unix times included, reads back unchanged.
//
// Invalid input writes nothing and returns an error: a metric or label name
// outside the legacy character set, a label name starting with "__", an empty
// HELP text, a type other than Gauge or Counter, a family name given twice, or
// two series of one family with the same label set.
func Encode(w io.Writer, fams []Family) error {
	sorted, err := checkFamilies(fams)
	if err != nil {
		return err
	}
	// Nothing reaches w before every series is checked: the text is made in
	// one buffer first, grown once.
	size := 0
	for _, f := range sorted {
		size += familySize(f)
	}
	buf := bytes.NewBuffer(make([]byte, 0, size))
	if err := encode(buf, sorted); err != nil {
		return err
	}
	_, err = w.Write(buf.Bytes())
	return err
}

// checkFamilies checks what Encode refuses of the families themselves
// (names, types, HELP, a name twice) and returns those with series, sorted
// by name.
func checkFamilies(fams []Family) ([]Family, error) {
	seen := make(map[string]bool, len(fams))
	sorted := make([]Family, 0, len(fams))
	for _, f := range fams {
		switch {
		case !isMetricName(f.Name):
			return nil, fmt.Errorf("invalid metric name %q", f.Name)
		case seen[f.Name]:
			return nil, fmt.Errorf("duplicate metric family %s", f.Name)
		case f.Type != Gauge && f.Type != Counter:
			return nil, fmt.Errorf("metric %s: unsupported type %v", f.Name, f.Type)
		case f.Help == "":
			return nil, fmt.Errorf("metric %s: empty help text", f.Name)
		}
		seen[f.Name] = true
		if len(f.Series) > 0 {
			sorted = append(sorted, f)
		}
	}
	slices.SortFunc(sorted, func(a, b Family) int { return cmp.Compare(a.Name, b.Name) })
	return sorted, nil
}

// textWriter is what the text is written to: a bytes.Buffer, a bufio.Writer.
type textWriter interface {
	io.Writer
	io.ByteWriter
	io.StringWriter
}

// encode writes sorted families (see checkFamilies), each once its series
// are checked and sorted; one slice of rows serves every family.
func encode(w textWriter, sorted []Family) error {
	var rows []row
	for _, f := range sorted {
		var err error
		if rows, err = sortedRows(f, rows[:0]); err != nil {
			return err
		}
		writeFamily(w, f, rows)
	}
	return nil
}

// row is a series ready to write: all its labels sorted by name, and its
// identity (the labels without those whose value is empty).
type row struct {
	labels Labels
	key    Labels
	value  float64
}

// sortedRows checks the label names of f's series and returns them sorted by
// identity, in rows (whose capacity is reused); two series with one identity
// are an error. Labels that are sorted already are used as they are, not
// copied.
func sortedRows(f Family, rows []row) ([]row, error) {
	rows = slices.Grow(rows[:0], len(f.Series))[:len(f.Series)]
	for i, s := range f.Series {
		if err := validateLabels(s.Labels); err != nil {
			return nil, fmt.Errorf("metric %s: %w", f.Name, err)
		}
		labels := s.Labels
		if !slices.IsSortedFunc(labels, compareNames) {
			labels = slices.Clone(labels)
			slices.SortFunc(labels, compareNames)
		}
		rows[i] = row{labels: labels, key: seriesKey(labels), value: s.Value}
	}
	byKey := func(a, b row) int { return compareKeys(a.key, b.key) }
	if !slices.IsSortedFunc(rows, byKey) { // a caller may give them in order
		slices.SortFunc(rows, byKey)
	}
	for i := 1; i < len(rows); i++ {
		if compareKeys(rows[i-1].key, rows[i].key) == 0 {
			return nil, fmt.Errorf("metric %s: duplicate series %s", f.Name, formatKey(rows[i].key))
		}
	}
	return rows, nil
}

// familySize is about the length of f's text, never much less: the HELP and
// TYPE lines, and every row's name, labels and a value of 24 bytes (the
// longest float64 in Go's shortest form). Escapes may add a little.
func familySize(f Family) int {
	n := 2*len(f.Name) + len(f.Help) + 32
	for _, s := range f.Series {
		n += len(f.Name) + 28
		for _, l := range s.Labels {
			n += len(l.Name) + len(l.Value) + 4
		}
	}
	return n
}

// The escaping of the text format: HELP texts escape backslash and line
// feed, label values also the double quote.
var (
	helpEscaper  = strings.NewReplacer("\\", `\\`, "\n", `\n`)
	valueEscaper = strings.NewReplacer("\\", `\\`, "\n", `\n`, "\"", `\"`)
)

// writeFamily writes one family in the Prometheus text format, byte for byte
// as expfmt.MetricFamilyToText writes a gauge or counter family (a test holds
// the two together): butler writes thousands of series every run, and going
// through the protobuf model cost more than the rest of a run that found
// nothing changed.
func writeFamily(buf textWriter, f Family, rows []row) {
	buf.WriteString("# HELP ")
	buf.WriteString(f.Name)
	buf.WriteByte(' ')
	_, _ = helpEscaper.WriteString(buf, f.Help)
	buf.WriteString("\n# TYPE ")
	buf.WriteString(f.Name)
	buf.WriteByte(' ')
	buf.WriteString(f.Type.String())
	buf.WriteByte('\n')
	var num []byte
	for _, r := range rows {
		buf.WriteString(f.Name)
		for i, p := range r.labels {
			if i == 0 {
				buf.WriteByte('{')
			} else {
				buf.WriteByte(',')
			}
			buf.WriteString(p.Name)
			buf.WriteString(`="`)
			_, _ = valueEscaper.WriteString(buf, p.Value)
			buf.WriteByte('"')
		}
		if len(r.labels) > 0 {
			buf.WriteByte('}')
		}
		buf.WriteByte(' ')
		num = appendFloat(num[:0], r.value)
		buf.Write(num)
		buf.WriteByte('\n')
	}
}

// appendFloat writes v as the text format does: Go's shortest exact form,
// and NaN, +Inf, -Inf.
func appendFloat(b []byte, v float64) []byte {
	switch {
	case math.IsNaN(v):
		return append(b, "NaN"...)
	case math.IsInf(v, +1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// WriteFile writes fams to path atomically with the one write sequence of
// package atomicfile: readers see the old file or the new one, never a mix,
// even after a crash. The temporary name starts with "." and ends in digits,
// so a collector reading "*.prom" never sees it. The file gets mode 0644
// whatever the umask; the directory is created (0755) when missing. On any
// error path is left as it was.
//
// Temporary files for path that a killed writer left behind are removed
// first, so the caller must be the only writer of path: butler writes it
// while holding its run lock.
func WriteFile(path string, fams []Family) error {
	st, err := Stage(path, fams)
	if err != nil {
		return err
	}
	if err := st.Commit(); err != nil {
		return fmt.Errorf("write metrics: %w", err)
	}
	return nil
}

// Stage is WriteFile up to the rename: the text is written and fsynced
// under its temporary name, and path is as it was until the caller commits
// the file (or discards it).
func Stage(path string, fams []Family) (*atomicfile.Staged, error) {
	sorted, err := checkFamilies(fams)
	if err != nil {
		return nil, fmt.Errorf("write metrics %s: %w", path, err)
	}
	// Written as it is made: a series that fails its check leaves path as
	// it was, and the whole text is never in memory at once.
	var invalid error // a series refused, rather than a failed write
	st, err := atomicfile.StagePathFunc(path, func(w *bufio.Writer) error {
		invalid = encode(w, sorted)
		return invalid
	}, 0o644, 0o755)
	switch {
	case invalid != nil:
		return nil, fmt.Errorf("write metrics %s: %w", path, invalid)
	case err != nil:
		return nil, fmt.Errorf("write metrics: %w", err)
	}
	return st, nil
}
