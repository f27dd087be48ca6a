package textfile

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"os"
	"slices"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"

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
	if err := validate(fams); err != nil {
		return err
	}
	for _, f := range fams {
		if f.Help == "" {
			return fmt.Errorf("metric %s: empty help text", f.Name)
		}
	}
	var buf bytes.Buffer
	for _, f := range sortedCopy(fams) {
		if _, err := expfmt.MetricFamilyToText(&buf, toDTO(f)); err != nil {
			return fmt.Errorf("metric %s: %w", f.Name, err)
		}
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// toDTO converts a family whose series are already sorted. Labels go in name
// order, which is the order the text encoder writes them in.
func toDTO(f Family) *dto.MetricFamily {
	mf := &dto.MetricFamily{Name: proto.String(f.Name), Help: proto.String(f.Help)}
	if f.Type == Counter {
		mf.Type = dto.MetricType_COUNTER.Enum()
	} else {
		mf.Type = dto.MetricType_GAUGE.Enum()
	}
	for _, s := range f.Series {
		m := &dto.Metric{}
		for _, p := range sortedLabels(s.Labels) {
			m.Label = append(m.Label, &dto.LabelPair{Name: proto.String(p.name), Value: proto.String(p.value)})
		}
		if f.Type == Counter {
			m.Counter = &dto.Counter{Value: proto.Float64(s.Value)}
		} else {
			m.Gauge = &dto.Gauge{Value: proto.Float64(s.Value)}
		}
		mf.Metric = append(mf.Metric, m)
	}
	return mf
}

// sortedLabels returns all labels, empty values included, sorted by name.
func sortedLabels(labels map[string]string) []labelPair {
	out := make([]labelPair, 0, len(labels))
	for name, value := range labels {
		out = append(out, labelPair{name, value})
	}
	slices.SortFunc(out, func(a, b labelPair) int { return cmp.Compare(a.name, b.name) })
	return out
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
	var buf bytes.Buffer
	if err := Encode(&buf, fams); err != nil {
		return fmt.Errorf("write metrics %s: %w", path, err)
	}
	if err := atomicfile.WritePath(path, buf.Bytes(), 0o644, 0o755); err != nil {
		return fmt.Errorf("write metrics: %w", err)
	}
	return nil
}

// ReadFile parses a textfile back into families, sorted as Encode sorts them.
// It fails on anything Encode would refuse to write (see Encode; an empty
// HELP text is accepted), on types other than gauge and counter, and on
// sample timestamps.
func ReadFile(path string) ([]Family, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := parser.TextToMetricFamilies(f)
	if err != nil {
		return nil, fmt.Errorf("parse metrics %s: %w", path, err)
	}
	fams := make([]Family, 0, len(mfs))
	for _, mf := range mfs {
		fam, err := fromDTO(mf)
		if err != nil {
			return nil, fmt.Errorf("parse metrics %s: %w", path, err)
		}
		fams = append(fams, fam)
	}
	if err := validate(fams); err != nil {
		return nil, fmt.Errorf("parse metrics %s: %w", path, err)
	}
	return sortedCopy(fams), nil
}

// fromDTO converts one parsed family. Series without labels get nil Labels.
func fromDTO(mf *dto.MetricFamily) (Family, error) {
	fam := Family{Name: mf.GetName(), Help: mf.GetHelp()}
	switch mf.GetType() {
	case dto.MetricType_GAUGE:
		fam.Type = Gauge
	case dto.MetricType_COUNTER:
		fam.Type = Counter
	default:
		return Family{}, fmt.Errorf("metric %s: unsupported type %s", fam.Name, mf.GetType())
	}
	for _, m := range mf.GetMetric() {
		if m.TimestampMs != nil {
			return Family{}, fmt.Errorf("metric %s: sample timestamps are not allowed", fam.Name)
		}
		s := Series{Value: m.GetGauge().GetValue()}
		if fam.Type == Counter {
			s.Value = m.GetCounter().GetValue()
		}
		for _, lp := range m.GetLabel() {
			if s.Labels == nil {
				s.Labels = make(map[string]string, len(m.GetLabel()))
			}
			s.Labels[lp.GetName()] = lp.GetValue()
		}
		fam.Series = append(fam.Series, s)
	}
	return fam, nil
}
