package textfile

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/proto"
)

// expfmtText is what the reference encoder writes for fams, as Encode sorts
// them: the oracle Encode's own writer is held to.
func expfmtText(t *testing.T, fams []Family) string {
	t.Helper()
	var buf bytes.Buffer
	for _, f := range sortedCopy(fams) {
		mf := &dto.MetricFamily{Name: proto.String(f.Name), Help: proto.String(f.Help)}
		mf.Type = dto.MetricType_GAUGE.Enum()
		if f.Type == Counter {
			mf.Type = dto.MetricType_COUNTER.Enum()
		}
		for _, s := range f.Series {
			m := &dto.Metric{}
			for _, l := range slices.SortedFunc(slices.Values(s.Labels), compareNames) {
				m.Label = append(m.Label, &dto.LabelPair{Name: proto.String(l.Name), Value: proto.String(l.Value)})
			}
			if f.Type == Counter {
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
	cases := map[string][]Family{}
	for _, gc := range goldenCases() {
		cases[gc.name] = gc.fams
	}
	rng := rand.New(rand.NewPCG(7, 11))
	values := []float64{0, 1, -1, 0.5, 1e-300, 1.7976931348623157e308, math.Inf(1), math.Inf(-1), math.NaN(), 1763780000.123, 42}
	texts := []string{"a", "", "with \"quotes\"", "back\\slash", "line\nfeed", "ünïcode", "x{y}=z,"}
	for n := range 30 {
		var fams []Family
		for fi := range 1 + rng.IntN(4) {
			f := Family{Name: fmt.Sprintf("m_%d_%d", n, fi), Help: texts[rng.IntN(len(texts))] + "h", Type: Type(1 + rng.IntN(2))}
			for si := range rng.IntN(6) {
				l := L("i", fmt.Sprint(si))
				if rng.IntN(2) == 0 {
					l = append(l, Label{"text", texts[rng.IntN(len(texts))]})
				}
				f.Series = append(f.Series, Series{Labels: l, Value: values[rng.IntN(len(values))]})
			}
			fams = append(fams, f)
		}
		cases[fmt.Sprintf("random %d", n)] = fams
	}
	for name, fams := range cases {
		t.Run(name, func(t *testing.T) {
			var got bytes.Buffer
			if err := Encode(&got, fams); err != nil {
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
	var fams []Family
	for fi := range 10 {
		f := Family{Name: fmt.Sprintf("butler_metric_%d", fi), Help: "help", Type: Gauge}
		for si := range 800 {
			f.Series = append(f.Series, Series{Labels: L("manager", "m", "file", fmt.Sprintf("f%d.yml", si)), Value: 1763780000.5})
		}
		fams = append(fams, f)
	}
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := Encode(&buf, fams); err != nil {
			b.Fatal(err)
		}
	}
}
