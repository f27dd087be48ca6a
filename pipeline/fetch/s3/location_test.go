package s3

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/butler-sre/butler/internal/loctest"
)

func TestParseLocation(t *testing.T) {
	loctest.Run(t, "testdata/locations.txt", ParseLocation)
}

func TestParseLocationQueryGiven(t *testing.T) {
	got, err := ParseLocation(loctest.URL(t, "http://127.0.0.1:9000/bucket/a.yml?region=ignored"), url.Values{"region": {"eu-north-1"}, "version": {"9"}})
	if err != nil {
		t.Fatal(err)
	}
	if got.Region != "eu-north-1" || got.VersionID != "9" {
		t.Errorf("query not taken from the values given: %+v", got)
	}
}

func TestParseLocationErrors(t *testing.T) {
	const secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	loctest.RunErrors(t, "testdata/location_errors.txt", ParseLocation, secret, url.QueryEscape(secret))
}

func TestLocationPrintsNoKeys(t *testing.T) {
	loc, err := ParseLocation(loctest.URL(t, "http://127.0.0.1:9000/bucket/a.yml?aws_access_key_id=KEYID1&aws_access_key_secret=SECRET1&aws_access_token=TOKEN1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !loc.HasKeys() {
		t.Error("HasKeys false for a source with keys")
	}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		s := fmt.Sprintf(format, loc)
		if s != "s3://bucket/a.yml" {
			t.Errorf("%s gives %q", format, s)
		}
	}
	if got := strings.Join(loc.Secrets(), ","); got != "KEYID1,SECRET1,TOKEN1" {
		t.Errorf("Secrets() = %q", got)
	}
}
