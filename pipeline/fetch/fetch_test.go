package fetch

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/butler-sre/butler/internal/errtest"
	"github.com/butler-sre/butler/internal/fstest"
	"github.com/butler-sre/butler/internal/gitrepo"
	"github.com/butler-sre/butler/internal/nettest"
	"github.com/butler-sre/butler/pipeline/source"
)

// allSchemes are the schemes most tests allow (git only where a test
// needs it).
var allSchemes = []string{"https", "http", "s3", "gcs", "file"}

// newTestFetcher returns a Fetcher whose staging directories go to a
// directory of the test, and that directory.
func newTestFetcher(t *testing.T, max int64, schemes ...string) (*Fetcher, string) {
	t.Helper()
	if len(schemes) == 0 {
		schemes = allSchemes
	}
	dir := t.TempDir()
	return New(Config{Schemes: schemes, MaxFileSize: max, TempDir: dir}), dir
}

// assertNoStaging fails when a fetch left its staging directory behind.
func assertNoStaging(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("staging directory left behind: %s", e.Name())
	}
}

// fetchCase is a source to fetch and what the fetch must give: the
// status, and the body or an error containing wantErr (and, with wantKind,
// wrapping it). schemes are the schemes the Fetcher allows, nil for the
// test's own.
type fetchCase struct {
	name       string
	schemes    []string
	source     string
	wantStatus int
	wantBody   string
	wantErr    string
	wantKind   error
}

// check fetches tc.source with f, within timeout, and fails the test when
// the status, the body or the error is not what tc wants. It returns the
// error of the fetch.
func (tc fetchCase) check(t *testing.T, f *Fetcher, timeout time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	data, status, err := f.Fetch(ctx, tc.source, nil)
	if status != tc.wantStatus {
		t.Errorf("status = %d, want %d", status, tc.wantStatus)
	}
	errtest.Want(t, "Fetch", err, tc.wantErr, tc.wantKind)
	if err == nil && string(data) != tc.wantBody {
		t.Fatalf("data %q, want %q", data, tc.wantBody)
	}
	return err
}

// assertOnlyGETs fails on any HEAD (or other non-GET) request and on any
// Range header rec saw.
func assertOnlyGETs(t *testing.T, rec *nettest.Recorder) {
	t.Helper()
	var ranges []string
	for _, r := range rec.All() {
		if r.Method != http.MethodGet {
			t.Errorf("server saw a %s request; want GET only", r.Method)
		}
		if v := r.Header.Get("Range"); v != "" {
			ranges = append(ranges, v)
		}
	}
	if len(ranges) > 0 {
		t.Errorf("server saw Range headers %q; want none", ranges)
	}
}

// recordingServer starts an httptest server that records every request.
func recordingServer(t *testing.T, h http.Handler) (*httptest.Server, *nettest.Recorder) {
	t.Helper()
	rec := &nettest.Recorder{}
	srv := httptest.NewServer(rec.Wrap(h))
	t.Cleanup(srv.Close)
	return srv, rec
}

func gzipped(t *testing.T, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zipped(t *testing.T, name string, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestFetchHTTP(t *testing.T) {
	const (
		user     = "butler"
		password = "pa55word-Secret-9"
		token    = "Bearer tok-abcdef-123456"
		qsecret  = "querysecret-7788"
	)
	gz := gzipped(t, []byte("groups: []\n"))
	zp := zipped(t, "rules.yml", []byte("groups: []\n"))
	mux := http.NewServeMux()
	mux.HandleFunc("/ok.yml", func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "ok.yml", time.Time{}, strings.NewReader("global: {}\n"))
	})
	mux.HandleFunc("/404.yml", http.NotFound)
	mux.HandleFunc("/500.yml", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	})
	mux.HandleFunc("/auth.yml", func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != user || p != password {
			w.Header().Set("WWW-Authenticate", `Basic realm="cfg"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, "authorized\n")
	})
	mux.HandleFunc("/headers.yml", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != token || r.Header.Get("X-Butler-Test") != "value-1" {
			http.Error(w, "missing headers", http.StatusBadRequest)
			return
		}
		_, _ = io.WriteString(w, "headers arrived\n")
	})
	mux.HandleFunc("/rules.yml.gz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/gzip")
		_, _ = w.Write(gz)
	})
	mux.HandleFunc("/rules.zip", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/zip")
		_, _ = w.Write(zp)
	})
	mux.HandleFunc("/moved.yml", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ok.yml", http.StatusFound)
	})
	srv, rec := recordingServer(t, mux)
	okSum := fmt.Sprintf("%x", sha256.Sum256([]byte("global: {}\n")))
	withAuth := func(userinfo, p string) string {
		return strings.Replace(srv.URL, "http://", "http://"+userinfo+"@", 1) + p
	}

	cases := []struct {
		name       string
		source     string
		headers    map[string]string
		wantStatus int
		wantBody   []byte
		wantErr    string
		secrets    []string // must not appear in the error
	}{
		{name: "200 body", source: srv.URL + "/ok.yml", wantStatus: 200, wantBody: []byte("global: {}\n")},
		{name: "404", source: srv.URL + "/404.yml", wantStatus: 404, wantErr: "http status 404"},
		{name: "500", source: srv.URL + "/500.yml", wantStatus: 500, wantErr: "http status 500"},
		{name: "basic auth right credentials", source: withAuth(user+":"+password, "/auth.yml"), wantStatus: 200, wantBody: []byte("authorized\n")},
		{name: "basic auth wrong password", source: withAuth(user+":wrong-"+password, "/auth.yml"), wantStatus: 401, wantErr: "http status 401", secrets: []string{"wrong-" + password}},
		{name: "basic auth missing", source: srv.URL + "/auth.yml", wantStatus: 401, wantErr: "http status 401"},
		{name: "custom headers arrive", source: srv.URL + "/headers.yml", headers: map[string]string{"Authorization": token, "X-Butler-Test": "value-1"}, wantStatus: 200, wantBody: []byte("headers arrived\n")},
		{name: "custom headers missing", source: srv.URL + "/headers.yml", wantStatus: 400, wantErr: "http status 400"},
		{name: "query secret not in error", source: srv.URL + "/404.yml?token=" + qsecret, headers: map[string]string{"Authorization": token}, wantStatus: 404, wantErr: "http status 404", secrets: []string{qsecret, token, "tok-abcdef-123456"}},
		{name: "gz source not decompressed", source: srv.URL + "/rules.yml.gz", wantStatus: 200, wantBody: gz},
		{name: "zip source not decompressed", source: srv.URL + "/rules.zip", wantStatus: 200, wantBody: zp},
		{name: "checksum matches", source: srv.URL + "/ok.yml?checksum=sha256:" + okSum, wantStatus: 200, wantBody: []byte("global: {}\n")},
		{name: "checksum mismatch", source: srv.URL + "/ok.yml?checksum=sha256:" + strings.Repeat("0", 64), wantStatus: 200, wantErr: "checksum mismatch: expected 0000"},
		{name: "same-host redirect followed", source: srv.URL + "/moved.yml", wantStatus: 200, wantBody: []byte("global: {}\n")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, staging := newTestFetcher(t, 1<<20)
			data, status, err := f.Fetch(context.Background(), tc.source, tc.headers)
			if status != tc.wantStatus {
				t.Errorf("status = %d, want %d", status, tc.wantStatus)
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if !bytes.Equal(data, tc.wantBody) {
					t.Errorf("body = %q, want %q", data, tc.wantBody)
				}
			} else {
				if err == nil {
					t.Fatalf("no error, want one containing %q", tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %q does not contain %q", err, tc.wantErr)
				}
				if data != nil {
					t.Errorf("data = %q on error, want nil", data)
				}
				for _, s := range append(tc.secrets, password) {
					if strings.Contains(err.Error(), s) {
						t.Errorf("error %q contains the secret %q", err, s)
					}
				}
			}
			assertNoStaging(t, staging)
		})
	}
	assertOnlyGETs(t, rec)
}

func TestFetchHTTPNeverSendsRangeOrHead(t *testing.T) {
	// The server advertises byte ranges; a fetch onto an existing file would
	// send HEAD then a Range request. Fetching the same URL twice must send
	// two plain GETs.
	srv, rec := recordingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "x.yml", time.Time{}, strings.NewReader("a: 1\nb: 2\n"))
	}))
	f, _ := newTestFetcher(t, 1<<20)
	for i := range 2 {
		data, status, err := f.Fetch(context.Background(), srv.URL+"/x.yml", nil)
		if err != nil || status != 200 || string(data) != "a: 1\nb: 2\n" {
			t.Fatalf("fetch %d: data %q, status %d, err %v", i, data, status, err)
		}
	}
	if n := rec.Count(); n != 2 {
		t.Errorf("server saw %d requests, want 2", n)
	}
	assertOnlyGETs(t, rec)
}

func TestFetchHTTPSizeLimit(t *testing.T) {
	const max = 1024
	mux := http.NewServeMux()
	mux.HandleFunc("/length/{n}", func(w http.ResponseWriter, r *http.Request) {
		var n int
		_, _ = fmt.Sscan(r.PathValue("n"), &n)
		w.Header().Set("Content-Length", fmt.Sprint(n))
		_, _ = w.Write(bytes.Repeat([]byte("a"), n))
	})
	mux.HandleFunc("/chunked/{n}", func(w http.ResponseWriter, r *http.Request) {
		var n int
		_, _ = fmt.Sscan(r.PathValue("n"), &n)
		// Flushing before the body is complete makes the server use chunked
		// encoding: no Content-Length reaches the client.
		half := n / 2
		_, _ = w.Write(bytes.Repeat([]byte("b"), half))
		w.(http.Flusher).Flush()
		_, _ = w.Write(bytes.Repeat([]byte("b"), n-half))
	})
	mux.HandleFunc("/gzip-encoded", func(w http.ResponseWriter, r *http.Request) {
		// A small body that net/http transparently inflates to 1 MiB.
		w.Header().Set("Content-Encoding", "gzip")
		_, _ = w.Write(gzipped(t, bytes.Repeat([]byte("z"), 1<<20)))
	})
	srv, _ := recordingServer(t, mux)

	cases := []struct {
		name     string
		path     string
		wantSize int
		wantErr  bool
	}{
		{name: "content-length exactly max", path: "/length/1024", wantSize: max},
		{name: "content-length one byte more", path: "/length/1025", wantErr: true},
		{name: "chunked exactly max", path: "/chunked/1024", wantSize: max},
		{name: "chunked one byte more", path: "/chunked/1025", wantErr: true},
		{name: "chunked far larger", path: "/chunked/1000000", wantErr: true},
		{name: "transparently inflated body is limited", path: "/gzip-encoded", wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, staging := newTestFetcher(t, max)
			data, status, err := f.Fetch(context.Background(), srv.URL+tc.path, nil)
			if status != 200 {
				t.Errorf("status = %d, want 200", status)
			}
			if tc.wantErr {
				if err == nil {
					t.Fatalf("no error for a body larger than max (got %d bytes)", len(data))
				}
				if want := "larger than max_file_size 1KiB (1024 bytes)"; !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
				if !errors.Is(err, errTooLarge) {
					t.Errorf("error %v is not errTooLarge", err)
				}
			} else if err != nil || len(data) != tc.wantSize {
				t.Errorf("got %d bytes, err %v; want %d bytes", len(data), err, tc.wantSize)
			}
			assertNoStaging(t, staging)
		})
	}
}

func TestFetchHTTPNoResponse(t *testing.T) {
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/hang-before-headers", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	mux.HandleFunc("/hang-in-body", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "partial: ")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	srv, _ := recordingServer(t, mux)
	t.Cleanup(func() { close(release) }) // runs before srv.Close

	cases := []struct {
		name        string
		source      string
		wantErr     string
		wantTimeout bool
	}{
		{name: "hanging server before headers", source: srv.URL + "/hang-before-headers", wantErr: "timed out", wantTimeout: true},
		{name: "hanging server in the body", source: srv.URL + "/hang-in-body", wantErr: "timed out", wantTimeout: true},
		{name: "connection refused", source: "http://" + nettest.ClosedAddr(t) + "/x.yml", wantErr: "connection refused"},
		// A resolver that does not answer at all ends in the deadline.
		{name: "dns failure", source: "http://butler-no-such-host.invalid/x.yml", wantErr: "no response|timed out"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, staging := newTestFetcher(t, 1<<20)
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, status, err := f.Fetch(ctx, tc.source, nil)
			if status != 0 {
				t.Errorf("status = %d, want 0", status)
			}
			if err == nil {
				t.Fatalf("no error, want one containing %q", tc.wantErr)
			}
			if !slices.ContainsFunc(strings.Split(tc.wantErr, "|"), func(w string) bool { return strings.Contains(err.Error(), w) }) {
				t.Fatalf("error %q, want one containing %q", err, tc.wantErr)
			}
			if tc.wantTimeout && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("error %v is not context.DeadlineExceeded", err)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("fetch took %s despite the deadline", d)
			}
			assertNoStaging(t, staging)
		})
	}
}

func TestFetchHTTPSchemesAndRedirects(t *testing.T) {
	plain, plainRec := recordingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "plain\n")
	}))
	// A second host (another port) that must not see the custom header.
	other, otherRec := recordingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "other host\n")
	}))
	redirector, redirectorRec := recordingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/x.yml", http.StatusFound)
	}))
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/down" {
			http.Redirect(w, r, plain.URL+"/x.yml", http.StatusFound)
			return
		}
		_, _ = io.WriteString(w, "tls\n")
	}))
	t.Cleanup(tlsSrv.Close)

	cases := []struct {
		name       string
		schemes    []string
		client     *http.Client
		source     string
		headers    map[string]string
		wantStatus int
		wantBody   string
		wantErr    string
	}{
		{name: "http refused when only https is allowed", schemes: []string{"https"}, source: plain.URL + "/x.yml", wantErr: `scheme "http" is not allowed (add it to [butler] schemes)`},
		{name: "https with a custom client", schemes: []string{"https"}, client: tlsSrv.Client(), source: tlsSrv.URL + "/x.yml", wantStatus: 200, wantBody: "tls\n"},
		{name: "redirect to a scheme not allowed", schemes: []string{"https"}, client: tlsSrv.Client(), source: tlsSrv.URL + "/down", wantStatus: 302, wantErr: `redirect to scheme "http" is not allowed`},
		{name: "redirect from https to http refused", schemes: []string{"https", "http"}, client: tlsSrv.Client(), source: tlsSrv.URL + "/down", wantStatus: 302, wantErr: "redirect from https to http refused"},
		{name: "cross-host redirect drops custom headers", schemes: []string{"http"}, source: redirector.URL + "/x.yml", headers: map[string]string{"X-Cfg-Token": "header-secret-1"}, wantStatus: 200, wantBody: "other host\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := plainRec.Count()
			f := New(Config{Schemes: tc.schemes, MaxFileSize: 1 << 20, TempDir: t.TempDir(), HTTPClient: tc.client})
			data, status, err := f.Fetch(context.Background(), tc.source, tc.headers)
			if status != tc.wantStatus {
				t.Errorf("status = %d, want %d", status, tc.wantStatus)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				if n := plainRec.Count() - before; n != 0 {
					t.Errorf("the plain http server saw %d requests, want 0", n)
				}
				return
			}
			if err != nil || string(data) != tc.wantBody {
				t.Fatalf("data %q, err %v; want %q", data, err, tc.wantBody)
			}
		})
	}
	for _, r := range otherRec.All() {
		if v := r.Header.Get("X-Cfg-Token"); v != "" {
			t.Errorf("the redirect target on another host received X-Cfg-Token %q", v)
		}
	}
	if first := redirectorRec.All(); len(first) == 0 || first[0].Header.Get("X-Cfg-Token") != "header-secret-1" {
		t.Errorf("the first host did not receive X-Cfg-Token")
	}
}

func TestFetchConcurrent(t *testing.T) {
	const n = 8
	// Every handler waits until all n requests are in flight, so the fetches
	// really overlap.
	var mu sync.Mutex
	arrived := 0
	allIn := make(chan struct{})
	srv, _ := recordingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrived++
		if arrived == n {
			close(allIn)
		}
		mu.Unlock()
		select {
		case <-allIn:
		case <-time.After(10 * time.Second):
		}
		if r.URL.Path == "/c/3" {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, "body of "+r.URL.Path)
	}))
	f, staging := newTestFetcher(t, 1<<20)
	type result struct {
		data   string
		status int
		err    error
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			data, status, err := f.Fetch(context.Background(), fmt.Sprintf("%s/c/%d", srv.URL, i), nil)
			results[i] = result{string(data), status, err}
		})
	}
	wg.Wait()
	for i, r := range results {
		if i == 3 {
			if r.status != 404 || r.err == nil {
				t.Errorf("fetch %d: status %d, err %v; want 404 and an error", i, r.status, r.err)
			}
			continue
		}
		if want := fmt.Sprintf("body of /c/%d", i); r.status != 200 || r.err != nil || r.data != want {
			t.Errorf("fetch %d: data %q, status %d, err %v; want %q, 200", i, r.data, r.status, r.err, want)
		}
	}
	assertNoStaging(t, staging)
}

func TestFetchS3(t *testing.T) {
	const (
		max     = 1024
		keyID   = "AKIDBUTLERTEST01"
		secret  = "s3cr3t/Key+Value-0042"
		bucket  = "configs"
		content = "groups:\n  - name: common\n"
	)
	// The SDK logs "Response has no supported checksum" to stderr for
	// servers that send none; this is how an operator silences it.
	t.Setenv("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required")
	backend := s3mem.New()
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(srv.Close)
	if err := backend.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	put := func(key string, data []byte) {
		if _, err := backend.PutObject(bucket, key, map[string]string{}, bytes.NewReader(data), int64(len(data)), nil); err != nil {
			t.Fatal(err)
		}
	}
	put("prometheus/rules.yml", []byte(content))
	put("prometheus/exact.yml", bytes.Repeat([]byte("e"), max))
	put("prometheus/big.yml", bytes.Repeat([]byte("x"), max+1))
	creds := "?region=us-east-1&aws_access_key_id=" + keyID + "&aws_access_key_secret=" + strings.NewReplacer("/", "%2F", "+", "%2B").Replace(secret)
	s3Source := func(bucketAndKey string) string { return "s3::" + srv.URL + "/" + bucketAndKey + creds }

	cases := []fetchCase{
		{name: "object fetched", source: s3Source(bucket + "/prometheus/rules.yml"), wantStatus: 200, wantBody: content},
		{name: "object of exactly max", source: s3Source(bucket + "/prometheus/exact.yml"), wantStatus: 200, wantBody: strings.Repeat("e", max)},
		{name: "missing key", source: s3Source(bucket + "/prometheus/missing.yml"), wantStatus: 404, wantErr: "s3 status 404"},
		{name: "missing bucket", source: s3Source("nobucket/rules.yml"), wantStatus: 404, wantErr: "s3 status 404"},
		{name: "larger than max", source: s3Source(bucket + "/prometheus/big.yml"), wantStatus: 200, wantErr: "larger than max_file_size"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, staging := newTestFetcher(t, max)
			if err := tc.check(t, f, 30*time.Second); err != nil {
				for _, s := range []string{secret, "s3cr3t%2FKey%2BValue-0042", keyID} {
					if strings.Contains(err.Error(), s) {
						t.Errorf("error %q contains the secret %q", err, s)
					}
				}
			}
			assertNoStaging(t, staging)
		})
	}
}

func TestFetchGCS(t *testing.T) {
	// fake-gcs-server in process; the GCS client honours STORAGE_EMULATOR_HOST.
	fake, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		Scheme: "http", Host: "127.0.0.1", NoListener: true, Writer: io.Discard,
		InitialObjects: []fakestorage.Object{{ObjectAttrs: fakestorage.ObjectAttrs{BucketName: "cfg", Name: "alertmanager.yml"}, Content: []byte("route: {}\n")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, rec := recordingServer(t, fake.HTTPHandler())
	t.Cleanup(fake.Stop)
	t.Setenv("STORAGE_EMULATOR_HOST", strings.TrimPrefix(srv.URL, "http://"))

	cases := []fetchCase{
		{name: "gcs form", source: "gcs::https://www.googleapis.com/storage/v1/cfg/alertmanager.yml", wantStatus: 200, wantBody: "route: {}\n"},
		{name: "gs form", source: "gs://cfg/alertmanager.yml", wantStatus: 200, wantBody: "route: {}\n"},
		{name: "missing object", source: "gs://cfg/missing.yml", wantStatus: 404, wantErr: "gcs status 404"},
		{name: "missing bucket", source: "gs://nope/alertmanager.yml", wantStatus: 404, wantErr: "gcs status 404"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, staging := newTestFetcher(t, 1<<20)
			tc.check(t, f, 30*time.Second)
			assertNoStaging(t, staging)
		})
	}
	if rec.Count() == 0 {
		t.Error("the storage server saw no request")
	}
}

func TestFetchFile(t *testing.T) {
	const max = 64
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ok := write("conf/ok.yml", []byte("a: 1\n"))
	exact := write("exact.txt", bytes.Repeat([]byte("e"), max))
	big := write("big.txt", bytes.Repeat([]byte("x"), max+1))
	gz := gzipped(t, []byte("b: 2\n"))
	gzPath := write("rules.yml.gz", gz)
	link := filepath.Join(dir, "link.yml")
	fstest.Symlink(t, ok, link)
	relative, err := source.Resolve("conf/ok.yml", dir)
	if err != nil {
		t.Fatal(err)
	}

	cases := []fetchCase{
		{name: "absolute path", source: ok, wantStatus: 200, wantBody: "a: 1\n"},
		{name: "file URL", source: "file://" + ok, wantStatus: 200, wantBody: "a: 1\n"},
		{name: "forced file getter", source: "file::" + ok, wantStatus: 200, wantBody: "a: 1\n"},
		{name: "relative resolved by ResolveSource", source: relative, wantStatus: 200, wantBody: "a: 1\n"},
		{name: "exactly max", source: exact, wantStatus: 200, wantBody: strings.Repeat("e", max)},
		{name: "gz not decompressed", source: gzPath, wantStatus: 200, wantBody: string(gz)},
		{name: "missing", source: filepath.Join(dir, "missing.yml"), wantStatus: 404, wantErr: "not found", wantKind: fs.ErrNotExist},
		{name: "symlink refused", source: link, wantStatus: 403, wantErr: "symbolic link", wantKind: fs.ErrPermission},
		{name: "directory refused", source: filepath.Join(dir, "conf"), wantStatus: 403, wantErr: "not a regular file", wantKind: fs.ErrPermission},
		{name: "larger than max", source: big, wantStatus: 200, wantErr: "larger than max_file_size 64 bytes", wantKind: errTooLarge},
		{name: "relative path not resolved", source: "conf/ok.yml", wantStatus: 0, wantErr: "relative file source needs the configuration file's directory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, staging := newTestFetcher(t, max)
			tc.check(t, f, 30*time.Second)
			assertNoStaging(t, staging)
		})
	}

	t.Run("permission denied", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root reads any file: permission denied cannot be produced")
		}
		p := write("secret.yml", []byte("s: 1\n"))
		if err := os.Chmod(p, 0); err != nil {
			t.Fatal(err)
		}
		f, _ := newTestFetcher(t, max)
		_, status, err := f.Fetch(context.Background(), p, nil)
		if status != 403 || !errors.Is(err, fs.ErrPermission) {
			t.Errorf("status %d, err %v; want 403 and a permission error", status, err)
		}
	})

	t.Run("file not allowed", func(t *testing.T) {
		f, _ := newTestFetcher(t, max, "https")
		_, status, err := f.Fetch(context.Background(), ok, nil)
		if status != 0 || err == nil || !strings.Contains(err.Error(), `scheme "file" is not allowed`) {
			t.Errorf("status %d, err %v; want 0 and the scheme refused", status, err)
		}
	})
}

func TestFetchGit(t *testing.T) {
	repo := gitrepo.Sample(t)
	withGit := append(append([]string{}, allSchemes...), "git")
	cases := []fetchCase{
		{name: "file in a subdirectory", source: "git::file://" + repo + "//prometheus/rules/common.yml", wantStatus: 200, wantBody: "version: 2\n"},
		{name: "file at the top without //", source: "git::file://" + repo + "/root.yml", wantStatus: 200, wantBody: "root: 1\n"},
		{name: "ref selects a tag", source: "git::file://" + repo + "//prometheus/rules/common.yml?ref=v1", wantStatus: 200, wantBody: "version: 1\n"},
		{name: "missing path", source: "git::file://" + repo + "//prometheus/missing.yml", wantStatus: 404, wantErr: "not found"},
		{name: "dot-dot refused", source: "git::file://" + repo + "//../../etc/hostname", wantStatus: 0, wantErr: "climbs out of the repository"},
		{name: "symlink in the repository refused", source: "git::file://" + repo + "//link.yml", wantStatus: 403, wantErr: "symbolic link"},
		{name: "directory refused", source: "git::file://" + repo + "//prometheus", wantStatus: 403, wantErr: "not a regular file"},
		{name: "missing repository", source: "git::file://" + repo + "-missing//x.yml", wantStatus: 0, wantErr: "git fetch: fatal:"},
		{name: "repository without a file", source: "git::file://" + repo + ".git", wantStatus: 0, wantErr: "must name a file"},
		{name: "git refused when not allowed", schemes: allSchemes, source: "git::file://" + repo + "//root.yml", wantErr: `scheme "git" is not allowed (add it to [butler] schemes)`},
		{name: "github shorthand refused when not allowed", schemes: allSchemes, source: "github.com/butler-sre/configs/prometheus.yml", wantErr: `scheme "git" is not allowed`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			schemes := tc.schemes
			if schemes == nil {
				schemes = withGit
			}
			f, staging := newTestFetcher(t, 1<<20, schemes...)
			tc.check(t, f, time.Minute)
			// The checkouts of a run are shared by its files, and go with
			// the Fetcher.
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			assertNoStaging(t, staging)
		})
	}
}
