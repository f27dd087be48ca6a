package source

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"strings"
	"testing"
)

// Digests of "version: 1\n".
const (
	md5V1    = "11a456755eb9fa796a0a76252386b85a"
	sha1V1   = "79f6c1950779a3558f3a5f2149c697b23704d971"
	sha256V1 = "09bfcc6a14b83e2192b8673677725c84883ee9cd0c70e45c9ec09daa8f2b2847"
	sha512V1 = "5d528c37c68eac02be21fb3eb17cb37eb56535f4fafca7d1e7d7421ad325c1c0c83f79f1ee5c0164c86b942a60241e6e50b8cc43306e9ebbda61c3b6cbe2aea2"
)

// testKey is a private key whose base64 form holds "+" and "/".
var testKey = []byte("-----BEGIN OPENSSH PRIVATE KEY-----\n\xfb\xef\xbe\xff\xfe\n-----END OPENSSH PRIVATE KEY-----\n")

func TestParse(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString(testKey)
	if !strings.Contains(b64, "+") || !strings.Contains(b64, "/") {
		t.Fatalf("test key %q does not exercise + and /", b64)
	}
	type want struct {
		scheme, url, subdir, ref string
		depth                    int
		sshKey                   []byte
		checksum                 string // "TYPE:HEX" or "file:SOURCE"
		query                    url.Values
		bucket, object, region   string
		endpoint                 string
	}
	cases := []struct {
		name    string
		src     string
		want    want
		wantErr string
	}{
		// http(s)
		{name: "https", src: "https://cfg.example.com/p.yml", want: want{scheme: "https", url: "https://cfg.example.com/p.yml"}},
		{name: "upper-case scheme", src: "HTTPS://cfg.example.com/p.yml", want: want{scheme: "https", url: "https://cfg.example.com/p.yml"}},
		{name: "http with user info and port", src: "http://u:pw@127.0.0.1:8080/p.yml", want: want{scheme: "http", url: "http://u:pw@127.0.0.1:8080/p.yml"}},
		{
			name: "server query kept as written, checksum and archive taken out",
			src:  "https://h/p.yml?b=2&checksum=sha256:" + sha256V1 + "&a=%2F1&archive=false",
			want: want{scheme: "https", url: "https://h/p.yml?b=2&a=%2F1", checksum: "sha256:" + sha256V1,
				query: url.Values{"b": {"2"}, "a": {"/1"}}},
		},
		{name: "https without a host", src: "https:///p.yml", wantErr: "without a host"},
		{name: "forced https on a file", src: "https::/etc/p.yml", wantErr: "https:: cannot fetch a file URL"},

		// s3
		{
			name: "s3 path style, dot region",
			src:  "s3::https://s3.eu-west-1.amazonaws.com/bucket/rules/common.yml",
			want: want{scheme: "s3", url: "https://s3.eu-west-1.amazonaws.com/bucket/rules/common.yml", bucket: "bucket", object: "rules/common.yml", region: "eu-west-1"},
		},
		{
			name: "s3 path style, dash region, version",
			src:  "s3::https://s3-eu-west-1.amazonaws.com/bucket/k.yml?version=7",
			want: want{scheme: "s3", url: "https://s3-eu-west-1.amazonaws.com/bucket/k.yml", bucket: "bucket", object: "k.yml", region: "eu-west-1", query: url.Values{"version": {"7"}}},
		},
		{
			name: "s3 path style, no region",
			src:  "s3::https://s3.amazonaws.com/bucket/k.yml",
			want: want{scheme: "s3", url: "https://s3.amazonaws.com/bucket/k.yml", bucket: "bucket", object: "k.yml", region: "us-east-1"},
		},
		{
			name: "s3 virtual host, dot region",
			src:  "s3::https://bucket.s3.eu-west-1.amazonaws.com/a/k.yml",
			want: want{scheme: "s3", url: "https://bucket.s3.eu-west-1.amazonaws.com/a/k.yml", bucket: "bucket", object: "a/k.yml", region: "eu-west-1"},
		},
		{
			name: "s3 virtual host, dash region",
			src:  "s3::https://bucket.s3-eu-west-1.amazonaws.com/k.yml",
			want: want{scheme: "s3", url: "https://bucket.s3-eu-west-1.amazonaws.com/k.yml", bucket: "bucket", object: "k.yml", region: "eu-west-1"},
		},
		{
			name: "s3 virtual host, no region",
			src:  "s3::https://bucket.s3.amazonaws.com/k.yml",
			want: want{scheme: "s3", url: "https://bucket.s3.amazonaws.com/k.yml", bucket: "bucket", object: "k.yml", region: "us-east-1"},
		},
		{
			name: "s3 in the China partition",
			src:  "s3::https://s3.cn-north-1.amazonaws.com.cn/bucket/k.yml",
			want: want{scheme: "s3", url: "https://s3.cn-north-1.amazonaws.com.cn/bucket/k.yml", bucket: "bucket", object: "k.yml", region: "cn-north-1"},
		},
		{
			name: "s3 shorthand, virtual host",
			src:  "bucket.s3.amazonaws.com/rules.yml",
			want: want{scheme: "s3", url: "https://s3.amazonaws.com/bucket/rules.yml", bucket: "bucket", object: "rules.yml", region: "us-east-1"},
		},
		{
			name: "s3 shorthand, virtual host, dash region",
			src:  "bucket.s3-eu-west-1.amazonaws.com/a/b.yml",
			want: want{scheme: "s3", url: "https://s3-eu-west-1.amazonaws.com/bucket/a/b.yml", bucket: "bucket", object: "a/b.yml", region: "eu-west-1"},
		},
		{
			name: "s3 shorthand, virtual host, dot region",
			src:  "bucket.s3.eu-west-1.amazonaws.com/a/b.yml",
			want: want{scheme: "s3", url: "https://s3.eu-west-1.amazonaws.com/bucket/a/b.yml", bucket: "bucket", object: "a/b.yml", region: "eu-west-1"},
		},
		{
			name: "s3 shorthand, path style, dot region",
			src:  "s3.eu-west-1.amazonaws.com/bucket/k.yml",
			want: want{scheme: "s3", url: "https://s3.eu-west-1.amazonaws.com/bucket/k.yml", bucket: "bucket", object: "k.yml", region: "eu-west-1"},
		},
		{
			name: "s3 shorthand, path style, dash region, version",
			src:  "s3-eu-west-1.amazonaws.com/bucket/k.yml?version=3",
			want: want{scheme: "s3", url: "https://s3-eu-west-1.amazonaws.com/bucket/k.yml", bucket: "bucket", object: "k.yml", region: "eu-west-1", query: url.Values{"version": {"3"}}},
		},
		{
			name: "s3 compatible endpoint with credentials",
			src:  "s3::http://127.0.0.1:9000/bucket/dir/k.yml?region=eu-central-1&aws_access_key_id=AKID&aws_access_key_secret=S3CRETVALUE&aws_access_token=T0KEN",
			want: want{scheme: "s3", url: "http://127.0.0.1:9000/bucket/dir/k.yml", bucket: "bucket", object: "dir/k.yml", region: "eu-central-1", endpoint: "http://127.0.0.1:9000",
				query: url.Values{"region": {"eu-central-1"}, "aws_access_key_id": {"AKID"}, "aws_access_key_secret": {"S3CRETVALUE"}, "aws_access_token": {"T0KEN"}}},
		},
		{
			name: "s3 compatible endpoint, default region",
			src:  "s3::https://minio.internal/bucket/k.yml",
			want: want{scheme: "s3", url: "https://minio.internal/bucket/k.yml", bucket: "bucket", object: "k.yml", region: "us-east-1", endpoint: "https://minio.internal"},
		},
		{
			name: "s3 whole bucket, a directory source",
			src:  "s3::https://s3.amazonaws.com/bucket/",
			want: want{scheme: "s3", url: "https://s3.amazonaws.com/bucket/", bucket: "bucket", object: "", region: "us-east-1"},
		},
		{name: "s3 without a key", src: "s3::https://s3.amazonaws.com/bucket", wantErr: "not a valid S3 URL"},
		{name: "s3 on an AWS host that is not S3", src: "s3::https://ec2.amazonaws.com/bucket/k", wantErr: "not a valid S3 URL"},
		{name: "s3 shorthand of too many labels", src: "a.b.c.d.amazonaws.com/k", wantErr: "not a valid S3 URL"},
		{name: "s3 over ftp", src: "s3::ftp://h/bucket/k", wantErr: "s3:: cannot fetch a ftp URL"},

		// gcs
		{
			name: "forced gcs",
			src:  "gcs::https://www.googleapis.com/storage/v1/bucket/dir/o.yml",
			want: want{scheme: "gcs", url: "https://www.googleapis.com/storage/v1/bucket/dir/o.yml", bucket: "bucket", object: "dir/o.yml"},
		},
		{
			name: "gs URL",
			src:  "gs://bucket/dir/o.yml",
			want: want{scheme: "gcs", url: "https://www.googleapis.com/storage/v1/bucket/dir/o.yml", bucket: "bucket", object: "dir/o.yml"},
		},
		{
			name: "gcs shorthand",
			src:  "www.googleapis.com/storage/v1/bucket/o.yml",
			want: want{scheme: "gcs", url: "https://www.googleapis.com/storage/v1/bucket/o.yml", bucket: "bucket", object: "o.yml"},
		},
		{
			name: "gcs generation",
			src:  "gcs::https://www.googleapis.com/storage/v1/bucket/o.yml#1700000000",
			want: want{scheme: "gcs", url: "https://www.googleapis.com/storage/v1/bucket/o.yml#1700000000", bucket: "bucket", object: "o.yml"},
		},
		{name: "gcs generation not a number", src: "gcs::https://www.googleapis.com/storage/v1/bucket/o.yml#x", wantErr: "generation"},
		{name: "gcs on another host", src: "gcs::https://storage.example.com/storage/v1/bucket/o.yml", wantErr: "not a valid GCS URL"},
		{name: "gcs shorthand without an object", src: "www.googleapis.com/storage/v1/bucket", wantErr: "not a valid GCS URL"},

		// file
		{name: "absolute path", src: "/etc/butler/p.yml", want: want{scheme: "file", url: "file:///etc/butler/p.yml"}},
		{name: "file URL", src: "file:///etc/butler/p.yml", want: want{scheme: "file", url: "file:///etc/butler/p.yml"}},
		{name: "forced file", src: "file::/etc/butler/p.yml", want: want{scheme: "file", url: "file:///etc/butler/p.yml"}},
		{name: "path with a space", src: "/etc/my rules.yml", want: want{scheme: "file", url: "file:///etc/my%20rules.yml"}},
		{
			name: "absolute path with a checksum",
			src:  "/etc/butler/p.yml?checksum=md5:" + md5V1,
			want: want{scheme: "file", url: "file:///etc/butler/p.yml", checksum: "md5:" + md5V1},
		},
		{name: "file URL with a host", src: "file://etc/butler/p.yml", wantErr: `host "etc"`},
		{name: "relative path not resolved", src: "rules.yml", wantErr: "relative paths"},

		// git
		{
			name: "forced git over https with subdir and ref",
			src:  "git::https://example.com/repo.git//prometheus/rules.yml?ref=v1",
			want: want{scheme: "git", url: "https://example.com/repo.git", subdir: "prometheus/rules.yml", ref: "v1"},
		},
		{
			name: "forced git with subdir, no query",
			src:  "git::https://example.com/repo.git//rules.yml",
			want: want{scheme: "git", url: "https://example.com/repo.git", subdir: "rules.yml"},
		},
		{
			name: "forced git without subdir",
			src:  "git::https://example.com/repo.git?ref=main",
			want: want{scheme: "git", url: "https://example.com/repo.git", ref: "main"},
		},
		{
			name: "git keeps the query parameters it does not read",
			src:  "git::https://example.com/repo.git//p.yml?ref=v1&x=1&depth=5",
			want: want{scheme: "git", url: "https://example.com/repo.git?x=1", subdir: "p.yml", ref: "v1", depth: 5, query: url.Values{"x": {"1"}}},
		},
		{name: "github shorthand", src: "github.com/org/repo", want: want{scheme: "git", url: "https://github.com/org/repo.git"}},
		{name: "github shorthand with a file", src: "github.com/org/repo/dir/p.yml", want: want{scheme: "git", url: "https://github.com/org/repo.git", subdir: "dir/p.yml"}},
		{
			name: "github shorthand with subdir, ref and depth",
			src:  "github.com/org/repo//dir/p.yml?ref=main&depth=3",
			want: want{scheme: "git", url: "https://github.com/org/repo.git", subdir: "dir/p.yml", ref: "main", depth: 3},
		},
		{
			name: "github shorthand with a file and a ref, no //",
			src:  "github.com/org/repo/dir/p.yml?ref=v2",
			want: want{scheme: "git", url: "https://github.com/org/repo.git", subdir: "dir/p.yml", ref: "v2"},
		},
		{name: "github shorthand ending in .git", src: "github.com/org/repo.git//p.yml", want: want{scheme: "git", url: "https://github.com/org/repo.git", subdir: "p.yml"}},
		{name: "gitlab shorthand", src: "gitlab.com/org/repo//p.yml", want: want{scheme: "git", url: "https://gitlab.com/org/repo.git", subdir: "p.yml"}},
		{
			name: "scp-like",
			src:  "git@github.com:org/repo.git//p.yml?ref=v2",
			want: want{scheme: "git", url: "ssh://git@github.com/org/repo.git", subdir: "p.yml", ref: "v2"},
		},
		{
			name: "ssh URL with sshkey",
			src:  "git::ssh://git@127.0.0.1:2222/srv/repo.git//p.yml?sshkey=" + url.QueryEscape(b64),
			want: want{scheme: "git", url: "ssh://git@127.0.0.1:2222/srv/repo.git", subdir: "p.yml", sshKey: testKey},
		},
		{
			name: "sshkey with + not escaped",
			src:  "git::ssh://git@127.0.0.1/srv/repo.git//p.yml?sshkey=" + b64,
			want: want{scheme: "git", url: "ssh://git@127.0.0.1/srv/repo.git", subdir: "p.yml", sshKey: testKey},
		},
		{name: "sshkey not base64", src: "git::ssh://git@127.0.0.1/r.git//p.yml?sshkey=PRIVATE-KEY-MATERIAL!", wantErr: "sshkey is not valid base64"},
		{name: "git over file", src: "git::file:///srv/repo//conf/a.yml", want: want{scheme: "git", url: "file:///srv/repo", subdir: "conf/a.yml"}},
		{name: "forced git on a path", src: "git::/srv/repo//a.yml", want: want{scheme: "git", url: "file:///srv/repo", subdir: "a.yml"}},
		{name: "git protocol", src: "git://example.com/repo.git//p.yml", want: want{scheme: "git", url: "git://example.com/repo.git", subdir: "p.yml"}},
		{name: "subdir cleaned", src: "git::https://h/r.git//a/./b/../c.yml", want: want{scheme: "git", url: "https://h/r.git", subdir: "a/c.yml"}},
		{name: "subdir climbing out", src: "git::https://h/r.git//../etc/passwd", wantErr: "climbs out"},
		{name: "depth not a number", src: "git::https://h/r.git//p.yml?depth=deep", wantErr: `depth "deep"`},
		{name: "negative depth", src: "git::https://h/r.git//p.yml?depth=-1", wantErr: `depth "-1"`},
		{name: "ref like an option", src: "git::https://h/r.git//p.yml?ref=--upload-pack=x", wantErr: "not a git ref"},
		{name: "git ext transport", src: "git::ext::sh -c touch% pwned", wantErr: "git:: cannot fetch a ext URL"},
		{name: "git over ftp", src: "git::ftp://h/r.git//p.yml", wantErr: "cannot fetch a ftp URL"},

		// checksums
		{name: "checksum md5", src: "https://h/p.yml?checksum=md5:" + md5V1, want: want{scheme: "https", url: "https://h/p.yml", checksum: "md5:" + md5V1}},
		{name: "checksum sha1", src: "https://h/p.yml?checksum=sha1:" + sha1V1, want: want{scheme: "https", url: "https://h/p.yml", checksum: "sha1:" + sha1V1}},
		{name: "checksum sha256", src: "https://h/p.yml?checksum=sha256:" + sha256V1, want: want{scheme: "https", url: "https://h/p.yml", checksum: "sha256:" + sha256V1}},
		{name: "checksum sha512", src: "https://h/p.yml?checksum=sha512:" + sha512V1, want: want{scheme: "https", url: "https://h/p.yml", checksum: "sha512:" + sha512V1}},
		{name: "checksum type in capitals", src: "https://h/p.yml?checksum=SHA256:" + sha256V1, want: want{scheme: "https", url: "https://h/p.yml", checksum: "sha256:" + sha256V1}},
		{name: "bare checksum of sha256 length", src: "https://h/p.yml?checksum=" + sha256V1, want: want{scheme: "https", url: "https://h/p.yml", checksum: "sha256:" + sha256V1}},
		{name: "bare checksum of md5 length", src: "https://h/p.yml?checksum=" + md5V1, want: want{scheme: "https", url: "https://h/p.yml", checksum: "md5:" + md5V1}},
		{
			name: "checksum file",
			src:  "https://h/dir/p.yml?checksum=file:https://h/dir/SHA256SUMS",
			want: want{scheme: "https", url: "https://h/dir/p.yml", checksum: "file:https://h/dir/SHA256SUMS"},
		},
		{
			name: "checksum on a git file",
			src:  "git::https://h/r.git//p.yml?ref=v1&checksum=sha1:" + sha1V1,
			want: want{scheme: "git", url: "https://h/r.git", subdir: "p.yml", ref: "v1", checksum: "sha1:" + sha1V1},
		},
		{name: "unknown checksum type", src: "https://h/p.yml?checksum=crc32:abcd1234", wantErr: `unsupported checksum type "crc32"`},
		{name: "checksum not hexadecimal", src: "https://h/p.yml?checksum=sha256:xyz", wantErr: "not hexadecimal"},
		{name: "checksum of the wrong length for its type", src: "https://h/p.yml?checksum=sha256:" + md5V1, wantErr: "a sha256 checksum has 64"},
		{name: "bare checksum of no known length", src: "https://h/p.yml?checksum=abcd", wantErr: "no known type"},
		{name: "checksum file without a source", src: "https://h/p.yml?checksum=file:", wantErr: "names no checksum file"},

		// errors of Detect come through, without credentials
		{name: "unsupported scheme", src: "ftp://user:topsecretpw@h/p.yml?token=tok-secret-1", wantErr: `unsupported source scheme "ftp"`},
		{name: "credentials never in a parse error", src: "https://user:topsecretpw@h/p.yml?token=tok-secret-1&checksum=bogus:1", wantErr: "unsupported checksum type"},
		{name: "empty", src: "", wantErr: "empty source"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.src)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Parse(%q) = %+v, %v; want an error containing %q", tc.src, got, err, tc.wantErr)
				}
				for _, s := range []string{"topsecretpw", "tok-secret-1", "PRIVATE-KEY-MATERIAL"} {
					if strings.Contains(err.Error(), s) {
						t.Errorf("error %q contains the secret %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.src, err)
			}
			w := tc.want
			checks := []struct {
				field     string
				got, want any
			}{
				{"Scheme", got.Scheme, w.scheme},
				{"URL", got.URL.String(), w.url},
				{"Subdir", got.Subdir, w.subdir},
				{"Ref", got.Ref, w.ref},
				{"Depth", got.Depth, w.depth},
				{"Bucket", got.Bucket, w.bucket},
				{"Object", got.Object, w.object},
				{"Region", got.Region, w.region},
				{"Endpoint", got.Endpoint, w.endpoint},
				{"Query", got.Query.Encode(), w.query.Encode()},
				{"Checksum", checksumString(got.Checksum), w.checksum},
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("Parse(%q).%s = %v, want %v", tc.src, c.field, c.got, c.want)
				}
			}
			if !bytes.Equal(got.SSHKey, w.sshKey) {
				t.Errorf("Parse(%q).SSHKey = %q, want %q", tc.src, got.SSHKey, w.sshKey)
			}
			if got.Scheme == "file" && got.URL.RawPath != "" {
				t.Errorf("file URL %q has a RawPath: URL.Path must be the path to read", got.URL)
			}
		})
	}
}

// checksumString is "TYPE:HEX", "file:SOURCE" or "".
func checksumString(c *Checksum) string {
	switch {
	case c == nil:
		return ""
	case c.Type == "file":
		return "file:" + c.File
	default:
		return c.Type + ":" + hex.EncodeToString(c.Value)
	}
}

// TestParseFilePath checks that URL.Path of a file source is the path as
// it was written, spaces and all.
func TestParseFilePath(t *testing.T) {
	cases := []struct {
		name, src, want string
	}{
		{name: "plain", src: "/etc/butler/p.yml", want: "/etc/butler/p.yml"},
		{name: "space", src: "/etc/my rules.yml", want: "/etc/my rules.yml"},
		{name: "escaped space in a file URL", src: "file:///etc/my%20rules.yml", want: "/etc/my rules.yml"},
		{name: "escaped slash read as written", src: "file:///etc/a%2Fb.yml", want: "/etc/a%2Fb.yml"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse(tc.src)
			if err != nil {
				t.Fatal(err)
			}
			if s.URL.Path != tc.want {
				t.Errorf("Parse(%q).URL.Path = %q, want %q", tc.src, s.URL.Path, tc.want)
			}
		})
	}
}
