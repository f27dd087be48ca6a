package textfile

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"
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

// WriteFile writes fams to path atomically: readers see the old file or the
// new one, never a mix, even after a crash. The new file is written under a
// temporary name in the same directory, synced, given mode 0644 and renamed
// over path; then the directory is synced. The directory is created (0755)
// when missing. On any error path is left as it was and the temporary file
// is removed.
//
// Temporary files for path that a killed writer left behind are removed
// first, so the caller must be the only writer of path: butler writes it
// while holding its run lock.
func WriteFile(path string, fams []Family) error {
	var buf bytes.Buffer
	if err := Encode(&buf, fams); err != nil {
		return fmt.Errorf("write metrics %s: %w", path, err)
	}
	if err := writeAtomic(path, buf.Bytes()); err != nil {
		return fmt.Errorf("write metrics %s: %w", path, err)
	}
	return nil
}

// writeAtomic replaces path with data.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// Only one writer at a time (see WriteFile), so a temporary file of path
	// that is already there was left by a writer that was killed. Best
	// effort: a leftover is harmless, and the next write tries again.
	_ = crashRemoveStale(dir, filepath.Base(path))
	// CreateTemp opens with O_EXCL.
	f, err := os.CreateTemp(dir, tempPattern(filepath.Base(path)))
	if err != nil {
		return err
	}
	renamed := false
	defer func() {
		if !renamed {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	// Set the mode explicitly: CreateTemp makes 0600, and the umask must not
	// decide whether the collector may read the file.
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	// Without this sync a crash after the rename can leave path empty or
	// truncated on file systems that reorder data and metadata writes.
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	renamed = true
	// The rename lives in the directory: sync it so it survives power loss.
	return syncDir(dir)
}

// tempPattern is the os.CreateTemp pattern for a temporary file beside base:
// hidden and ending in ".tmp", because a textfile collector reads only
// "*.prom" and must never see a half-written file.
func tempPattern(base string) string {
	return "." + base + ".*.tmp"
}

// crashRemoveStale removes the regular files in dir named as the temporary
// files of base are: "." + base + "." + digits + ".tmp".
func crashRemoveStale(dir, base string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Type().IsRegular() && crashIsTemp(e.Name(), base) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("remove stale temporary file: %w", err)
			}
		}
	}
	return nil
}

// crashIsTemp reports whether name is a temporary file of base as tempPattern
// makes them, the "*" replaced by digits.
func crashIsTemp(name, base string) bool {
	rest, ok := strings.CutPrefix(name, "."+base+".")
	if !ok {
		return false
	}
	digits, ok := strings.CutSuffix(rest, ".tmp")
	if !ok || digits == "" {
		return false
	}
	for _, c := range []byte(digits) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// syncDir flushes a directory's entries to disk.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return err
	}
	return d.Close()
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
