package textfile_test

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/proto"

	"github.com/butler-sre/butler/textfile"
)

// expfmtText is what the reference encoder writes for fams, in the order
// textfile.Check puts them (families, series, the labels of a series): the
// oracle Encode's own writer is held to.
func expfmtText(t *testing.T, fams []textfile.Family) string {
	t.Helper()
	sorted, err := textfile.Check(fams)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for _, f := range sorted {
		mf := &dto.MetricFamily{Name: proto.String(f.Name), Help: proto.String(f.Help)}
		mf.Type = dto.MetricType_GAUGE.Enum()
		if f.Type == textfile.Counter {
			mf.Type = dto.MetricType_COUNTER.Enum()
		}
		for _, s := range f.Series {
			m := &dto.Metric{}
			for _, l := range s.Labels {
				m.Label = append(m.Label, &dto.LabelPair{Name: proto.String(l.Name), Value: proto.String(l.Value)})
			}
			if f.Type == textfile.Counter {
				m.Counter = &dto.Counter{Value: proto.Float64(s.Value)}
			} else {
				m.Gauge = &dto.Gauge{Value: proto.Float64(s.Value)}
			}
			mf.Metric = append(mf.Metric, m)
		}
		if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
			t.Fatal(err)
		}
	}
	return buf.String()
}

// TestEncodeMatchesExpfmt holds Encode's writer to expfmt's, byte for byte,
// on the golden cases and on random families with escapes, empty label
// values, special and extreme floats.
func TestEncodeMatchesExpfmt(t *testing.T) {
	cases := map[string][]textfile.Family{}
	for _, gc := range goldenCases() {
		cases[gc.name] = gc.fams
	}
	rng := rand.New(rand.NewPCG(7, 11))
	values := []float64{0, 1, -1, 0.5, 1e-300, 1.7976931348623157e308, math.Inf(1), math.Inf(-1), math.NaN(), 1763780000.123, 42}
	texts := []string{"a", "", "with \"quotes\"", "back\\slash", "line\nfeed", "ünïcode", "x{y}=z,"}
	for n := range 30 {
		var fams []textfile.Family
		for fi := range 1 + rng.IntN(4) {
			f := textfile.Family{Name: fmt.Sprintf("m_%d_%d", n, fi), Help: texts[rng.IntN(len(texts))] + "h", Type: textfile.Type(1 + rng.IntN(2))}
			for si := range rng.IntN(6) {
				l := textfile.L("i", fmt.Sprint(si))
				if rng.IntN(2) == 0 {
					l = append(l, textfile.Label{Name: "text", Value: texts[rng.IntN(len(texts))]})
				}
				f.Series = append(f.Series, textfile.Series{Labels: l, Value: values[rng.IntN(len(values))]})
			}
			fams = append(fams, f)
		}
		cases[fmt.Sprintf("random %d", n)] = fams
	}
	for name, fams := range cases {
		t.Run(name, func(t *testing.T) {
			var got bytes.Buffer
			if err := textfile.Encode(&got, fams); err != nil {
				t.Fatal(err)
			}
			if want := expfmtText(t, fams); got.String() != want {
				t.Errorf("Encode differs from expfmt:\n--- got\n%s\n--- want\n%s", got.String(), want)
			}
		})
	}
}

// BenchmarkEncode8000 encodes 8,000 series in 10 families, as a run of 1,000
// files writes them.
func BenchmarkEncode8000(b *testing.B) {
	var fams []textfile.Family
	for fi := range 10 {
		f := textfile.Family{Name: fmt.Sprintf("butler_metric_%d", fi), Help: "help", Type: textfile.Gauge}
		for si := range 800 {
			f.Series = append(f.Series, textfile.Series{Labels: textfile.L("manager", "m", "file", fmt.Sprintf("f%d.yml", si)), Value: 1763780000.5})
		}
		fams = append(fams, f)
	}
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := textfile.Encode(&buf, fams); err != nil {
			b.Fatal(err)
		}
	}
}
