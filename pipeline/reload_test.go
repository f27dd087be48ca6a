package pipeline

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// reloadTestServer answers requests with the statuses in turn (the last one
// repeats) and records what it received.
type reloadTestServer struct {
	mu       sync.Mutex
	statuses []int
	body     string
	calls    int
	methods  []string
	headers  []http.Header
	hosts    []string
}

func (s *reloadTestServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
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

// reloadTestCalls returns the number of requests served so far.
func (s *reloadTestServer) reloadTestCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func TestHTTPReloader(t *testing.T) {
	tests := []struct {
		name       string
		statuses   []int
		body       string
		reloader   HTTPReloader // URL filled in
		wantStatus int
		wantCalls  int
		wantDetail string
		check      func(t *testing.T, s *reloadTestServer, res ReloadResult)
	}{
		{name: "200", statuses: []int{200}, wantStatus: 200, wantCalls: 1},
		{name: "500 is not retried", statuses: []int{500}, body: "error loading config: bad rule\n",
			reloader: HTTPReloader{Retries: 3}, wantStatus: 500, wantCalls: 1, wantDetail: "error loading config: bad rule"},
		{name: "400 is not retried", statuses: []int{400}, reloader: HTTPReloader{Retries: 3}, wantStatus: 400, wantCalls: 1},
		{name: "405 returned as is", statuses: []int{405}, reloader: HTTPReloader{Retries: 3}, wantStatus: 405, wantCalls: 1},
		{name: "503 then 200", statuses: []int{503, 200}, reloader: HTTPReloader{Retries: 2}, wantStatus: 200, wantCalls: 2},
		{name: "429 is retried", statuses: []int{429, 429, 200}, reloader: HTTPReloader{Retries: 2}, wantStatus: 200, wantCalls: 3},
		{name: "502 and 504 are retried", statuses: []int{502, 504, 204}, reloader: HTTPReloader{Retries: 5}, wantStatus: 204, wantCalls: 3},
		{name: "retries run out", statuses: []int{503}, reloader: HTTPReloader{Retries: 2}, wantStatus: 503, wantCalls: 3},
		{name: "no retries configured", statuses: []int{503, 200}, wantStatus: 503, wantCalls: 1},
		{name: "redirect not followed", statuses: []int{302, 200}, reloader: HTTPReloader{Retries: 2}, wantStatus: 302, wantCalls: 1},
		{name: "default method is POST", statuses: []int{200}, wantStatus: 200, wantCalls: 1,
			check: func(t *testing.T, s *reloadTestServer, _ ReloadResult) {
				if s.methods[0] != http.MethodPost {
					t.Errorf("method %s, want POST", s.methods[0])
				}
			}},
		{name: "method and headers arrive", statuses: []int{200},
			reloader: HTTPReloader{Method: http.MethodPut, Headers: map[string]string{
				"Authorization": "Bearer tok-123456", "X-Scope": "edge", "Host": "prometheus.internal",
			}},
			wantStatus: 200, wantCalls: 1,
			check: func(t *testing.T, s *reloadTestServer, _ ReloadResult) {
				h := s.headers[0]
				if s.methods[0] != http.MethodPut || h.Get("Authorization") != "Bearer tok-123456" ||
					h.Get("X-Scope") != "edge" || s.hosts[0] != "prometheus.internal" {
					t.Errorf("got %s %v host %s", s.methods[0], h, s.hosts[0])
				}
			}},
		{name: "detail never holds header values", statuses: []int{500}, body: "denied for $AUTH (edge)",
			reloader:   HTTPReloader{Headers: map[string]string{"Authorization": "Bearer s3cr3t-token", "X-Scope": "edge"}},
			wantStatus: 500, wantCalls: 1,
			check: func(t *testing.T, _ *reloadTestServer, res ReloadResult) {
				for _, secret := range []string{"s3cr3t-token", "edge"} {
					if strings.Contains(res.Detail, secret) {
						t.Errorf("detail %q holds the header value %q", res.Detail, secret)
					}
				}
				if !strings.HasPrefix(res.Detail, "denied for") {
					t.Errorf("detail %q lost the body", res.Detail)
				}
			}},
		{name: "detail is cut at 512 bytes", statuses: []int{500}, body: strings.Repeat("x", 100<<10),
			wantStatus: 500, wantCalls: 1,
			check: func(t *testing.T, _ *reloadTestServer, res ReloadResult) {
				if len(res.Detail) != 512 {
					t.Errorf("detail is %d bytes, want 512", len(res.Detail))
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &reloadTestServer{statuses: tt.statuses, body: tt.body}
			srv := httptest.NewServer(s)
			defer srv.Close()
			r := tt.reloader
			r.URL = srv.URL + "/-/reload"
			r.Backoff = 10 * time.Millisecond
			res := r.Reload(context.Background())
			if res.Status != tt.wantStatus || s.reloadTestCalls() != tt.wantCalls || res.Attempts != tt.wantCalls {
				t.Errorf("status %d after %d attempts, %d calls served; want %d after %d",
					res.Status, res.Attempts, s.reloadTestCalls(), tt.wantStatus, tt.wantCalls)
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

func TestHTTPReloaderNoResponse(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	hangCalls := 0
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hangCalls++
		mu.Unlock()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer hang.Close()
	defer close(release)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String() + "/-/reload"
	_ = ln.Close()

	tests := []struct {
		name         string
		reloader     HTTPReloader
		wantAttempts int
		wantDetail   string
	}{
		{name: "hanging server times out", reloader: HTTPReloader{URL: hang.URL, Timeout: 200 * time.Millisecond},
			wantAttempts: 1, wantDetail: "no response within 200ms"},
		{name: "hanging server retried", reloader: HTTPReloader{URL: hang.URL, Timeout: 100 * time.Millisecond, Retries: 1},
			wantAttempts: 2, wantDetail: "no response within 100ms"},
		{name: "connection refused is retried", reloader: HTTPReloader{URL: refused, Retries: 2},
			wantAttempts: 3, wantDetail: "refused"},
		{name: "bad URL", reloader: HTTPReloader{URL: "http://[::1"}, wantAttempts: 1, wantDetail: "bad request"},
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
	mu.Lock()
	defer mu.Unlock()
	// A request given up on before the server read it is not counted, so
	// only the bounds are sure on a busy machine.
	if hangCalls < 1 || hangCalls > 3 {
		t.Errorf("hanging server got %d calls, want 1 to 3", hangCalls)
	}
}

func TestHTTPReloaderContext(t *testing.T) {
	t.Run("cancelled during a request stops retries", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var mu sync.Mutex
		calls := 0
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			calls++
			mu.Unlock()
			cancel()
			w.WriteHeader(http.StatusServiceUnavailable)
		}))
		defer srv.Close()
		r := HTTPReloader{URL: srv.URL, Retries: 50, Backoff: 50 * time.Millisecond}
		res := r.Reload(ctx)
		mu.Lock()
		defer mu.Unlock()
		if calls != 1 || res.Attempts != 1 {
			t.Errorf("%d calls, %d attempts after cancel; want 1", calls, res.Attempts)
		}
	})
	t.Run("deadline during backoff stops retries", func(t *testing.T) {
		s := &reloadTestServer{statuses: []int{503}}
		srv := httptest.NewServer(s)
		defer srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		r := HTTPReloader{URL: srv.URL, Retries: 5, Backoff: time.Minute}
		start := time.Now()
		res := r.Reload(ctx)
		if elapsed := time.Since(start); elapsed > 5*time.Second {
			t.Errorf("took %s, want it to end with the deadline", elapsed)
		}
		if res.Status != 503 || res.Attempts != 1 || s.reloadTestCalls() != 1 || !strings.Contains(res.Detail, "run deadline reached") {
			t.Errorf("got %+v after %d calls; want the 503 of the only attempt and the deadline named", res, s.reloadTestCalls())
		}
	})
	t.Run("already cancelled", func(t *testing.T) {
		s := &reloadTestServer{statuses: []int{200}}
		srv := httptest.NewServer(s)
		defer srv.Close()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		r := HTTPReloader{URL: srv.URL, Retries: 5}
		res := r.Reload(ctx)
		if res.Status != 0 || res.Attempts != 1 || s.reloadTestCalls() != 0 || !strings.Contains(res.Detail, "run cancelled") {
			t.Errorf("got %+v after %d calls; want status 0, no call", res, s.reloadTestCalls())
		}
	})
}

func TestCommandReloader(t *testing.T) {
	for _, bin := range []string{"true", "false", "sh", "sleep"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not found: %v", bin, err)
		}
	}
	tests := []struct {
		name       string
		argv       []string
		timeout    time.Duration
		wantStatus int
		wantDetail []string
		// killPid reads the pid of a background process from the detail,
		// to end it after the test.
		killPid bool
	}{
		{name: "exit 0", argv: []string{"true"}, wantStatus: 200},
		{name: "exit 1", argv: []string{"false"}, wantStatus: 500, wantDetail: []string{"exit status 1"}},
		{name: "output captured", argv: []string{"sh", "-c", "echo reloading; echo 'bad config line 3' >&2; exit 3"},
			wantStatus: 500, wantDetail: []string{"reloading", "bad config line 3", "exit status 3"}},
		{name: "output of a success", argv: []string{"sh", "-c", "echo done"}, wantStatus: 200, wantDetail: []string{"done"}},
		{name: "killed by a signal", argv: []string{"sh", "-c", "kill -9 $$"}, wantStatus: 500, wantDetail: []string{"killed"}},
		{name: "timeout", argv: []string{"sleep", "10"}, timeout: 300 * time.Millisecond, wantStatus: 0,
			wantDetail: []string{"no exit within 300ms"}},
		{name: "timeout kills the whole group", argv: []string{"sh", "-c", "sleep 20 & echo $!; sleep 20"},
			timeout: 300 * time.Millisecond, wantStatus: 0, wantDetail: []string{"no exit within"}, killPid: true},
		{name: "background grandchild holding stdout", argv: []string{"sh", "-c", "sleep 20 & echo $!"},
			wantStatus: 200, killPid: true},
		{name: "missing binary", argv: []string{"/nonexistent/reload-me"}, wantStatus: 0,
			wantDetail: []string{"cannot start /nonexistent/reload-me"}},
		{name: "not in PATH", argv: []string{"no-such-reload-command-here"}, wantStatus: 0,
			wantDetail: []string{"cannot start", "not found"}},
		{name: "empty argv", argv: nil, wantStatus: 0, wantDetail: []string{"empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := CommandReloader{Argv: tt.argv, Timeout: tt.timeout}
			start := time.Now()
			res := r.Reload(context.Background())
			elapsed := time.Since(start)
			if tt.killPid {
				fields := strings.Fields(res.Detail)
				pid, err := strconv.Atoi(fields[len(fields)-1])
				switch {
				case err != nil:
					t.Errorf("no pid in detail %q", res.Detail)
				case tt.wantStatus == 0:
					// The group kill must have ended the background process
					// too; SIGKILL takes effect when the kernel gets to it.
					deadline := time.Now().Add(3 * time.Second)
					for reloadTestAlive(pid) && time.Now().Before(deadline) {
						time.Sleep(20 * time.Millisecond)
					}
					if reloadTestAlive(pid) {
						t.Errorf("background process %d survived the timeout", pid)
						_ = syscall.Kill(pid, syscall.SIGKILL)
					}
				default:
					if !reloadTestAlive(pid) {
						t.Errorf("background process %d is gone; the test proves nothing", pid)
					}
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			if elapsed > 5*time.Second {
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

// reloadTestAlive reports whether process pid runs (and is not a zombie
// waiting to be reaped).
func reloadTestAlive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	_, rest, ok := strings.Cut(string(stat), ") ")
	return ok && !strings.HasPrefix(rest, "Z") && !strings.HasPrefix(rest, "X")
}

func TestCommandReloaderContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	r := CommandReloader{Argv: []string{"sleep", "10"}, Timeout: time.Minute}
	start := time.Now()
	res := r.Reload(ctx)
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("took %s, want it to end with the run deadline", elapsed)
	}
	if res.Status != 0 || !strings.Contains(res.Detail, "run deadline reached") {
		t.Errorf("got %+v, want status 0 naming the run deadline", res)
	}
}

func TestCommandReloaderOutputLimit(t *testing.T) {
	r := CommandReloader{Argv: []string{"sh", "-c", "yes butler | head -c 1000000"}}
	res := r.Reload(context.Background())
	if res.Status != 200 || len(res.Detail) > 512 || !strings.HasPrefix(res.Detail, "butler") {
		t.Errorf("status %d, detail of %d bytes; want 200 and at most 512 bytes", res.Status, len(res.Detail))
	}
}
