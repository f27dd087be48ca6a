package textfile

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
)

// checkNames holds isMetricName and isLabelName to prometheus/common's
// legacy validation, the character sets a scraper reads, for name.
func checkNames(t *testing.T, name string) {
	t.Helper()
	if got, want := isMetricName(name), model.LegacyValidation.IsValidMetricName(name); got != want {
		t.Errorf("isMetricName(%q) = %v, model.LegacyValidation says %v", name, got, want)
	}
	if got, want := isLabelName(name), model.LegacyValidation.IsValidLabelName(name); got != want {
		t.Errorf("isLabelName(%q) = %v, model.LegacyValidation says %v", name, got, want)
	}
}

func TestNamesMatchLegacyValidation(t *testing.T) {
	tests := []struct {
		name, in string
	}{
		{"empty", ""},
		{"one letter", "a"},
		{"one capital", "Z"},
		{"underscore alone", "_"},
		{"colon alone", ":"},
		{"digit alone", "0"},
		{"leading digit", "1m"},
		{"trailing digit", "m1"},
		{"all classes", "aZ_:09"},
		{"leading colon", ":m"},
		{"colon inside", "a:b"},
		{"colon at the end", "ab:"},
		{"leading underscores", "__x"},
		{"reserved name", "__name__"},
		{"underscore then digit", "_9"},
		{"dash", "butler-write"},
		{"dot", "a.b"},
		{"space", "a b"},
		{"leading space", " a"},
		{"newline", "a\n"},
		{"nul byte", "a\x00"},
		{"backquote and braces", "a`{}"},
		{"bytes around the letters", "@[`{"},
		{"utf-8 letter", "bütler"},
		{"utf-8 alone", "ü"},
		{"kelvin sign", "\u212a"},
		{"fullwidth letter", "\uff41"},
		{"invalid utf-8", "a\xff"},
		{"lone continuation byte", "\x80a"},
		{"long name", strings.Repeat("butler_", 100)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkNames(t, tt.in) })
	}
	t.Run("random", func(t *testing.T) {
		// Short strings over a small alphabet meet every class of byte in
		// every position; the seed is fixed so a failure repeats.
		alphabet := []string{"a", "Z", "_", ":", "0", "9", "-", ".", "ü", "\xff", " "}
		rng := rand.New(rand.NewPCG(1, 2))
		for range 5000 {
			var b strings.Builder
			for range rng.IntN(6) {
				b.WriteString(alphabet[rng.IntN(len(alphabet))])
			}
			checkNames(t, b.String())
		}
	})
}
