package source

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/butler-sre/butler/internal/casefile"
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

// parseWant is what TestParse wants of a Source.
type parseWant struct {
	scheme, url, subdir, ref string
	depth                    int
	sshKey                   []byte
	checksum                 string // "TYPE:HEX" or "file:SOURCE"
	query                    url.Values
	bucket, object, region   string
	endpoint                 string
}

// readParseWant reads the KEY=VALUE fields of a want of testdata/parse.txt.
func readParseWant(t *testing.T, s string) parseWant {
	t.Helper()
	var w parseWant
	text := map[string]*string{
		"scheme": &w.scheme, "url": &w.url, "subdir": &w.subdir, "ref": &w.ref, "checksum": &w.checksum,
		"bucket": &w.bucket, "object": &w.object, "region": &w.region, "endpoint": &w.endpoint,
	}
	for _, kv := range strings.Fields(s) {
		k, v, _ := strings.Cut(kv, "=")
		var err error
		switch p, ok := text[k]; {
		case ok:
			*p = v
		case k == "depth":
			w.depth, err = strconv.Atoi(v)
		case k == "query":
			w.query, err = url.ParseQuery(v)
		case k == "sshkey" && v == "testkey":
			w.sshKey = testKey
		default:
			t.Fatalf("unknown field %q in want %q", kv, s)
		}
		if err != nil {
			t.Fatalf("%s: %v", kv, err)
		}
	}
	return w
}

func TestParse(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString(testKey)
	if !strings.Contains(b64, "+") || !strings.Contains(b64, "/") {
		t.Fatalf("test key %q does not exercise + and /", b64)
	}
	expand := strings.NewReplacer("{md5}", md5V1, "{sha1}", sha1V1, "{sha256}", sha256V1, "{sha512}", sha512V1,
		"{key}", b64, "{key-escaped}", url.QueryEscape(b64)).Replace
	casefile.Run(t, "testdata/parse.txt", 2, func(t *testing.T, tc casefile.Case) {
		src, want := expand(tc.Fields[0]), expand(tc.Fields[1])
		got, err := Parse(src)
		if wantErr, ok := casefile.WantErr(want); ok {
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Fatalf("Parse(%q) = %+v, %v; want an error containing %q", src, got, err, wantErr)
			}
			for _, s := range []string{"topsecretpw", "tok-secret-1", "PRIVATE-KEY-MATERIAL"} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q contains the secret %q", err, s)
				}
			}
			return
		}
		if err != nil {
			t.Fatalf("Parse(%q): %v", src, err)
		}
		w := readParseWant(t, want)
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
				t.Errorf("Parse(%q).%s = %v, want %v", src, c.field, c.got, c.want)
			}
		}
		if !bytes.Equal(got.SSHKey, w.sshKey) {
			t.Errorf("Parse(%q).SSHKey = %q, want %q", src, got.SSHKey, w.sshKey)
		}
		if got.Scheme == "file" && got.URL.RawPath != "" {
			t.Errorf("file URL %q has a RawPath: URL.Path must be the path to read", got.URL)
		}
	})
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
	casefile.Run(t, "testdata/parse-path.txt", 2, func(t *testing.T, tc casefile.Case) {
		src, want := tc.Fields[0], tc.Fields[1]
		var path string
		s, err := Parse(src)
		if err == nil {
			path = s.URL.Path
		}
		casefile.Check(t, path, err, want, "Parse(%q).URL.Path", src)
	})
}
