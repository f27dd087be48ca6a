package gcs

import (
	"net/url"
	"strings"
	"testing"
)

func TestParseLocation(t *testing.T) {
	cases := []struct {
		name string
		src  string // after "gcs::", or gs://
		want Location
	}{
		{name: "go-getter form", src: "https://www.googleapis.com/storage/v1/configs/prometheus/rules.yml",
			want: Location{Bucket: "configs", Object: "prometheus/rules.yml"}},
		{name: "go-getter form, one level", src: "https://www.googleapis.com/storage/v1/configs/rules.yml",
			want: Location{Bucket: "configs", Object: "rules.yml"}},
		{name: "go-getter form, generation", src: "https://www.googleapis.com/storage/v1/configs/rules.yml#1700000000000001",
			want: Location{Bucket: "configs", Object: "rules.yml", Generation: "1700000000000001"}},
		{name: "gs form", src: "gs://configs/prometheus/rules.yml",
			want: Location{Bucket: "configs", Object: "prometheus/rules.yml"}},
		{name: "gs form, escaped name", src: "gs://configs/dir/a%20b.yml",
			want: Location{Bucket: "configs", Object: "dir/a b.yml"}},
		{name: "gs form, generation", src: "gs://configs/rules.yml#42",
			want: Location{Bucket: "configs", Object: "rules.yml", Generation: "42"}},
		{name: "fetcher parameters left alone", src: "gs://configs/rules.yml?checksum=sha256:00",
			want: Location{Bucket: "configs", Object: "rules.yml"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u, err := url.Parse(tc.src)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseLocation(u, nil)
			if err != nil {
				t.Fatalf("ParseLocation: %v", err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseLocationQueryGiven(t *testing.T) {
	u, err := url.Parse("gs://configs/rules.yml?token=x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseLocation(u, url.Values{}); err != nil {
		t.Errorf("the query given was not the one used: %v", err)
	}
}

func TestParseLocationErrors(t *testing.T) {
	cases := []struct {
		name    string
		src     string
		wantErr string
	}{
		{name: "no object", src: "gs://configs", wantErr: "not an object"},
		{name: "prefix", src: "gs://configs/rules/", wantErr: "not an object"},
		{name: "no bucket", src: "gs:///rules.yml", wantErr: "no bucket"},
		{name: "short API path", src: "https://www.googleapis.com/storage/v1/configs", wantErr: "want https://www.googleapis.com/storage/v1/BUCKET/OBJECT"},
		{name: "not the storage API", src: "https://www.googleapis.com/compute/v1/configs/rules.yml", wantErr: "want https://www.googleapis.com/storage/v1/BUCKET/OBJECT"},
		{name: "other host", src: "https://storage.example.com/storage/v1/configs/rules.yml", wantErr: "want gs://BUCKET/OBJECT"},
		{name: "http", src: "http://www.googleapis.com/storage/v1/configs/rules.yml", wantErr: "want gs://BUCKET/OBJECT"},
		{name: "bad generation", src: "gs://configs/rules.yml#latest", wantErr: `generation "latest" is not a number`},
		{name: "unknown parameter, value not shown", src: "gs://configs/rules.yml?access_token=SECRET1", wantErr: `gcs source: unknown parameter "access_token"`},
		{name: "user info", src: "gs://user:SECRET1@configs/rules.yml", wantErr: "user info"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u, err := url.Parse(tc.src)
			if err != nil {
				t.Fatal(err)
			}
			_, err = ParseLocation(u, nil)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "SECRET1") {
				t.Errorf("error holds the secret: %v", err)
			}
		})
	}
}

func TestLocationString(t *testing.T) {
	loc := Location{Bucket: "configs", Object: "dir/rules.yml", Generation: "7"}
	if s := loc.String(); s != "gs://configs/dir/rules.yml#7" {
		t.Errorf("String() = %q", s)
	}
}
