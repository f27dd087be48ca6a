package textfile

import (
	"cmp"
	"fmt"
	"slices"
)

// Type is the Prometheus type of a metric family. Only the two types butler
// exports are supported; the zero value is invalid, so a family whose type was
// forgotten is an error rather than a silent gauge.
type Type int

// The supported family types.
const (
	Gauge Type = iota + 1
	Counter
)

// String returns the type as the text format spells it.
func (t Type) String() string {
	switch t {
	case Gauge:
		return "gauge"
	case Counter:
		return "counter"
	}
	return fmt.Sprintf("Type(%d)", int(t))
}

// Family is one metric family: a name, its HELP text, its type and its series.
type Family struct {
	Name   string
	Help   string
	Type   Type
	Series []Series
}

// Series is one sample of a family: its labels and its value.
type Series struct {
	Labels Labels
	Value  float64
}

// Label is one label of a series.
type Label struct{ Name, Value string }

// Labels are the labels of a series, in any order. A label with an empty
// value is the same as no label at all, as in Prometheus. Series may share
// one Labels: the package never changes them.
type Labels []Label

// L returns the labels of name, value pairs, in the order given:
// L("manager", "m", "file", "a.yml"). A name without a value is dropped.
func L(pairs ...string) Labels {
	ls := make(Labels, 0, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		ls = append(ls, Label{pairs[i], pairs[i+1]})
	}
	return ls
}

// Get returns the value of the label called name, "" when there is none.
func (ls Labels) Get(name string) string {
	for _, l := range ls {
		if l.Name == name {
			return l.Value
		}
	}
	return ""
}

// Find returns the family called name.
func Find(fams []Family, name string) (Family, bool) {
	for _, f := range fams {
		if f.Name == name {
			return f, true
		}
	}
	return Family{}, false
}

// Value returns the value of the series whose label set is exactly labels
// (labels with empty values are ignored on both sides).
func (f Family) Value(labels Labels) (float64, bool) {
	want := seriesKey(labels)
	for _, s := range f.Series {
		if slices.Equal(seriesKey(s.Labels), want) {
			return s.Value, true
		}
	}
	return 0, false
}

// seriesKey is the identity of a series: its labels sorted by name, without
// those whose value is empty. It returns labels itself when they are that
// already, else a sorted copy.
func seriesKey(labels Labels) Labels {
	if isKey(labels) {
		return labels
	}
	key := make(Labels, 0, len(labels))
	for _, l := range labels {
		if l.Value != "" {
			key = append(key, l)
		}
	}
	slices.SortFunc(key, compareNames)
	return key
}

// isKey reports whether labels are sorted by name, with no name twice and
// no empty value.
func isKey(labels Labels) bool {
	for i, l := range labels {
		if l.Value == "" || (i > 0 && labels[i-1].Name >= l.Name) {
			return false
		}
	}
	return true
}

// compareNames orders labels by name.
func compareNames(a, b Label) int { return cmp.Compare(a.Name, b.Name) }

// compareKeys orders series keys label by label, name before value.
func compareKeys(a, b Labels) int {
	return slices.CompareFunc(a, b, func(x, y Label) int {
		return cmp.Or(cmp.Compare(x.Name, y.Name), cmp.Compare(x.Value, y.Value))
	})
}

// Check returns fams as Encode writes them, in new slices (fams is left as
// it is): the families with series, sorted by name, each with its series
// sorted by label set and the labels of a series by name. When fams could
// not be written and read back unchanged it returns why instead, in Encode's
// words: a metric or label name outside the legacy character set, a label
// name starting with "__" or given twice in a series, a type other than
// Gauge or Counter, a family name given twice, or two series of one family
// with the same label set. Unlike Encode it accepts an empty HELP text,
// which a file read back may lack.
func Check(fams []Family) ([]Family, error) {
	if err := validate(fams); err != nil {
		return nil, err
	}
	return sortedCopy(fams), nil
}

// sortedCopy returns the families sorted by name, each with its series sorted
// by label set and their labels by name, without touching the caller's
// slices. Families without series
// are left out.
func sortedCopy(fams []Family) []Family {
	out := make([]Family, 0, len(fams))
	for _, f := range fams {
		if len(f.Series) == 0 {
			continue
		}
		type keyed struct {
			key Labels
			s   Series
		}
		ks := make([]keyed, len(f.Series))
		for i, s := range f.Series {
			s.Labels = slices.Clone(s.Labels)
			slices.SortFunc(s.Labels, compareNames)
			ks[i] = keyed{seriesKey(s.Labels), s}
		}
		slices.SortFunc(ks, func(a, b keyed) int { return compareKeys(a.key, b.key) })
		f.Series = make([]Series, len(ks))
		for i, k := range ks {
			f.Series[i] = k.s
		}
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b Family) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// validate checks what makes a file unreadable or lossy for a scraper: names
// outside the legacy character set, reserved label names, unsupported types,
// a family named twice and two series with the same label set in one family.
func validate(fams []Family) error {
	seen := make(map[string]bool, len(fams))
	for _, f := range fams {
		if !isMetricName(f.Name) {
			return fmt.Errorf("invalid metric name %q", f.Name)
		}
		if seen[f.Name] {
			return fmt.Errorf("duplicate metric family %s", f.Name)
		}
		seen[f.Name] = true
		if f.Type != Gauge && f.Type != Counter {
			return fmt.Errorf("metric %s: unsupported type %v", f.Name, f.Type)
		}
		keys := make([]Labels, 0, len(f.Series))
		for _, s := range f.Series {
			if err := validateLabels(s.Labels); err != nil {
				return fmt.Errorf("metric %s: %w", f.Name, err)
			}
			keys = append(keys, seriesKey(s.Labels))
		}
		slices.SortFunc(keys, compareKeys)
		for i := 1; i < len(keys); i++ {
			if compareKeys(keys[i-1], keys[i]) == 0 {
				return fmt.Errorf("metric %s: duplicate series %s", f.Name, formatKey(keys[i]))
			}
		}
	}
	return nil
}

// validateLabels accepts the labels of one series: legacy names not
// reserved by Prometheus, no name twice.
func validateLabels(labels Labels) error {
	for i, l := range labels {
		if err := validateLabelName(l.Name); err != nil {
			return err
		}
		for _, before := range labels[:i] {
			if before.Name == l.Name {
				return fmt.Errorf("label %q given twice", l.Name)
			}
		}
	}
	return nil
}

// validateLabelName accepts legacy label names not reserved by Prometheus.
func validateLabelName(name string) error {
	if !isLabelName(name) {
		return fmt.Errorf("invalid label name %q", name)
	}
	if len(name) >= 2 && name[:2] == "__" {
		return fmt.Errorf("reserved label name %q", name)
	}
	return nil
}

// isMetricName reports whether name is a metric name of the legacy character
// set, [a-zA-Z_:][a-zA-Z0-9_:]*, which every scraper reads unquoted.
func isMetricName(name string) bool { return isLegacyName(name, true) }

// isLabelName reports whether name is a label name of the legacy character
// set, [a-zA-Z_][a-zA-Z0-9_]*: a metric name's, without the colon.
func isLabelName(name string) bool { return isLegacyName(name, false) }

// isLegacyName reports whether name is not empty and made of ASCII letters,
// underscores, digits after the first byte, and colons when colon is true.
// Every byte outside ASCII is refused.
func isLegacyName(name string, colon bool) bool {
	if name == "" {
		return false
	}
	for i := range len(name) {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', c == '_':
		case c == ':' && colon:
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// formatKey renders a series key for error messages, e.g. {a="x",b="y"}.
func formatKey(key Labels) string {
	b := []byte{'{'}
	for i, l := range key {
		if i > 0 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, "%s=%q", l.Name, l.Value)
	}
	return string(append(b, '}'))
}
