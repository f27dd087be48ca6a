package gcs

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/fsouza/fake-gcs-server/fakestorage"
	"golang.org/x/oauth2"

	"github.com/butler-sre/butler/internal/nettest"
)

const testBucket = "configs"

// store is fake-gcs-server in process.
type store struct {
	fake *fakestorage.Server
	srv  *httptest.Server // honours the conditions
	raw  *httptest.Server // fake-gcs-server as it is: it ignores them
	rec  *nettest.Recorder
}

func newStore(t *testing.T, objects map[string][]byte) *store {
	t.Helper()
	var initial []fakestorage.Object
	for name, data := range objects {
		initial = append(initial, fakestorage.Object{ObjectAttrs: fakestorage.ObjectAttrs{BucketName: testBucket, Name: name}, Content: data})
	}
	fake, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		Scheme: "http", Host: "127.0.0.1", NoListener: true, InitialObjects: initial, Writer: io.Discard,
	})
	if err != nil {
		t.Fatal(err)
	}
	fake.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: testBucket})
	s := &store{fake: fake, rec: &nettest.Recorder{}}
	s.srv = httptest.NewServer(s.rec.Wrap(conditional(fake)))
	s.raw = httptest.NewServer(s.rec.Wrap(fake.HTTPHandler()))
	t.Cleanup(func() {
		s.srv.Close()
		s.raw.Close()
		fake.Stop()
	})
	return s
}

// conditional answers 304 where GCS would: fake-gcs-server (v1.56)
// ignores ifGenerationNotMatch and If-None-Match on media downloads.
func conditional(fake *fakestorage.Server) http.Handler {
	next := fake.HTTPHandler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/storage/v1/b/")
		bucket, object, _ := strings.Cut(rest, "/o/")
		bucket, _ = url.PathUnescape(bucket)
		object, _ = url.PathUnescape(object)
		if obj, err := fake.GetObject(bucket, object); ok && err == nil {
			gen := strconv.FormatInt(obj.Generation, 10)
			etag := strconv.Quote(obj.Etag)
			inm := r.Header.Get("If-None-Match")
			if q := r.URL.Query().Get("ifGenerationNotMatch"); (q != "" && q == gen) || (q == "" && inm != "" && inm == etag) {
				w.Header().Set("ETag", etag)
				w.Header().Set("X-Goog-Generation", gen)
				w.WriteHeader(http.StatusNotModified)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (s *store) put(t *testing.T, name string, data []byte) {
	t.Helper()
	s.fake.CreateObject(fakestorage.Object{ObjectAttrs: fakestorage.ObjectAttrs{BucketName: testBucket, Name: name}, Content: data})
}

// validators are the ETag and generation fake-gcs-server gives name.
func (s *store) validators(t *testing.T, name string) (etag, generation string) {
	t.Helper()
	obj, err := s.fake.GetObject(testBucket, name)
	if err != nil {
		t.Fatal(err)
	}
	return strconv.Quote(obj.Etag), strconv.FormatInt(obj.Generation, 10)
}

// countingSource gives a fixed token and counts the calls.
type countingSource struct {
	token string
	calls atomic.Int64
}

func (c *countingSource) Token() (*oauth2.Token, error) {
	c.calls.Add(1)
	return &oauth2.Token{AccessToken: c.token, TokenType: "Bearer"}, nil
}

// noEnv is an empty environment.
func noEnv(string) string { return "" }

func newClient(endpoint string, ts oauth2.TokenSource) *Client {
	return New(Options{Endpoint: endpoint, TokenSource: ts, Getenv: noEnv})
}

// apiErrorDoc writes a JSON API error document as GCS does.
func apiErrorDoc(w http.ResponseWriter, status int, reason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"code": status, "message": msg, "errors": []map[string]string{{"message": msg, "domain": "global", "reason": reason}},
	}})
}

func TestGet(t *testing.T) {
	const max = 64
	s := newStore(t, map[string][]byte{
		"rules.yml":      []byte("groups: []\n"),
		"exact.yml":      bytes.Repeat([]byte("e"), max),
		"big.yml":        bytes.Repeat([]byte("x"), max+1),
		"dir/a b%?.yml":  []byte("odd name"),
		"changing.yml":   []byte("old"),
		"generation.yml": []byte("pinned"),
	})
	etag, gen := s.validators(t, "rules.yml")
	oldETag, oldGen := s.validators(t, "changing.yml")
	s.put(t, "changing.yml", []byte("new"))
	newETag, newGen := s.validators(t, "changing.yml")
	if newGen == oldGen || newETag == oldETag {
		t.Fatalf("an overwritten object kept its validators: %s %s", newGen, newETag)
	}
	bigETag, bigGen := s.validators(t, "big.yml")
	exactETag, exactGen := s.validators(t, "exact.yml")
	oddETag, oddGen := s.validators(t, "dir/a b%?.yml")
	_, pinnedGen := s.validators(t, "generation.yml")

	ignoring := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", etag)
		w.Header().Set("X-Goog-Generation", gen)
		_, _ = io.WriteString(w, "groups: []\n")
	}))
	t.Cleanup(ignoring.Close)
	errorDoc := func(status int, reason, msg string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			apiErrorDoc(w, status, reason, msg)
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	unannounced := nettest.Unannounced(t, max, "X-Goog-Generation", "9")
	closed := nettest.ClosedAddr(t)

	cases := []struct {
		name      string
		endpoint  string
		loc       Location
		cond      Conditions
		want      Object
		wantErr   string
		wantIs    error
		wantQuery url.Values // parameters the store saw, besides alt=media
		wantINM   string
		wantPath  string
	}{
		{name: "200 with body and validators", endpoint: s.srv.URL, loc: Location{Bucket: testBucket, Object: "rules.yml"},
			want:     Object{Status: 200, Body: []byte("groups: []\n"), ETag: etag, Generation: gen, Bytes: 11},
			wantPath: "/storage/v1/b/configs/o/rules.yml"},
		{name: "304 on a matching generation", endpoint: s.srv.URL, loc: Location{Bucket: testBucket, Object: "rules.yml"}, cond: Conditions{Generation: gen, ETag: `"other"`},
			want: Object{Status: 304, ETag: etag, Generation: gen}, wantQuery: url.Values{"ifGenerationNotMatch": {gen}}},
		{name: "304 on a matching ETag, no generation", endpoint: s.srv.URL, loc: Location{Bucket: testBucket, Object: "rules.yml"}, cond: Conditions{ETag: etag},
			want: Object{Status: 304, ETag: etag, Generation: gen}, wantINM: etag},
		{name: "200 when the object changed", endpoint: s.srv.URL, loc: Location{Bucket: testBucket, Object: "changing.yml"}, cond: Conditions{Generation: oldGen, ETag: oldETag},
			want: Object{Status: 200, Body: []byte("new"), ETag: newETag, Generation: newGen, Bytes: 3}, wantQuery: url.Values{"ifGenerationNotMatch": {oldGen}}},
		{name: "200 from fake-gcs-server, which ignores the condition", endpoint: s.raw.URL, loc: Location{Bucket: testBucket, Object: "rules.yml"}, cond: Conditions{Generation: gen},
			want: Object{Status: 200, Body: []byte("groups: []\n"), ETag: etag, Generation: gen, Bytes: 11}, wantQuery: url.Values{"ifGenerationNotMatch": {gen}}},
		{name: "200 from a store that ignores the condition", endpoint: ignoring.URL, loc: Location{Bucket: testBucket, Object: "rules.yml"}, cond: Conditions{Generation: gen},
			want: Object{Status: 200, Body: []byte("groups: []\n"), ETag: etag, Generation: gen, Bytes: 11}},
		{name: "object name escaped", endpoint: s.srv.URL, loc: Location{Bucket: testBucket, Object: "dir/a b%?.yml"},
			want:     Object{Status: 200, Body: []byte("odd name"), ETag: oddETag, Generation: oddGen, Bytes: 8},
			wantPath: "/storage/v1/b/configs/o/dir%2Fa%20b%25%3F.yml"},
		{name: "pinned generation", endpoint: s.srv.URL, loc: Location{Bucket: testBucket, Object: "generation.yml", Generation: pinnedGen},
			want: Object{Status: 200, Body: []byte("pinned"), Generation: pinnedGen, Bytes: 6}, wantQuery: url.Values{"generation": {pinnedGen}}},
		{name: "exactly max", endpoint: s.srv.URL, loc: Location{Bucket: testBucket, Object: "exact.yml"},
			want: Object{Status: 200, Body: bytes.Repeat([]byte("e"), max), ETag: exactETag, Generation: exactGen, Bytes: max}},
		{name: "404 from fake-gcs-server", endpoint: s.srv.URL, loc: Location{Bucket: testBucket, Object: "missing.yml"},
			want: Object{Status: 404}, wantErr: "gcs status 404: notFound", wantIs: fs.ErrNotExist},
		{name: "404 with an error document", endpoint: errorDoc(404, "notFound", "No such object: configs/missing.yml"), loc: Location{Bucket: testBucket, Object: "missing.yml"},
			want: Object{Status: 404}, wantErr: "gcs status 404: notFound: No such object: configs/missing.yml", wantIs: fs.ErrNotExist},
		{name: "403", endpoint: errorDoc(403, "forbidden", "butler@p.iam.gserviceaccount.com does not have storage.objects.get access"), loc: Location{Bucket: testBucket, Object: "rules.yml"},
			want: Object{Status: 403}, wantErr: "gcs status 403: forbidden: butler@p.iam.gserviceaccount.com does not have storage.objects.get access", wantIs: fs.ErrPermission},
		{name: "no response", endpoint: "http://" + closed, loc: Location{Bucket: testBucket, Object: "rules.yml"},
			want: Object{Status: 0}, wantErr: "gcs: no response: dial tcp " + closed},
		{name: "larger than max, length announced", endpoint: s.srv.URL, loc: Location{Bucket: testBucket, Object: "big.yml"},
			want: Object{Status: 200, ETag: bigETag, Generation: bigGen}, wantErr: "gcs status 200: larger than the limit of 64 bytes", wantIs: ErrTooLarge},
		{name: "larger than max, no length", endpoint: unannounced.URL, loc: Location{Bucket: testBucket, Object: "big.yml"},
			want: Object{Status: 200, Generation: "9", Bytes: max + 1}, wantErr: "gcs status 200: larger than the limit of 64 bytes", wantIs: ErrTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := s.rec.Count()
			got, err := newClient(tc.endpoint, &countingSource{token: "tok"}).Get(context.Background(), tc.loc, tc.cond, max)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Get: %v", err)
			case tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr && !strings.HasPrefix(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			case tc.wantIs != nil && !errors.Is(err, tc.wantIs):
				t.Errorf("error %v is not %v", err, tc.wantIs)
			}
			if got.Status != tc.want.Status || !bytes.Equal(got.Body, tc.want.Body) || (tc.want.ETag != "" && got.ETag != tc.want.ETag) ||
				got.Generation != tc.want.Generation || got.Bytes != tc.want.Bytes {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
			if (got.Body == nil) != (tc.want.Body == nil) {
				t.Errorf("Body nil %v, want nil %v", got.Body == nil, tc.want.Body == nil)
			}
			if s.rec.Count() == before {
				return // not the fake-gcs-server
			}
			r := s.rec.Last(t)
			if tc.wantPath != "" && r.EscapedPath != tc.wantPath {
				t.Errorf("path %s, want %s", r.EscapedPath, tc.wantPath)
			}
			want := url.Values{"alt": {"media"}}
			for k, v := range tc.wantQuery {
				want[k] = v
			}
			if r.Query.Encode() != want.Encode() {
				t.Errorf("query %s, want %s", r.Query.Encode(), want.Encode())
			}
			if inm := r.Header.Get("If-None-Match"); inm != tc.wantINM {
				t.Errorf("If-None-Match %q, want %q", inm, tc.wantINM)
			}
			if a := r.Header.Get("Authorization"); a != "Bearer tok" {
				t.Errorf("Authorization %q", a)
			}
		})
	}
}

func TestGetEmptyObject(t *testing.T) {
	s := newStore(t, map[string][]byte{"empty.yml": {}})
	got, err := newClient(s.srv.URL, &countingSource{token: "tok"}).Get(context.Background(), Location{Bucket: testBucket, Object: "empty.yml"}, Conditions{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != 200 || got.Body == nil || len(got.Body) != 0 {
		t.Errorf("got %+v, want status 200 and an empty, non-nil body", got)
	}
}

func TestCredentials(t *testing.T) {
	s := newStore(t, map[string][]byte{"rules.yml": []byte("x")})
	host := strings.TrimPrefix(s.srv.URL, "http://")
	cases := []struct {
		name       string
		opts       Options
		wantAuth   string
		wantTokens int64 // calls of the given token source
	}{
		{name: "token source", opts: Options{Endpoint: s.srv.URL}, wantAuth: "Bearer given", wantTokens: 1},
		{name: "GOOGLE_OAUTH_ACCESS_TOKEN", opts: Options{Endpoint: s.srv.URL, TokenSource: nil,
			Getenv: func(k string) string { return map[string]string{"GOOGLE_OAUTH_ACCESS_TOKEN": "fromenv"}[k] }}, wantAuth: "Bearer fromenv"},
		{name: "emulator host:port, no credentials", opts: Options{
			Getenv: func(k string) string { return map[string]string{"STORAGE_EMULATOR_HOST": host}[k] }}},
		{name: "emulator URL, no credentials", opts: Options{
			Getenv: func(k string) string { return map[string]string{"STORAGE_EMULATOR_HOST": s.srv.URL + "/"}[k] }}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			given := &countingSource{token: "given"}
			opts := tc.opts
			if opts.Getenv == nil {
				opts.Getenv = noEnv
			}
			if tc.name == "token source" {
				opts.TokenSource = given
			}
			c := New(opts)
			if n := given.calls.Load(); n != 0 {
				t.Fatalf("token asked %d times before the first Get", n)
			}
			got, err := c.Get(context.Background(), Location{Bucket: testBucket, Object: "rules.yml"}, Conditions{}, 10)
			if err != nil || string(got.Body) != "x" {
				t.Fatalf("Get: %+v, %v", got, err)
			}
			if a := s.rec.Last(t).Header.Get("Authorization"); a != tc.wantAuth {
				t.Errorf("Authorization %q, want %q", a, tc.wantAuth)
			}
			if n := given.calls.Load(); n != tc.wantTokens {
				t.Errorf("token asked %d times, want %d", n, tc.wantTokens)
			}
		})
	}
}

// serviceAccount writes a service account key whose token endpoint is
// tokenURL.
func serviceAccount(t *testing.T, path, tokenURL string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "p", "private_key_id": "k1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": "butler@p.iam.gserviceaccount.com", "client_id": "1", "token_uri": tokenURL,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestApplicationDefaultCredentials goes through google.DefaultTokenSource
// with a service account key whose token endpoint is a local server.
func TestApplicationDefaultCredentials(t *testing.T) {
	s := newStore(t, map[string][]byte{"rules.yml": []byte("x")})
	tokens := &nettest.Recorder{}
	tokenSrv := httptest.NewServer(tokens.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" || r.PostForm.Get("assertion") == "" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":"invalid_request","error_description":"not a JWT grant"}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"access_token":"adc-token","token_type":"Bearer","expires_in":3600}`)
	})))
	t.Cleanup(tokenSrv.Close)
	keyFile := filepath.Join(t.TempDir(), "key.json")
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", keyFile)

	c := New(Options{Endpoint: s.srv.URL, Getenv: noEnv})
	// Made lazily: the key file does not exist yet when the Client is.
	serviceAccount(t, keyFile, tokenSrv.URL+"/token")
	for i := range 2 {
		if _, err := c.Get(context.Background(), Location{Bucket: testBucket, Object: "rules.yml"}, Conditions{}, 10); err != nil {
			t.Fatalf("Get %d: %v", i, err)
		}
		if a := s.rec.Last(t).Header.Get("Authorization"); a != "Bearer adc-token" {
			t.Errorf("Get %d: Authorization %q", i, a)
		}
	}
	if n := tokens.Count(); n != 1 {
		t.Errorf("token endpoint asked %d times, want once", n)
	}
}

func TestTokenErrors(t *testing.T) {
	s := newStore(t, map[string][]byte{"rules.yml": []byte("x")})
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error":"invalid_grant","error_description":"Invalid JWT Signature."}`)
	}))
	t.Cleanup(refusing.Close)
	t.Run("token endpoint refuses", func(t *testing.T) {
		keyFile := filepath.Join(t.TempDir(), "key.json")
		serviceAccount(t, keyFile, refusing.URL+"/token")
		t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", keyFile)
		got, err := New(Options{Endpoint: s.srv.URL, Getenv: noEnv}).Get(context.Background(), Location{Bucket: testBucket, Object: "rules.yml"}, Conditions{}, 10)
		want := "gcs: no Google credentials: token endpoint status 400: invalid_grant: Invalid JWT Signature."
		if err == nil || err.Error() != want {
			t.Errorf("error %v, want %q", err, want)
		}
		if got.Status != 0 {
			t.Errorf("status %d, want 0", got.Status)
		}
	})
	t.Run("no key file", func(t *testing.T) {
		keyFile := filepath.Join(t.TempDir(), "missing.json")
		t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", keyFile)
		_, err := New(Options{Endpoint: s.srv.URL, Getenv: noEnv}).Get(context.Background(), Location{Bucket: testBucket, Object: "rules.yml"}, Conditions{}, 10)
		if err == nil || !strings.HasPrefix(err.Error(), "gcs: no Google credentials: ") || !strings.Contains(err.Error(), keyFile) || strings.Contains(err.Error(), "\n") {
			t.Errorf("error %q, want one line naming %s", err, keyFile)
		}
	})
}

func TestCredentialsNeverInErrors(t *testing.T) {
	const token = "ya29.a0AfH6SMBEXAMPLETOKEN"
	echoing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		apiErrorDoc(w, http.StatusUnauthorized, "authError", "Invalid Credentials: "+r.Header.Get("Authorization"))
	}))
	t.Cleanup(echoing.Close)
	got, err := newClient(echoing.URL, &countingSource{token: token}).Get(context.Background(), Location{Bucket: testBucket, Object: "rules.yml"}, Conditions{}, 10)
	if err == nil || !strings.HasPrefix(err.Error(), "gcs status 401: authError: Invalid Credentials: ") || !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("error %v, want the echoed 401", err)
	}
	if strings.Contains(err.Error(), token) {
		t.Errorf("error holds the token: %v", err)
	}
	if got.Status != 401 {
		t.Errorf("status %d", got.Status)
	}
}

func TestRetries(t *testing.T) {
	// retried answers the first failures requests with status, then 200.
	retried := func(failures, status, wantRequests, wantStatus int) func(t *testing.T) {
		return func(t *testing.T) {
			var n atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if n.Add(1) <= int64(failures) {
					apiErrorDoc(w, status, "backendError", "try again")
					return
				}
				_, _ = io.WriteString(w, "ok")
			}))
			t.Cleanup(srv.Close)
			got, err := newClient(srv.URL, &countingSource{token: "tok"}).Get(context.Background(), Location{Bucket: testBucket, Object: "rules.yml"}, Conditions{}, 10)
			if got.Status != wantStatus {
				t.Errorf("status %d (%v), want %d", got.Status, err, wantStatus)
			}
			if n.Load() != int64(wantRequests) {
				t.Errorf("%d requests, want %d", n.Load(), wantRequests)
			}
		}
	}
	t.Run("one 503 is retried", retried(1, 503, 2, 200))
	t.Run("one 429 is retried", retried(1, 429, 2, 200))
	t.Run("two attempts at most", retried(5, 503, 2, 503))
	t.Run("a 404 is not retried", retried(5, 404, 1, 404))
}

func TestGetEndedByContext(t *testing.T) {
	srvURL, ctx := nettest.CanceledInBody(t)
	got, err := newClient(srvURL, &countingSource{token: "tok"}).Get(ctx, Location{Bucket: testBucket, Object: "rules.yml"}, Conditions{}, 1000)
	if !errors.Is(err, context.Canceled) || err.Error() != "gcs: canceled" {
		t.Errorf("error %v, want gcs: canceled", err)
	}
	if got.Status != 0 || got.Body != nil {
		t.Errorf("got %+v, want status 0 and no body", got)
	}
}

// blockingSource never gives a token until released.
type blockingSource struct {
	asked   chan struct{}
	release chan struct{}
}

func (b *blockingSource) Token() (*oauth2.Token, error) {
	b.asked <- struct{}{}
	<-b.release
	return nil, errors.New("released")
}

func TestTokenBoundByContext(t *testing.T) {
	b := &blockingSource{asked: make(chan struct{}, 1), release: make(chan struct{})}
	t.Cleanup(func() { close(b.release) })
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-b.asked
		cancel()
	}()
	_, err := newClient("http://"+nettest.ClosedAddr(t), b).Get(ctx, Location{Bucket: testBucket, Object: "rules.yml"}, Conditions{}, 10)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want canceled", err)
	}
}
