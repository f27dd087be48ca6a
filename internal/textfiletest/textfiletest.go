// Package textfiletest reads a textfile back the way a scraper does, for
// the tests of the packages that write one (textfile, pipeline, commands,
// main): the reference parser of the text format, prometheus/common's
// expfmt, turns the file into textfile's families. Tests only: through
// expfmt the parser links protobuf, which the butler binary does not.
package textfiletest

import (
	"fmt"
	"os"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/butler-sre/butler/textfile"
)

// ReadFile parses a textfile back into families, sorted as textfile.Encode
// sorts them (see textfile.Check). It fails on anything Encode would refuse
// to write (an empty HELP text is accepted), on types other than gauge and
// counter, and on sample timestamps. A file that cannot be opened gives
// os.Open's error; any other error reads "parse metrics PATH: ...".
func ReadFile(path string) ([]textfile.Family, error) {
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
	fams := make([]textfile.Family, 0, len(mfs))
	for _, mf := range mfs {
		fam, err := fromDTO(mf)
		if err != nil {
			return nil, fmt.Errorf("parse metrics %s: %w", path, err)
		}
		fams = append(fams, fam)
	}
	sorted, err := textfile.Check(fams)
	if err != nil {
		return nil, fmt.Errorf("parse metrics %s: %w", path, err)
	}
	return sorted, nil
}

// fromDTO converts one parsed family. Series without labels get nil Labels.
func fromDTO(mf *dto.MetricFamily) (textfile.Family, error) {
	fam := textfile.Family{Name: mf.GetName(), Help: mf.GetHelp()}
	switch mf.GetType() {
	case dto.MetricType_GAUGE:
		fam.Type = textfile.Gauge
	case dto.MetricType_COUNTER:
		fam.Type = textfile.Counter
	default:
		return textfile.Family{}, fmt.Errorf("metric %s: unsupported type %s", fam.Name, mf.GetType())
	}
	for _, m := range mf.GetMetric() {
		if m.TimestampMs != nil {
			return textfile.Family{}, fmt.Errorf("metric %s: sample timestamps are not allowed", fam.Name)
		}
		s := textfile.Series{Value: m.GetGauge().GetValue()}
		if fam.Type == textfile.Counter {
			s.Value = m.GetCounter().GetValue()
		}
		for _, lp := range m.GetLabel() {
			s.Labels = append(s.Labels, textfile.Label{Name: lp.GetName(), Value: lp.GetValue()})
		}
		fam.Series = append(fam.Series, s)
	}
	return fam, nil
}
