package textfile

import (
	"cmp"
	"fmt"
	"maps"
	"slices"

	"github.com/prometheus/common/model"
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

// Series is one sample of a family: its label set and its value. A label with
// an empty value is the same as no label at all, as in Prometheus.
type Series struct {
	Labels map[string]string
	Value  float64
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
func (f Family) Value(labels map[string]string) (float64, bool) {
	want := seriesKey(labels)
	for _, s := range f.Series {
		if slices.Equal(seriesKey(s.Labels), want) {
			return s.Value, true
		}
	}
	return 0, false
}

// labelPair is one label of a series key.
type labelPair struct{ name, value string }

// seriesKey is the identity of a series: its labels sorted by name, without
// those whose value is empty.
func seriesKey(labels map[string]string) []labelPair {
	key := make([]labelPair, 0, len(labels))
	for _, name := range slices.Sorted(maps.Keys(labels)) {
		if v := labels[name]; v != "" {
			key = append(key, labelPair{name, v})
		}
	}
	return key
}

// compareKeys orders series keys pair by pair, name before value.
func compareKeys(a, b []labelPair) int {
	return slices.CompareFunc(a, b, func(x, y labelPair) int {
		return cmp.Or(cmp.Compare(x.name, y.name), cmp.Compare(x.value, y.value))
	})
}

// sortedCopy returns the families sorted by name, each with its series sorted
// by label set, without touching the caller's slices. Families without series
// are left out.
func sortedCopy(fams []Family) []Family {
	out := make([]Family, 0, len(fams))
	for _, f := range fams {
		if len(f.Series) == 0 {
			continue
		}
		type keyed struct {
			key []labelPair
			s   Series
		}
		ks := make([]keyed, len(f.Series))
		for i, s := range f.Series {
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
		if !model.LegacyValidation.IsValidMetricName(f.Name) {
			return fmt.Errorf("invalid metric name %q", f.Name)
		}
		if seen[f.Name] {
			return fmt.Errorf("duplicate metric family %s", f.Name)
		}
		seen[f.Name] = true
		if f.Type != Gauge && f.Type != Counter {
			return fmt.Errorf("metric %s: unsupported type %v", f.Name, f.Type)
		}
		keys := make([][]labelPair, 0, len(f.Series))
		for _, s := range f.Series {
			for name := range s.Labels {
				if err := validateLabelName(name); err != nil {
					return fmt.Errorf("metric %s: %w", f.Name, err)
				}
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

// validateLabelName accepts legacy label names not reserved by Prometheus.
func validateLabelName(name string) error {
	if !model.LegacyValidation.IsValidLabelName(name) {
		return fmt.Errorf("invalid label name %q", name)
	}
	if len(name) >= 2 && name[:2] == "__" {
		return fmt.Errorf("reserved label name %q", name)
	}
	return nil
}

// formatKey renders a series key for error messages, e.g. {a="x",b="y"}.
func formatKey(key []labelPair) string {
	b := []byte{'{'}
	for i, p := range key {
		if i > 0 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, "%s=%q", p.name, p.value)
	}
	return string(append(b, '}'))
}
