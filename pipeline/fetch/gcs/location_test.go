package gcs

import (
	"net/url"
	"testing"

	"github.com/butler-sre/butler/internal/loctest"
)

func TestParseLocation(t *testing.T) {
	loctest.Run(t, "testdata/locations.txt", ParseLocation)
}

func TestParseLocationQueryGiven(t *testing.T) {
	if _, err := ParseLocation(loctest.URL(t, "gs://configs/rules.yml?token=x"), url.Values{}); err != nil {
		t.Errorf("the query given was not the one used: %v", err)
	}
}

func TestParseLocationErrors(t *testing.T) {
	loctest.RunErrors(t, "testdata/location_errors.txt", ParseLocation, "SECRET1")
}

func TestLocationString(t *testing.T) {
	loc := Location{Bucket: "configs", Object: "dir/rules.yml", Generation: "7"}
	if s := loc.String(); s != "gs://configs/dir/rules.yml#7" {
		t.Errorf("String() = %q", s)
	}
}
