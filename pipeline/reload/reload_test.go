package reload

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/butler-sre/butler/internal/envtest"
	"github.com/butler-sre/butler/internal/nettest"
	"github.com/butler-sre/butler/pipeline/command"
	"github.com/butler-sre/butler/pipeline/redact"
)

// testServer answers requests with the statuses in turn (the last one
// repeats) and records what it received.
type testServer struct {
	mu       sync.Mutex
	statuses []int
	body     string
	calls    int
	methods  []string
	headers  []http.Header
	hosts    []string
}

func (s *testServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	status := s.statuses[min(s.calls, len(s.statuses)-1)]
	s.calls++
	s.methods = append(s.methods, r.Method)
	s.headers = append(s.headers, r.Header.Clone())
	s.hosts = append(s.hosts, r.Host)
	body := s.body
	s.mu.Unlock()
	if status/100 == 3 {
		w.Header().Set("Location", "/elsewhere")
	}
	w.WriteHeader(status)
	_, _ = w.Write([]byte(strings.ReplaceAll(body, "$AUTH", r.Header.Get("Authorization"))))
}

// callCount returns the number of requests served so far.
func (s *testServer) callCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func TestHTTP(t *testing.T) {
	tests := []struct {
		name       string
		statuses   []int
		body       string
		reloader   HTTP // URL filled in
		wantStatus int
		wantCalls  int
		wantDetail string
		check      func(t *testing.T, s *testServer, res Result)
	}{
		{name: "200", statuses: []int{200}, wantStatus: 200, wantCalls: 1},
		{name: "500 is not retried", statuses: []int{500}, body: "error loading config: bad rule\n",
			reloader: HTTP{Retries: 3}, wantStatus: 500, wantCalls: 1, wantDetail: "error loading config: bad rule"},
		{name: "400 is not retried", statuses: []int{400}, reloader: HTTP{Retries: 3}, wantStatus: 400, wantCalls: 1},
		{name: "405 returned as is", statuses: []int{405}, reloader: HTTP{Retries: 3}, wantStatus: 405, wantCalls: 1},
		{name: "503 then 200", statuses: []int{503, 200}, reloader: HTTP{Retries: 2}, wantStatus: 200, wantCalls: 2},
		{name: "429 is retried", statuses: []int{429, 429, 200}, reloader: HTTP{Retries: 2}, wantStatus: 200, wantCalls: 3},
		{name: "502 and 504 are retried", statuses: []int{502, 504, 204}, reloader: HTTP{Retries: 5}, wantStatus: 204, wantCalls: 3},
		{name: "retries run out", statuses: []int{503}, reloader: HTTP{Retries: 2}, wantStatus: 503, wantCalls: 3},
		{name: "no retries configured", statuses: []int{503, 200}, wantStatus: 503, wantCalls: 1},
		{name: "redirect not followed", statuses: []int{302, 200}, reloader: HTTP{Retries: 2}, wantStatus: 302, wantCalls: 1},
		{name: "default method is POST", statuses: []int{200}, wantStatus: 200, wantCalls: 1,
			check: func(t *testing.T, s *testServer, _ Result) {
				if s.methods[0] != http.MethodPost {
					t.Errorf("method %s, want POST", s.methods[0])
				}
			}},
		{name: "method and headers arrive", statuses: []int{200},
			reloader: HTTP{Method: http.MethodPut, Headers: map[string]string{
				"Authorization": "Bearer tok-123456", "X-Scope": "edge", "Host": "prometheus.internal",
			}},
			wantStatus: 200, wantCalls: 1,
			check: func(t *testing.T, s *testServer, _ Result) {
				h := s.headers[0]
				if s.methods[0] != http.MethodPut || h.Get("Authorization") != "Bearer tok-123456" ||
					h.Get("X-Scope") != "edge" || s.hosts[0] != "prometheus.internal" {
					t.Errorf("got %s %v host %s", s.methods[0], h, s.hosts[0])
				}
			}},
		{name: "detail never holds header values", statuses: []int{500}, body: "denied for $AUTH (edge)",
			reloader:   HTTP{Headers: map[string]string{"Authorization": "Bearer s3cr3t-token", "X-Scope": "edge"}},
			wantStatus: 500, wantCalls: 1, wantDetail: "denied for " + redact.Mask + " (" + redact.Mask + ")"},
		{name: "detail is cut at 512 bytes", statuses: []int{500}, body: strings.Repeat("x", 100<<10),
			wantStatus: 500, wantCalls: 1,
			check: func(t *testing.T, _ *testServer, res Result) {
				if len(res.Detail) != command.DetailMax {
					t.Errorf("detail is %d bytes, want %d", len(res.Detail), command.DetailMax)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &testServer{statuses: tt.statuses, body: tt.body}
			srv := httptest.NewServer(s)
			defer srv.Close()
			r := tt.reloader
			r.URL = srv.URL + "/-/reload"
			r.Backoff = 10 * time.Millisecond
			res := r.Reload(context.Background())
			if res.Status != tt.wantStatus || s.callCount() != tt.wantCalls || res.Attempts != tt.wantCalls {
				t.Errorf("status %d after %d attempts, %d calls served; want %d after %d",
					res.Status, res.Attempts, s.callCount(), tt.wantStatus, tt.wantCalls)
			}
			if tt.wantDetail != "" && res.Detail != tt.wantDetail {
				t.Errorf("detail %q, want %q", res.Detail, tt.wantDetail)
			}
			if tt.check != nil {
				tt.check(t, s, res)
			}
		})
	}
}

// echoServer answers 500 with everything the request carried: its URL, the
// password of its basic auth and every header, one per line, as some error
// pages and debugging proxies do.
func echoServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprintf(w, "rejected %s %s\n", r.Method, r.URL.RequestURI())
		if _, pass, ok := r.BasicAuth(); ok {
			fmt.Fprintf(w, "password=%s\n", pass)
		}
		names := make([]string, 0, len(r.Header))
		for name := range r.Header {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			fmt.Fprintf(w, "%s: %s\n", name, strings.Join(r.Header[name], ", "))
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// basicAuth is the credential of an Authorization: Basic header.
func basicAuth(user, password string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
}

func TestHTTPDetailRedacted(t *testing.T) {
	srv := echoServer(t)
	withUser := func(userinfo, path string) string {
		return strings.Replace(srv.URL, "http://", "http://"+userinfo+"@", 1) + path
	}
	const (
		bearer    = "tok-abcdef-123456"
		apiKey    = "key-0987654321"
		password  = "pa55-w0rd-Secret"
		longToken = "Zk39sLq0pQwErTy"
		escToken  = "a/b+c=d&e-long-token"
	)
	tests := []struct {
		name     string
		url      string
		headers  map[string]string
		secrets  []string // none may appear in the detail
		wantKept []string // what the detail still shows
	}{
		{
			name:     "configured headers",
			url:      srv.URL + "/-/reload",
			headers:  map[string]string{"Authorization": "Bearer " + bearer, "X-Api-Key": apiKey},
			secrets:  []string{bearer, apiKey},
			wantKept: []string{"rejected POST /-/reload", "Authorization: " + redact.Mask, "X-Api-Key: " + redact.Mask},
		},
		{
			name:     "url password",
			url:      withUser("butler:"+password, "/-/reload"),
			secrets:  []string{password, basicAuth("butler", password)},
			wantKept: []string{"rejected POST /-/reload", "password=" + redact.Mask, "Authorization: Basic " + redact.Mask},
		},
		{
			name:     "long query token",
			url:      srv.URL + "/-/reload?rid=7&session=" + longToken,
			secrets:  []string{longToken},
			wantKept: []string{"rejected POST /-/reload?rid=7&session=" + redact.Mask},
		},
		{
			name:     "escaped query token",
			url:      srv.URL + "/-/reload?session=" + strings.NewReplacer("/", "%2F", "+", "%2B", "=", "%3D", "&", "%26").Replace(escToken),
			secrets:  []string{escToken, "a%2Fb%2Bc%3Dd%26e-long-token"},
			wantKept: []string{"rejected POST /-/reload?session=" + redact.Mask},
		},
		{
			name:     "secret query parameter",
			url:      srv.URL + "/-/reload?token=t0k9",
			secrets:  []string{"t0k9"},
			wantKept: []string{"rejected POST /-/reload?token=" + redact.Mask},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := HTTP{URL: tt.url, Headers: tt.headers}
			res := r.Reload(context.Background())
			if res.Status != http.StatusInternalServerError {
				t.Fatalf("got %+v, want the echo server's 500", res)
			}
			for _, s := range tt.secrets {
				if strings.Contains(res.Detail, s) {
					t.Errorf("detail holds the secret %q:\n%s", s, res.Detail)
				}
			}
			for _, w := range tt.wantKept {
				if !strings.Contains(res.Detail, w) {
					t.Errorf("detail lacks %q:\n%s", w, res.Detail)
				}
			}
			if strings.Contains(res.Detail, "[redacted]") {
				t.Errorf("detail uses a mask other than %q:\n%s", redact.Mask, res.Detail)
			}
		})
	}
}

func TestHTTPNoResponse(t *testing.T) {
	release := make(chan struct{})
	var hangRec nettest.Recorder
	hang := httptest.NewServer(hangRec.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})))
	defer hang.Close()
	defer close(release)

	tests := []struct {
		name         string
		reloader     HTTP
		wantAttempts int
		wantDetail   string
	}{
		{name: "hanging server times out", reloader: HTTP{URL: hang.URL, Timeout: 200 * time.Millisecond},
			wantAttempts: 1, wantDetail: "no response within 200ms"},
		{name: "hanging server retried", reloader: HTTP{URL: hang.URL, Timeout: 100 * time.Millisecond, Retries: 1},
			wantAttempts: 2, wantDetail: "no response within 100ms"},
		{name: "connection refused is retried", reloader: HTTP{URL: "http://" + nettest.ClosedAddr(t) + "/-/reload", Retries: 2},
			wantAttempts: 3, wantDetail: "refused"},
		{name: "bad URL", reloader: HTTP{URL: "http://[::1"}, wantAttempts: 1, wantDetail: "bad request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.reloader
			r.Backoff = 10 * time.Millisecond
			start := time.Now()
			res := r.Reload(context.Background())
			if elapsed := time.Since(start); elapsed > 5*time.Second {
				t.Errorf("took %s", elapsed)
			}
			if res.Status != 0 || res.Attempts != tt.wantAttempts || !strings.Contains(res.Detail, tt.wantDetail) {
				t.Errorf("got %+v; want status 0 after %d attempts, detail containing %q", res, tt.wantAttempts, tt.wantDetail)
			}
		})
	}
	// A request given up on before the server read it is not counted, so
	// only the bounds are sure on a busy machine.
	if hangCalls := hangRec.Count(); hangCalls < 1 || hangCalls > 3 {
		t.Errorf("hanging server got %d calls, want 1 to 3", hangCalls)
	}
}

func TestHTTPContext(t *testing.T) {
	t.Run("cancelled during a request stops retries", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var rec nettest.Recorder
		srv := httptest.NewServer(rec.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			cancel()
			w.WriteHeader(http.StatusServiceUnavailable)
		})))
		defer srv.Close()
		r := HTTP{URL: srv.URL, Retries: 50, Backoff: 50 * time.Millisecond}
		res := r.Reload(ctx)
		if calls := rec.Count(); calls != 1 || res.Attempts != 1 {
			t.Errorf("%d calls, %d attempts after cancel; want 1", calls, res.Attempts)
		}
	})
	t.Run("deadline during backoff stops retries", func(t *testing.T) {
		s := &testServer{statuses: []int{503}}
		srv := httptest.NewServer(s)
		defer srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		r := HTTP{URL: srv.URL, Retries: 5, Backoff: time.Minute}
		start := time.Now()
		res := r.Reload(ctx)
		if elapsed := time.Since(start); elapsed > 5*time.Second {
			t.Errorf("took %s, want it to end with the deadline", elapsed)
		}
		if res.Status != 503 || res.Attempts != 1 || s.callCount() != 1 || !strings.Contains(res.Detail, "run deadline reached") {
			t.Errorf("got %+v after %d calls; want the 503 of the only attempt and the deadline named", res, s.callCount())
		}
	})
	t.Run("already cancelled", func(t *testing.T) {
		s := &testServer{statuses: []int{200}}
		srv := httptest.NewServer(s)
		defer srv.Close()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		r := HTTP{URL: srv.URL, Retries: 5}
		res := r.Reload(ctx)
		if res.Status != 0 || res.Attempts != 1 || s.callCount() != 0 || !strings.Contains(res.Detail, "run cancelled") {
			t.Errorf("got %+v after %d calls; want status 0, no call", res, s.callCount())
		}
	})
}

// TestCommand checks how a command's end becomes a Result; how the command
// runs (process group, output limit, background children) is tested in
// package command.
func TestCommand(t *testing.T) {
	for _, bin := range []string{"true", "false", "sh", "sleep"} {
		envtest.Program(t, bin, "coreutils")
	}
	tests := []struct {
		name       string
		argv       []string
		timeout    time.Duration
		wantStatus int
		wantDetail []string
	}{
		{name: "exit 0", argv: []string{"true"}, wantStatus: 200},
		{name: "exit 1", argv: []string{"false"}, wantStatus: 500, wantDetail: []string{"exit status 1"}},
		{name: "output captured", argv: []string{"sh", "-c", "echo reloading; echo 'bad config line 3' >&2; exit 3"},
			wantStatus: 500, wantDetail: []string{"reloading", "bad config line 3", "exit status 3"}},
		{name: "output of a success", argv: []string{"sh", "-c", "echo done"}, wantStatus: 200, wantDetail: []string{"done"}},
		{name: "killed by a signal", argv: []string{"sh", "-c", "kill -9 $$"}, wantStatus: 500, wantDetail: []string{"killed"}},
		{name: "timeout", argv: []string{"sleep", "10"}, timeout: 300 * time.Millisecond, wantStatus: 0,
			wantDetail: []string{"no exit within 300ms; killed"}},
		{name: "timeout keeps the output", argv: []string{"sh", "-c", "echo waiting for the lock; sleep 10"}, timeout: 300 * time.Millisecond,
			wantStatus: 0, wantDetail: []string{"no exit within 300ms; killed: waiting for the lock"}},
		{name: "missing binary", argv: []string{"/nonexistent/reload-me"}, wantStatus: 0,
			wantDetail: []string{"cannot start /nonexistent/reload-me"}},
		{name: "not in PATH", argv: []string{"no-such-reload-command-here"}, wantStatus: 0,
			wantDetail: []string{"cannot start", "not found"}},
		{name: "empty argv", argv: nil, wantStatus: 0, wantDetail: []string{"empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Command{Argv: tt.argv, Timeout: tt.timeout}
			start := time.Now()
			res := r.Reload(context.Background())
			if elapsed := time.Since(start); elapsed > 5*time.Second {
				t.Errorf("took %s, want a prompt return", elapsed)
			}
			if res.Status != tt.wantStatus || res.Attempts != 1 {
				t.Errorf("got %+v, want status %d", res, tt.wantStatus)
			}
			for _, want := range tt.wantDetail {
				if !strings.Contains(res.Detail, want) {
					t.Errorf("detail %q does not contain %q", res.Detail, want)
				}
			}
		})
	}
}

func TestCommandContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	r := Command{Argv: []string{"sleep", "10"}, Timeout: time.Minute}
	start := time.Now()
	res := r.Reload(ctx)
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("took %s, want it to end with the run deadline", elapsed)
	}
	if res.Status != 0 || !strings.Contains(res.Detail, "run deadline reached") {
		t.Errorf("got %+v, want status 0 naming the run deadline", res)
	}
}
