package s3

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
)

func TestParseLocation(t *testing.T) {
	cases := []struct {
		name string
		src  string // after "s3::"
		want Location
	}{
		{name: "global path style", src: "https://s3.amazonaws.com/bucket/rules/a.yml",
			want: Location{Bucket: "bucket", Key: "rules/a.yml", Region: "us-east-1"}},
		{name: "global path style with region", src: "https://s3.amazonaws.com/bucket/a.yml?region=eu-central-1",
			want: Location{Bucket: "bucket", Key: "a.yml", Region: "eu-central-1"}},
		{name: "dash region path style", src: "https://s3-eu-west-1.amazonaws.com/bucket/a.yml",
			want: Location{Bucket: "bucket", Key: "a.yml", Region: "eu-west-1"}},
		{name: "dot region path style", src: "https://s3.eu-west-1.amazonaws.com/bucket/dir/a.yml",
			want: Location{Bucket: "bucket", Key: "dir/a.yml", Region: "eu-west-1"}},
		{name: "host region wins over the parameter", src: "https://s3.eu-west-1.amazonaws.com/bucket/a.yml?region=us-west-2",
			want: Location{Bucket: "bucket", Key: "a.yml", Region: "eu-west-1"}},
		{name: "virtual host dot region", src: "https://bucket.s3.eu-west-1.amazonaws.com/dir/a.yml",
			want: Location{Bucket: "bucket", Key: "dir/a.yml", Region: "eu-west-1"}},
		{name: "virtual host dash region", src: "https://bucket.s3-ap-southeast-2.amazonaws.com/a.yml",
			want: Location{Bucket: "bucket", Key: "a.yml", Region: "ap-southeast-2"}},
		{name: "virtual host global", src: "https://bucket.s3.amazonaws.com/a.yml",
			want: Location{Bucket: "bucket", Key: "a.yml", Region: "us-east-1"}},
		{name: "virtual host, bucket with dots", src: "https://my.configs.s3.eu-west-1.amazonaws.com/a.yml",
			want: Location{Bucket: "my.configs", Key: "a.yml", Region: "eu-west-1"}},
		{name: "virtual host, bucket named like the s3 label", src: "https://s3-configs.s3.us-west-2.amazonaws.com/a.yml",
			want: Location{Bucket: "s3-configs", Key: "a.yml", Region: "us-west-2"}},
		{name: "s3-external-1 is us-east-1", src: "https://s3-external-1.amazonaws.com/bucket/a.yml",
			want: Location{Bucket: "bucket", Key: "a.yml", Region: "us-east-1"}},
		{name: "china partition", src: "https://s3.cn-north-1.amazonaws.com.cn/bucket/a.yml",
			want: Location{Bucket: "bucket", Key: "a.yml", Region: "cn-north-1"}},
		{name: "upper case host", src: "https://S3.EU-WEST-1.AMAZONAWS.COM/Bucket/A.yml",
			want: Location{Bucket: "Bucket", Key: "A.yml", Region: "eu-west-1"}},
		{name: "version", src: "https://s3.amazonaws.com/bucket/a.yml?version=3HL4kqtJlcpXroDTDmJ%2BrmSpXd3dIbrHY",
			want: Location{Bucket: "bucket", Key: "a.yml", Region: "us-east-1", VersionID: "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY"}},
		{name: "escaped key", src: "https://s3.amazonaws.com/bucket/dir/a%20b.yml",
			want: Location{Bucket: "bucket", Key: "dir/a b.yml", Region: "us-east-1"}},
		{name: "profile", src: "https://s3.amazonaws.com/bucket/a.yml?aws_profile=ops",
			want: Location{Bucket: "bucket", Key: "a.yml", Region: "us-east-1", Profile: "ops"}},
		{name: "fetcher parameters left alone", src: "https://s3.amazonaws.com/bucket/a.yml?checksum=sha256:00&archive=false",
			want: Location{Bucket: "bucket", Key: "a.yml", Region: "us-east-1"}},
		{name: "custom endpoint with keys", src: "http://127.0.0.1:9000/bucket/dir/a.yml?region=us-east-1&aws_access_key_id=ID&aws_access_key_secret=SECRET&aws_access_token=TOKEN",
			want: Location{Bucket: "bucket", Key: "dir/a.yml", Region: "us-east-1", Endpoint: "http://127.0.0.1:9000", keys: keys{"ID", "SECRET", "TOKEN"}}},
		{name: "custom endpoint, no region", src: "https://minio.internal/bucket/a.yml",
			want: Location{Bucket: "bucket", Key: "a.yml", Endpoint: "https://minio.internal"}},
		{name: "custom endpoint, any region name", src: "http://127.0.0.1:9000/bucket/a.yml?region=garage",
			want: Location{Bucket: "bucket", Key: "a.yml", Region: "garage", Endpoint: "http://127.0.0.1:9000"}},
		{name: "custom endpoint, version", src: "http://127.0.0.1:9000/bucket/a.yml?version=7",
			want: Location{Bucket: "bucket", Key: "a.yml", VersionID: "7", Endpoint: "http://127.0.0.1:9000"}},
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
				t.Errorf("got  %+v %+v\nwant %+v %+v", got, got.keys, tc.want, tc.want.keys)
			}
		})
	}
}

func TestParseLocationQueryGiven(t *testing.T) {
	u, err := url.Parse("http://127.0.0.1:9000/bucket/a.yml?region=ignored")
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseLocation(u, url.Values{"region": {"eu-north-1"}, "version": {"9"}})
	if err != nil {
		t.Fatal(err)
	}
	if got.Region != "eu-north-1" || got.VersionID != "9" {
		t.Errorf("query not taken from the values given: %+v", got)
	}
}

func TestParseLocationErrors(t *testing.T) {
	const secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	cases := []struct {
		name    string
		src     string
		wantErr string
	}{
		{name: "no key", src: "https://s3.amazonaws.com/bucket", wantErr: "not an object"},
		{name: "empty key", src: "https://s3.amazonaws.com/bucket/", wantErr: "not an object"},
		{name: "prefix", src: "https://s3.amazonaws.com/bucket/rules/", wantErr: "not an object"},
		{name: "no bucket", src: "https://s3.amazonaws.com/", wantErr: "no bucket"},
		{name: "virtual host without key", src: "https://bucket.s3.eu-west-1.amazonaws.com/", wantErr: "not an object"},
		{name: "not an s3 host", src: "https://ec2.eu-west-1.amazonaws.com/bucket/a.yml", wantErr: "not an S3 host"},
		{name: "not a region", src: "https://s3-website-us-east-1.amazonaws.com/bucket/a.yml", wantErr: "not an AWS region"},
		{name: "bad region parameter on AWS", src: "https://s3.amazonaws.com/bucket/a.yml?region=mars", wantErr: "not an AWS region"},
		{name: "unsupported host form", src: "https://s3.dualstack.eu-west-1.amazonaws.com/bucket/a.yml", wantErr: "host form not supported"},
		{name: "unknown parameter", src: "http://127.0.0.1:9000/bucket/a.yml?aws_secret_access_key=" + secret, wantErr: `unknown parameter "aws_secret_access_key"`},
		{name: "parameter twice", src: "http://127.0.0.1:9000/bucket/a.yml?region=a&region=b", wantErr: `"region" given 2 times`},
		{name: "secret without id", src: "http://127.0.0.1:9000/bucket/a.yml?aws_access_key_secret=" + secret, wantErr: "without aws_access_key_id"},
		{name: "id without secret", src: "http://127.0.0.1:9000/bucket/a.yml?aws_access_key_id=ID", wantErr: "without aws_access_key_secret"},
		{name: "keys and profile", src: "http://127.0.0.1:9000/bucket/a.yml?aws_profile=p&aws_access_key_id=ID&aws_access_key_secret=" + secret, wantErr: "use one"},
		{name: "user info", src: "http://ID:" + url.PathEscape(secret) + "@127.0.0.1:9000/bucket/a.yml", wantErr: "user info"},
		{name: "scheme", src: "ftp://127.0.0.1/bucket/a.yml", wantErr: `scheme "ftp"`},
		{name: "no host", src: "https:///bucket/a.yml", wantErr: "no host"},
		{name: "error names the source without its keys", src: "https://s3.amazonaws.com/?aws_access_key_id=ID&aws_access_key_secret=" + secret, wantErr: "s3 source https://s3.amazonaws.com/?aws_access_key_id=xxxxx&aws_access_key_secret=xxxxx: no bucket"},
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
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), url.QueryEscape(secret)) {
				t.Errorf("error holds the secret: %v", err)
			}
		})
	}
}

func TestLocationPrintsNoKeys(t *testing.T) {
	u, err := url.Parse("http://127.0.0.1:9000/bucket/a.yml?aws_access_key_id=KEYID1&aws_access_key_secret=SECRET1&aws_access_token=TOKEN1")
	if err != nil {
		t.Fatal(err)
	}
	loc, err := ParseLocation(u, nil)
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
