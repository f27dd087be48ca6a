package s3

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/butler-sre/butler/internal/errtest"
	"github.com/butler-sre/butler/internal/nettest"
)

const (
	testBucket = "configs"
	testKeyID  = "AKIAIOSFODNN7EXAMPLE"
	testSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
)

// store is gofakes3 with its in-memory backend, in process.
type store struct {
	backend *s3mem.Backend
	srv     *httptest.Server
	rec     *nettest.Recorder
}

func newStore(t *testing.T) *store {
	t.Helper()
	s := &store{backend: s3mem.New(), rec: &nettest.Recorder{}}
	s.srv = httptest.NewServer(s.rec.Wrap(gofakes3.New(s.backend).Server()))
	t.Cleanup(s.srv.Close)
	if err := s.backend.CreateBucket(testBucket); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *store) put(t *testing.T, key string, data []byte) {
	t.Helper()
	if _, err := s.backend.PutObject(testBucket, key, map[string]string{}, bytes.NewReader(data), int64(len(data)), nil); err != nil {
		t.Fatal(err)
	}
}

// etag is the ETag gofakes3 gives an object: its MD5, quoted.
func (s *store) etag(t *testing.T, key string) string {
	t.Helper()
	obj, err := s.backend.HeadObject(testBucket, key)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%q", fmt.Sprintf("%x", obj.Hash))
}

// withKeys is the query of a source with the test's keys.
func withKeys() string {
	return "?region=us-east-1&aws_access_key_id=" + testKeyID + "&aws_access_key_secret=" + url.QueryEscape(testSecret)
}

// location parses a source the way a user writes it, after "s3::".
func location(t *testing.T, src string) Location {
	t.Helper()
	u, err := url.Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	loc, err := ParseLocation(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// testEnv is an environment of its own: a home without ~/.aws, no
// instance role, and the variables given.
func testEnv(t *testing.T, vars map[string]string) func(string) string {
	env := map[string]string{"HOME": t.TempDir(), "AWS_EC2_METADATA_DISABLED": "true"}
	for k, v := range vars {
		env[k] = v
	}
	return func(k string) string { return env[k] }
}

// s3Error writes an S3 error document.
func s3Error(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s</Message><RequestId>1</RequestId></Error>`, code, msg)
}

// answer is a handler that answers with an S3 error document.
func answer(status int, code, msg string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { s3Error(w, status, code, msg) }
}

func TestGet(t *testing.T) {
	const max = 64
	s := newStore(t)
	s.put(t, "rules.yml", []byte("groups: []\n"))
	s.put(t, "exact.yml", bytes.Repeat([]byte("e"), max))
	s.put(t, "big.yml", bytes.Repeat([]byte("x"), max+1))
	etag := s.etag(t, "rules.yml")

	// ignoring always answers 200 with a body, whatever the condition.
	ignoring := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", etag)
		_, _ = io.WriteString(w, "groups: []\n")
	}))
	t.Cleanup(ignoring.Close)
	denying := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s3Error(w, http.StatusForbidden, "AccessDenied", "Access Denied")
	}))
	t.Cleanup(denying.Close)
	// bare answers 404 with no error document, as to a HEAD or from a proxy.
	bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
	}))
	t.Cleanup(bare.Close)
	// unannounced streams a body larger than max without a Content-Length.
	unannounced := nettest.Unannounced(t, max, "ETag", `"big"`)
	closed := nettest.ClosedAddr(t)

	cases := []struct {
		name      string
		src       string
		cond      Conditions
		want      Object
		wantErr   string
		wantIs    error
		wantINM   string // the If-None-Match the server saw
		serverRec *nettest.Recorder
	}{
		{name: "200 with body and validators", src: s.srv.URL + "/configs/rules.yml",
			want: Object{Status: 200, Body: []byte("groups: []\n"), ETag: etag, Bytes: 11}, serverRec: s.rec},
		{name: "304 on a matching ETag", src: s.srv.URL + "/configs/rules.yml", cond: Conditions{ETag: etag},
			want: Object{Status: 304, ETag: etag}, wantINM: etag, serverRec: s.rec},
		{name: "200 when the object changed", src: s.srv.URL + "/configs/rules.yml", cond: Conditions{ETag: `"0123"`},
			want: Object{Status: 200, Body: []byte("groups: []\n"), ETag: etag, Bytes: 11}, wantINM: `"0123"`, serverRec: s.rec},
		{name: "200 from a store that ignores the condition", src: ignoring.URL + "/configs/rules.yml", cond: Conditions{ETag: etag},
			want: Object{Status: 200, Body: []byte("groups: []\n"), ETag: etag, Bytes: 11}},
		{name: "exactly max", src: s.srv.URL + "/configs/exact.yml",
			want: Object{Status: 200, Body: bytes.Repeat([]byte("e"), max), ETag: s.etag(t, "exact.yml"), Bytes: max}},
		{name: "404 missing key", src: s.srv.URL + "/configs/missing.yml",
			want: Object{Status: 404}, wantErr: "s3 status 404: NoSuchKey", wantIs: fs.ErrNotExist},
		{name: "404 missing bucket", src: s.srv.URL + "/nobucket/rules.yml",
			want: Object{Status: 404}, wantErr: "s3 status 404: NoSuchBucket", wantIs: fs.ErrNotExist},
		{name: "403", src: denying.URL + "/configs/rules.yml",
			want: Object{Status: 403}, wantErr: "s3 status 403: AccessDenied: Access Denied", wantIs: fs.ErrPermission},
		{name: "404 without an error document", src: bare.URL + "/configs/rules.yml",
			want: Object{Status: 404}, wantErr: "s3 status 404: NotFound: Not Found", wantIs: fs.ErrNotExist},
		{name: "no response", src: "http://" + closed + "/configs/rules.yml",
			want: Object{Status: 0}, wantErr: "s3: no response: dial tcp " + closed},
		{name: "larger than max, length announced", src: s.srv.URL + "/configs/big.yml",
			want: Object{Status: 200, ETag: s.etag(t, "big.yml")}, wantErr: "s3 status 200: larger than the limit of 64 bytes", wantIs: ErrTooLarge},
		{name: "larger than max, no length", src: unannounced.URL + "/configs/big.yml",
			want: Object{Status: 200, ETag: `"big"`, Bytes: max + 1}, wantErr: "larger than the limit of 64 bytes", wantIs: ErrTooLarge},
	}
	c := New(Options{Getenv: testEnv(t, nil)})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := c.Get(context.Background(), location(t, tc.src+withKeys()), tc.cond, max)
			errtest.Want(t, "Get", err, tc.wantErr, tc.wantIs)
			if got.Status != tc.want.Status || !bytes.Equal(got.Body, tc.want.Body) || got.ETag != tc.want.ETag || got.Bytes != tc.want.Bytes {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
			if (got.Body == nil) != (tc.want.Body == nil) {
				t.Errorf("Body nil %v, want nil %v", got.Body == nil, tc.want.Body == nil)
			}
			if tc.serverRec != nil {
				if inm := tc.serverRec.Last(t).Header.Get("If-None-Match"); inm != tc.wantINM {
					t.Errorf("If-None-Match %q, want %q", inm, tc.wantINM)
				}
			}
		})
	}
}

func TestGetEmptyObject(t *testing.T) {
	s := newStore(t)
	s.put(t, "empty.yml", nil)
	got, err := New(Options{Getenv: testEnv(t, nil)}).Get(context.Background(), location(t, s.srv.URL+"/configs/empty.yml"+withKeys()), Conditions{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != 200 || got.Body == nil || len(got.Body) != 0 {
		t.Errorf("got %+v, want status 200 and an empty, non-nil body", got)
	}
}

func TestGetVersion(t *testing.T) {
	s := newStore(t)
	s.put(t, "rules.yml", []byte("v1"))
	_, _ = New(Options{Getenv: testEnv(t, nil)}).Get(context.Background(), location(t, s.srv.URL+"/configs/rules.yml"+withKeys()+"&version=v7"), Conditions{}, 10)
	if got := s.rec.Last(t).Query.Get("versionId"); got != "v7" {
		t.Errorf("versionId %q, want v7", got)
	}
}

func TestGetAsksNoChecksum(t *testing.T) {
	s := newStore(t)
	s.put(t, "rules.yml", []byte("groups: []\n"))
	if _, err := New(Options{Getenv: testEnv(t, nil)}).Get(context.Background(), location(t, s.srv.URL+"/configs/rules.yml"+withKeys()), Conditions{}, 100); err != nil {
		t.Fatal(err)
	}
	// No checksum is asked for: servers that send none must do (the
	// SDK's default, when_supported, asked for one).
	if mode := s.rec.Last(t).Header.Get("X-Amz-Checksum-Mode"); mode != "" {
		t.Errorf("X-Amz-Checksum-Mode %q sent", mode)
	}
}

func TestRetries(t *testing.T) {
	slowDown := answer(http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate.")
	cases := []struct {
		name         string
		failures     int
		fail         http.HandlerFunc
		attempts     int
		wantRequests int
		wantStatus   int
		wantErr      string
	}{
		{name: "one 503 is retried", failures: 1, fail: slowDown, wantRequests: 2, wantStatus: 200},
		{name: "two attempts at most", failures: 5, fail: slowDown, wantRequests: 2, wantStatus: 503, wantErr: "s3 status 503: SlowDown: Please reduce your request rate."},
		{name: "Attempts", failures: 5, fail: slowDown, attempts: 3, wantRequests: 3, wantStatus: 503},
		{name: "429 is retried", failures: 1, wantRequests: 2, wantStatus: 200,
			fail: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTooManyRequests) }},
		{name: "500 is retried", failures: 1, wantRequests: 2, wantStatus: 200,
			fail: answer(500, "InternalError", "We encountered an internal error.")},
		{name: "throttling code on a 400 is retried", failures: 1, wantRequests: 2, wantStatus: 200,
			fail: answer(400, "RequestTimeout", "Your socket connection timed out.")},
		{name: "a failed connection is retried", failures: 1, wantRequests: 2, wantStatus: 200,
			fail: func(w http.ResponseWriter, r *http.Request) {
				conn, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					_ = conn.Close()
				}
			}},
		{name: "404 is not retried", failures: 1, wantRequests: 1, wantStatus: 404, wantErr: "s3 status 404: NoSuchKey",
			fail: answer(404, "NoSuchKey", "The specified key does not exist.")},
		{name: "403 is not retried", failures: 1, wantRequests: 1, wantStatus: 403,
			fail: answer(403, "AccessDenied", "Access Denied")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := &nettest.Recorder{}
			srv := httptest.NewServer(rec.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if len(rec.All()) <= tc.failures {
					tc.fail(w, r)
					return
				}
				_, _ = io.WriteString(w, "ok")
			})))
			t.Cleanup(srv.Close)
			start := time.Now()
			got, err := New(Options{Getenv: testEnv(t, nil), Attempts: tc.attempts}).Get(context.Background(), location(t, srv.URL+"/configs/rules.yml"+withKeys()), Conditions{}, 10)
			if got.Status != tc.wantStatus {
				t.Errorf("status %d (%v), want %d", got.Status, err, tc.wantStatus)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("error %v, want one containing %q", err, tc.wantErr)
			}
			if n := len(rec.All()); n != tc.wantRequests {
				t.Errorf("%d requests, want %d", n, tc.wantRequests)
			}
			// Each pause is at most 500ms.
			if d, most := time.Since(start), time.Duration(tc.wantRequests)*(maxBackoff+200*time.Millisecond); d > most {
				t.Errorf("took %v, more than %v", d, most)
			}
		})
	}
}

func TestRetryWithinContext(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s3Error(w, http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate.")
	}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := New(Options{Getenv: testEnv(t, nil), Attempts: 5}).Get(ctx, location(t, srv.URL+"/configs/rules.yml"+withKeys()), Conditions{}, 10)
	if !errors.Is(err, context.DeadlineExceeded) || err.Error() != "s3: timed out" {
		t.Errorf("error %v, want s3: timed out", err)
	}
	if d := time.Since(start); d > 400*time.Millisecond {
		t.Errorf("took %v past a 50ms context", d)
	}
}

// TestClockSkew: a request refused as RequestTimeTooSkewed is signed again
// by the server's clock, as the Date of the refusal gives it.
func TestClockSkew(t *testing.T) {
	serverNow := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	rec := &nettest.Recorder{}
	srv := httptest.NewServer(rec.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", serverNow.Format(http.TimeFormat))
		signed, err := time.Parse(amzDateFormat, r.Header.Get("X-Amz-Date"))
		if err != nil || signed.Sub(serverNow).Abs() > 15*time.Minute {
			s3Error(w, http.StatusForbidden, "RequestTimeTooSkewed", "The difference between the request time and the current time is too large.")
			return
		}
		_, _ = io.WriteString(w, "ok")
	})))
	t.Cleanup(srv.Close)
	c := New(Options{Getenv: testEnv(t, nil)})
	for i := range 2 { // the second Get is signed right the first time
		got, err := c.Get(context.Background(), location(t, srv.URL+"/configs/rules.yml"+withKeys()), Conditions{}, 10)
		if err != nil || string(got.Body) != "ok" {
			t.Fatalf("Get %d: %+v, %v", i, got, err)
		}
	}
	if n := len(rec.All()); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
}

// TestGetAsStored: an object stored gzip-compressed comes as stored, not
// unpacked by the HTTP client.
func TestGetAsStored(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte("groups: []\n"))
	_ = zw.Close()
	rec := &nettest.Recorder{}
	srv := httptest.NewServer(rec.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		_, _ = w.Write(gz.Bytes())
	})))
	t.Cleanup(srv.Close)
	got, err := New(Options{Getenv: testEnv(t, nil)}).Get(context.Background(), location(t, srv.URL+"/configs/rules.yml.gz"+withKeys()), Conditions{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Body, gz.Bytes()) {
		t.Errorf("body %q, want the gzip bytes as stored", got.Body)
	}
	if ae := rec.Last(t).Header.Get("Accept-Encoding"); ae != "identity" {
		t.Errorf("Accept-Encoding %q, want identity", ae)
	}
}

func TestList(t *testing.T) {
	s := newStore(t)
	for _, k := range []string{"dir/", "dir/a.yml", "dir/b.yml", "dir/c.yml", "dir/sub/", "dir/sub/d.yml", "dirt.yml", "other/e.yml"} {
		s.put(t, k, []byte("x"))
	}
	cases := []struct {
		name      string
		src       string
		limit     int
		want      []string
		wantErr   string
		wantIs    error
		wantPages int
	}{
		{name: "all under the prefix", src: "/configs/dir", limit: 10, want: []string{"a.yml", "b.yml", "c.yml", "sub/d.yml"}, wantPages: 1},
		// max-keys is 4, then 1, then 1: "dir/" and "dir/sub/" are skipped.
		{name: "pages as the limit needs", src: "/configs/dir", limit: 3, wantErr: "s3: more than 3 objects under dir/", wantPages: 3},
		{name: "a marker skipped", src: "/configs/dir/sub", limit: 5, want: []string{"d.yml"}, wantPages: 1},
		{name: "missing bucket", src: "/nobucket/dir", limit: 10, wantErr: "s3 status 404: NoSuchBucket", wantIs: fs.ErrNotExist, wantPages: 1},
	}
	c := New(Options{Getenv: testEnv(t, nil)})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(s.rec.All())
			got, err := c.List(context.Background(), location(t, s.srv.URL+tc.src+withKeys()), tc.limit)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("List: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			case tc.wantIs != nil && !errors.Is(err, tc.wantIs):
				t.Errorf("error %v is not %v", err, tc.wantIs)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("keys %q, want %q", got, tc.want)
			}
			reqs := s.rec.All()[before:]
			if len(reqs) != tc.wantPages {
				t.Errorf("%d requests, want %d", len(reqs), tc.wantPages)
			}
			for i, r := range reqs {
				if r.Query.Get("list-type") != "2" || (i > 0) != r.Query.Has("continuation-token") {
					t.Errorf("request %d: query %v", i, r.Query)
				}
			}
		})
	}
}

func TestGetEndedByContext(t *testing.T) {
	srvURL, ctx := nettest.CanceledInBody(t)
	got, err := New(Options{Getenv: testEnv(t, nil)}).Get(ctx, location(t, srvURL+"/configs/rules.yml"+withKeys()), Conditions{}, 1000)
	if !errors.Is(err, context.Canceled) || err.Error() != "s3: canceled" {
		t.Errorf("error %v, want s3: canceled", err)
	}
	if got.Status != 0 || got.Body != nil {
		t.Errorf("got %+v, want status 0 and no body", got)
	}
}

// sigv4 is the credential scope of a SigV4 Authorization header.
var sigv4 = regexp.MustCompile(`Credential=([^/]+)/[0-9]{8}/([^/]+)/s3/aws4_request`)

// scope returns the access key and the region a request was signed with.
func scope(t *testing.T, r nettest.Request) (keyID, region string) {
	t.Helper()
	m := sigv4.FindStringSubmatch(r.Header.Get("Authorization"))
	if m == nil {
		t.Fatalf("no SigV4 Authorization header: %q", r.Header.Get("Authorization"))
	}
	return m[1], m[2]
}

func TestCustomEndpointWithKeys(t *testing.T) {
	s := newStore(t)
	s.put(t, "dir/rules.yml", []byte("x"))
	src := s.srv.URL + "/configs/dir/rules.yml?region=eu-north-1&aws_access_key_id=URLKEY&aws_access_key_secret=URLSECRET&aws_access_token=URLTOKEN"
	env := testEnv(t, map[string]string{"AWS_ACCESS_KEY_ID": "ENVKEY", "AWS_SECRET_ACCESS_KEY": "ENVSECRET", "AWS_REGION": "ap-south-1"})
	got, err := New(Options{Getenv: env}).Get(context.Background(), location(t, src), Conditions{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Body) != "x" {
		t.Errorf("body %q", got.Body)
	}
	r := s.rec.Last(t)
	if r.Path != "/configs/dir/rules.yml" {
		t.Errorf("path %q, want path style /configs/dir/rules.yml", r.Path)
	}
	if id, region := scope(t, r); id != "URLKEY" || region != "eu-north-1" {
		t.Errorf("signed by %s for %s, want URLKEY for eu-north-1", id, region)
	}
	if tok := r.Header.Get("X-Amz-Security-Token"); tok != "URLTOKEN" {
		t.Errorf("X-Amz-Security-Token %q, want URLTOKEN", tok)
	}
}

// echoing answers 403 with a message that repeats the request's
// credentials, as a careless proxy might.
func echoing(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s3Error(w, http.StatusForbidden, "AccessDenied", "denied for "+r.Header.Get("Authorization")+" token "+r.Header.Get("X-Amz-Security-Token"))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestCredentialsNeverInErrors(t *testing.T) {
	const token = "FwoGZXIvYXdzEJr//////////wEaDEXAMPLETOKEN"
	srv := echoing(t)
	cases := []struct {
		name string
		src  string
		env  map[string]string
	}{
		{name: "keys in the URL", src: srv.URL + "/configs/a.yml?aws_access_key_id=" + testKeyID + "&aws_access_key_secret=" + url.QueryEscape(testSecret) + "&aws_access_token=" + url.QueryEscape(token)},
		{name: "keys in the environment", src: srv.URL + "/configs/a.yml",
			env: map[string]string{"AWS_ACCESS_KEY_ID": testKeyID, "AWS_SECRET_ACCESS_KEY": testSecret, "AWS_SESSION_TOKEN": token}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Options{Getenv: testEnv(t, tc.env)}).Get(context.Background(), location(t, tc.src), Conditions{}, 10)
			if err == nil || !strings.Contains(err.Error(), "s3 status 403: AccessDenied: denied for") {
				t.Fatalf("error %v, want the echoed 403", err)
			}
			for _, secret := range []string{testKeyID, testSecret, token} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error holds %q: %v", secret, err)
				}
			}
		})
	}
}

// onTheWire records the requests a Client would send to AWS and answers
// them itself: nothing is resolved or dialled.
type onTheWire struct{ rec nettest.Recorder }

func (o *onTheWire) RoundTrip(req *http.Request) (*http.Response, error) {
	o.rec.Record(req)
	return &http.Response{
		StatusCode: 200, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Etag": {`"e"`}, "Content-Length": {"2"}},
		ContentLength: 2, Body: io.NopCloser(strings.NewReader("ok")), Request: req,
	}, nil
}

func TestRegionOnTheWire(t *testing.T) {
	cases := []struct {
		name       string
		src        string
		env        map[string]string
		wantURL    string // host and path of the request
		wantRegion string // of the signature
	}{
		{name: "global host", src: "https://s3.amazonaws.com/configs/a.yml",
			env: map[string]string{"AWS_REGION": "eu-west-3"}, wantURL: "configs.s3.us-east-1.amazonaws.com/a.yml", wantRegion: "us-east-1"},
		{name: "dash region", src: "https://s3-eu-west-1.amazonaws.com/configs/a.yml",
			wantURL: "configs.s3.eu-west-1.amazonaws.com/a.yml", wantRegion: "eu-west-1"},
		{name: "dot region", src: "https://s3.eu-west-1.amazonaws.com/configs/dir/a.yml",
			wantURL: "configs.s3.eu-west-1.amazonaws.com/dir/a.yml", wantRegion: "eu-west-1"},
		{name: "virtual host", src: "https://configs.s3.us-west-2.amazonaws.com/a.yml",
			wantURL: "configs.s3.us-west-2.amazonaws.com/a.yml", wantRegion: "us-west-2"},
		// What the SDK's endpoint rules gave for the partitions and for
		// bucket names that cannot be a host label.
		{name: "China", src: "https://s3.cn-north-1.amazonaws.com.cn/configs/a.yml",
			wantURL: "configs.s3.cn-north-1.amazonaws.com.cn/a.yml", wantRegion: "cn-north-1"},
		{name: "GovCloud", src: "https://s3.us-gov-west-1.amazonaws.com/configs/a.yml",
			wantURL: "configs.s3.us-gov-west-1.amazonaws.com/a.yml", wantRegion: "us-gov-west-1"},
		{name: "ISO partition", src: "https://s3.amazonaws.com/configs/a.yml?region=us-iso-east-1",
			wantURL: "configs.s3.us-iso-east-1.c2s.ic.gov/a.yml", wantRegion: "us-iso-east-1"},
		{name: "dotted bucket, path style", src: "https://s3.eu-west-1.amazonaws.com/my.configs/a.yml",
			wantURL: "s3.eu-west-1.amazonaws.com/my.configs/a.yml", wantRegion: "eu-west-1"},
		{name: "dotted bucket in the host", src: "https://my.configs.s3.eu-west-1.amazonaws.com/a.yml",
			wantURL: "s3.eu-west-1.amazonaws.com/my.configs/a.yml", wantRegion: "eu-west-1"},
		{name: "bucket not a host label", src: "https://s3.eu-west-1.amazonaws.com/My_Configs/a.yml",
			wantURL: "s3.eu-west-1.amazonaws.com/My_Configs/a.yml", wantRegion: "eu-west-1"},
		{name: "custom endpoint, AWS_REGION", src: "http://127.0.0.1:9000/configs/a.yml",
			env: map[string]string{"AWS_REGION": "eu-west-3", "AWS_DEFAULT_REGION": "eu-south-1"}, wantURL: "127.0.0.1:9000/configs/a.yml", wantRegion: "eu-west-3"},
		{name: "custom endpoint, AWS_DEFAULT_REGION", src: "http://127.0.0.1:9000/configs/a.yml",
			env: map[string]string{"AWS_DEFAULT_REGION": "eu-south-1"}, wantURL: "127.0.0.1:9000/configs/a.yml", wantRegion: "eu-south-1"},
		{name: "custom endpoint, region parameter", src: "http://127.0.0.1:9000/configs/a.yml?region=sa-east-1",
			env: map[string]string{"AWS_REGION": "eu-west-3"}, wantURL: "127.0.0.1:9000/configs/a.yml", wantRegion: "sa-east-1"},
		{name: "custom endpoint, default", src: "http://127.0.0.1:9000/configs/a.yml",
			wantURL: "127.0.0.1:9000/configs/a.yml", wantRegion: "us-east-1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"AWS_ACCESS_KEY_ID": testKeyID, "AWS_SECRET_ACCESS_KEY": testSecret}
			for k, v := range tc.env {
				env[k] = v
			}
			wire := &onTheWire{}
			c := New(Options{Getenv: testEnv(t, env), HTTPClient: &http.Client{Transport: wire}})
			got, err := c.Get(context.Background(), location(t, tc.src), Conditions{}, 10)
			if err != nil || string(got.Body) != "ok" {
				t.Fatalf("Get: %+v, %v", got, err)
			}
			r := wire.rec.Last(t)
			if url := r.Host + r.Path; url != tc.wantURL {
				t.Errorf("request to %s, want %s", url, tc.wantURL)
			}
			if _, region := scope(t, r); region != tc.wantRegion {
				t.Errorf("signed for %s, want %s", region, tc.wantRegion)
			}
		})
	}
}
