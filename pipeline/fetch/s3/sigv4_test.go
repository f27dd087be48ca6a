package s3

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// The in-process S3 server of the other tests (gofakes3) does not check
// signatures: it would answer a request signed wrongly just the same. The
// signatures are checked here instead, against AWS's documented example
// and against the SDK's signer as an oracle.

// TestSignAWSExample signs the "Example: GET Object" of AWS's
// documentation of header-based SigV4 authentication
// (https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html):
// the first 10 bytes of test.txt in examplebucket, with the
// documentation's example keys, on 24 May 2013 at midnight UTC, in
// us-east-1, the payload hash being that of the empty body.
func TestSignAWSExample(t *testing.T) {
	req, err := http.NewRequest(http.MethodGet, "https://examplebucket.s3.amazonaws.com/test.txt", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Range", "bytes=0-9")
	sign(req, keys{id: "AKIAIOSFODNN7EXAMPLE", secret: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}, "us-east-1",
		time.Date(2013, 5, 24, 0, 0, 0, 0, time.UTC))

	// The documentation writes the header without spaces after the
	// commas; the parts are the same.
	const want = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, " +
		"SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, " +
		"Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
	if got := req.Header.Get("Authorization"); got != want {
		t.Errorf("Authorization\n got %s\nwant %s", got, want)
	}
	if got := req.Header.Get("X-Amz-Date"); got != "20130524T000000Z" {
		t.Errorf("X-Amz-Date %q", got)
	}
	if got := req.Header.Get("X-Amz-Content-Sha256"); got != emptyPayloadHash {
		t.Errorf("X-Amz-Content-Sha256 %q", got)
	}
}

// wire keeps whole copies of the requests a Client sends, and answers
// them itself: an object read gives "ok", a list gives the pages of
// listPages in turn.
type wire struct {
	mu        sync.Mutex
	reqs      []*http.Request
	listPages []string
}

func (w *wire) RoundTrip(req *http.Request) (*http.Response, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.reqs = append(w.reqs, req.Clone(context.Background()))
	body := "ok"
	if req.URL.Query().Has("list-type") && len(w.listPages) > 0 {
		body, w.listPages = w.listPages[0], w.listPages[1:]
	}
	return &http.Response{
		StatusCode: 200, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Etag": {`"e"`}},
		ContentLength: int64(len(body)), Body: io.NopCloser(strings.NewReader(body)), Request: req,
	}, nil
}

// listResult is a ListObjectsV2 answer with keys, truncated when next is
// set.
func listResult(next string, keys ...string) string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">`)
	for _, k := range keys {
		fmt.Fprintf(&b, "<Contents><Key>%s</Key><Size>1</Size></Contents>", k)
	}
	if next != "" {
		fmt.Fprintf(&b, "<IsTruncated>true</IsTruncated><NextContinuationToken>%s</NextContinuationToken>", next)
	} else {
		b.WriteString("<IsTruncated>false</IsTruncated>")
	}
	b.WriteString("</ListBucketResult>")
	return b.String()
}

// TestSignMatchesSDK sends requests through a Client at a fixed time and
// signs a copy of each as it went on the wire with the SDK's SigV4 signer
// (set as the SDK's S3 client sets it: the path is not encoded twice), at
// the same time and with the same credentials: the Authorization headers
// must be the same, and the query sent must be the one signed.
func TestSignMatchesSDK(t *testing.T) {
	const token = "FwoGZXIvYXdzEJr//////////wEaDEXAMPLETOKEN+/="
	// A continuation token as S3 writes them, with "/", "=" and "+".
	const next = "1Bx/yTeK+pvQ=="
	cases := []struct {
		name       string
		src        string
		list       bool
		cond       Conditions
		env        map[string]string
		pages      []string
		wantURL    string // of the first request, as sent
		wantRegion string
	}{
		{name: "GET, virtual host", src: "https://s3.eu-west-1.amazonaws.com/configs/a.yml",
			wantURL: "https://configs.s3.eu-west-1.amazonaws.com/a.yml", wantRegion: "eu-west-1"},
		{name: "GET with versionId", src: "https://configs.s3.us-west-2.amazonaws.com/a.yml?version=3HL4kqt%2BJlc/Xro=DTD~m",
			wantURL: "https://configs.s3.us-west-2.amazonaws.com/a.yml?versionId=3HL4kqt%2BJlc%2FXro%3DDTD~m", wantRegion: "us-west-2"},
		{name: "GET with If-None-Match", src: "https://s3.eu-west-1.amazonaws.com/configs/a.yml", cond: Conditions{ETag: `"9b2cf535f27731c974343645a3985328"`},
			wantURL: "https://configs.s3.eu-west-1.amazonaws.com/a.yml", wantRegion: "eu-west-1"},
		{name: "GET with a session token", src: "https://s3.eu-west-1.amazonaws.com/configs/a.yml", env: map[string]string{"AWS_SESSION_TOKEN": token},
			wantURL: "https://configs.s3.eu-west-1.amazonaws.com/a.yml", wantRegion: "eu-west-1"},
		{name: "key with space, unicode, +, =, ~ and /", src: "https://s3.eu-west-1.amazonaws.com/configs/dir/a%20b+c=d~e/%C3%BCn%C3%AFcode%E2%9C%93.yml",
			wantURL: "https://configs.s3.eu-west-1.amazonaws.com/dir/a%20b%2Bc%3Dd~e/%C3%BCn%C3%AFcode%E2%9C%93.yml", wantRegion: "eu-west-1"},
		{name: "path style for a dotted bucket", src: "https://s3.eu-west-1.amazonaws.com/my.configs/dir/a+b.yml",
			wantURL: "https://s3.eu-west-1.amazonaws.com/my.configs/dir/a%2Bb.yml", wantRegion: "eu-west-1"},
		{name: "custom endpoint with port", src: "http://127.0.0.1:9000/configs/dir/a%20b.yml?region=eu-north-1",
			wantURL: "http://127.0.0.1:9000/configs/dir/a%20b.yml", wantRegion: "eu-north-1"},
		{name: "custom endpoint with the scheme's port", src: "http://minio.internal:80/configs/a.yml",
			wantURL: "http://minio.internal:80/configs/a.yml", wantRegion: "us-east-1"},
		{name: "all at once", src: "http://minio.internal:9000/configs/x/%C3%A9%20+=~.yml?version=v%2B1%3D&region=garage", cond: Conditions{ETag: `W/"a  b"`},
			env: map[string]string{"AWS_SESSION_TOKEN": token}, wantURL: "http://minio.internal:9000/configs/x/%C3%A9%20%2B%3D~.yml?versionId=v%2B1%3D", wantRegion: "garage"},
		{name: "ListObjectsV2, virtual host, continuation token", src: "https://s3.eu-west-1.amazonaws.com/configs/dir/a b", list: true,
			pages:   []string{listResult(next, "dir/a b/x.yml"), listResult("", "dir/a b/y.yml")},
			wantURL: "https://configs.s3.eu-west-1.amazonaws.com/?list-type=2&max-keys=11&prefix=dir%2Fa%20b%2F", wantRegion: "eu-west-1"},
		{name: "ListObjectsV2, path style with port, continuation token", src: "http://127.0.0.1:9000/configs/dir=1/sub", list: true,
			env:     map[string]string{"AWS_SESSION_TOKEN": token},
			pages:   []string{listResult(next, "dir=1/sub/x.yml"), listResult("", "dir=1/sub/y.yml")},
			wantURL: "http://127.0.0.1:9000/configs?list-type=2&max-keys=11&prefix=dir%3D1%2Fsub%2F", wantRegion: "us-east-1"},
	}
	at := time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"AWS_ACCESS_KEY_ID": testKeyID, "AWS_SECRET_ACCESS_KEY": testSecret}
			for k, v := range tc.env {
				env[k] = v
			}
			w := &wire{listPages: tc.pages}
			c := New(Options{Getenv: testEnv(t, env), HTTPClient: &http.Client{Transport: w}})
			c.now = func() time.Time { return at }
			if tc.list {
				keys, err := c.List(context.Background(), location(t, tc.src), 10)
				if err != nil || len(keys) != 2 {
					t.Fatalf("List: %q, %v", keys, err)
				}
			} else if _, err := c.Get(context.Background(), location(t, tc.src), tc.cond, 10); err != nil {
				t.Fatalf("Get: %v", err)
			}
			if len(w.reqs) != 1+len(tc.pages)/2 {
				t.Fatalf("%d requests sent", len(w.reqs))
			}
			if got := w.reqs[0].URL.String(); got != tc.wantURL {
				t.Errorf("URL sent\n got %s\nwant %s", got, tc.wantURL)
			}
			if tc.list {
				if got := w.reqs[1].URL.Query().Get("continuation-token"); got != next {
					t.Errorf("continuation-token %q, want %q", got, next)
				}
			}
			for _, sent := range w.reqs {
				compareWithSDK(t, sent, aws.Credentials{AccessKeyID: testKeyID, SecretAccessKey: testSecret, SessionToken: tc.env["AWS_SESSION_TOKEN"]}, tc.wantRegion, at)
			}
		})
	}
}

// compareWithSDK signs a copy of sent, without its signature, with the
// SDK's signer and compares.
func compareWithSDK(t *testing.T, sent *http.Request, cr aws.Credentials, region string, at time.Time) {
	t.Helper()
	oracle := sent.Clone(context.Background())
	for _, h := range []string{"Authorization", "X-Amz-Date", "X-Amz-Security-Token"} {
		oracle.Header.Del(h) // the signer sets them
	}
	signer := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
	if err := signer.SignHTTP(context.Background(), cr, oracle, emptyPayloadHash, "s3", region, at); err != nil {
		t.Fatal(err)
	}
	if got, want := sent.Header.Get("Authorization"), oracle.Header.Get("Authorization"); got != want {
		t.Errorf("%s: Authorization\n got %s\nwant %s", sent.URL, got, want)
	}
	for _, h := range []string{"X-Amz-Date", "X-Amz-Security-Token"} {
		if got, want := sent.Header.Get(h), oracle.Header.Get(h); got != want {
			t.Errorf("%s: %s %q, want %q", sent.URL, h, got, want)
		}
	}
	// The signer writes the query it signed back into the URL.
	if got, want := sent.URL.RawQuery, oracle.URL.RawQuery; got != want {
		t.Errorf("query sent %q, signed %q", got, want)
	}
	if sent.Host != oracle.Host && oracle.Host != "" {
		t.Errorf("Host sent %q, signed %q", sent.Host, oracle.Host)
	}
}

func TestURIEncode(t *testing.T) {
	cases := []struct {
		in, path, query string
	}{
		{in: "a/b c", path: "a/b%20c", query: "a%2Fb%20c"},
		{in: "A-Z_a.z~09", path: "A-Z_a.z~09", query: "A-Z_a.z~09"},
		{in: "+=&?#%*", path: "%2B%3D%26%3F%23%25%2A", query: "%2B%3D%26%3F%23%25%2A"},
		{in: "é✓", path: "%C3%A9%E2%9C%93", query: "%C3%A9%E2%9C%93"},
	}
	for _, tc := range cases {
		if got := uriEncode(tc.in, true); got != tc.path {
			t.Errorf("uriEncode(%q, true) = %q, want %q", tc.in, got, tc.path)
		}
		if got := uriEncode(tc.in, false); got != tc.query {
			t.Errorf("uriEncode(%q, false) = %q, want %q", tc.in, got, tc.query)
		}
	}
}

func TestCanonicalQuery(t *testing.T) {
	u, err := url.Parse("https://h/?prefix=a%20b&list-type=2&continuation-token=x%2By%3D&empty=")
	if err != nil {
		t.Fatal(err)
	}
	const want = "continuation-token=x%2By%3D&empty=&list-type=2&prefix=a%20b"
	if got := canonicalQuery(u); got != want {
		t.Errorf("canonicalQuery = %q, want %q", got, want)
	}
}
