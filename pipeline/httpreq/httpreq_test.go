package httpreq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/butler-sre/butler/internal/nettest"
)

func TestNew(t *testing.T) {
	tests := []struct {
		name       string
		headers    map[string]string
		wantHost   string
		wantHeader http.Header
	}{
		{name: "no headers", wantHost: "example.com", wantHeader: http.Header{}},
		{name: "headers set as given", headers: map[string]string{"Authorization": "Bearer tok", "x-scope": "edge"},
			wantHost: "example.com", wantHeader: http.Header{"Authorization": {"Bearer tok"}, "X-Scope": {"edge"}}},
		{name: "Host header sets the host", headers: map[string]string{"Host": "prometheus.internal", "X-Scope": "edge"},
			wantHost: "prometheus.internal", wantHeader: http.Header{"X-Scope": {"edge"}}},
		{name: "host header of any case", headers: map[string]string{"host": "alertmanager.internal"},
			wantHost: "alertmanager.internal", wantHeader: http.Header{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := New(context.Background(), http.MethodPost, "http://example.com/-/reload", strings.NewReader("body"), tt.headers)
			if err != nil {
				t.Fatal(err)
			}
			if req.Method != http.MethodPost || req.URL.String() != "http://example.com/-/reload" {
				t.Errorf("request %s %s", req.Method, req.URL)
			}
			if req.Host != tt.wantHost {
				t.Errorf("Host %q, want %q", req.Host, tt.wantHost)
			}
			if len(req.Header) != len(tt.wantHeader) {
				t.Errorf("headers %v, want %v", req.Header, tt.wantHeader)
			}
			for k, v := range tt.wantHeader {
				if got := req.Header.Values(k); len(got) != 1 || got[0] != v[0] {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
		})
	}
	t.Run("bad url", func(t *testing.T) {
		if _, err := New(context.Background(), http.MethodGet, "http://[::1", nil, nil); err == nil {
			t.Error("no error for a malformed URL")
		}
	})
}

// seenServer is a test server that keeps what see says of each request it
// receives.
type seenServer struct {
	*httptest.Server
	seen nettest.Log[string]
}

// newSeenServer starts a seenServer that answers with h, closed when the
// test ends.
func newSeenServer(t *testing.T, see func(*http.Request) string, h http.HandlerFunc) *seenServer {
	s := &seenServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.seen.Add(see(r))
		h(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func TestNewHostReachesServer(t *testing.T) {
	srv := newSeenServer(t, func(r *http.Request) string { return r.Host }, func(http.ResponseWriter, *http.Request) {})
	req, err := New(context.Background(), http.MethodGet, srv.URL, nil, map[string]string{"Host": "prometheus.internal"})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := Client(nil).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if hosts := srv.seen.Take(); len(hosts) != 1 || hosts[0] != "prometheus.internal" {
		t.Errorf("server saw hosts %q, want one prometheus.internal", hosts)
	}
}

func TestClient(t *testing.T) {
	srv := newSeenServer(t, func(r *http.Request) string { return r.URL.Path }, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/moved" {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
			return
		}
		_, _ = io.WriteString(w, "arrived")
	})

	t.Run("nil does not follow a redirect", func(t *testing.T) {
		srv.seen.Take()
		resp, err := Client(nil).Get(srv.URL + "/moved")
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/elsewhere" {
			t.Errorf("got %d Location %q, want the 302 itself", resp.StatusCode, resp.Header.Get("Location"))
		}
		if paths := srv.seen.Take(); len(paths) != 1 || paths[0] != "/moved" {
			t.Errorf("server saw %q, want only /moved", paths)
		}
	})
	t.Run("a given client is used as is", func(t *testing.T) {
		c := &http.Client{}
		if got := Client(c); got != c {
			t.Fatal("Client(c) is not c")
		}
	})
}

func TestUnwrap(t *testing.T) {
	inner := errors.New("connection refused")
	tests := []struct {
		name string
		err  error
		want error
	}{
		{name: "url error", err: &url.Error{Op: "Post", URL: "http://u:pw@h/?token=secret", Err: inner}, want: inner},
		{name: "wrapped url error", err: fmt.Errorf("reload: %w", &url.Error{Op: "Post", URL: "http://h/", Err: inner}), want: inner},
		{name: "other error kept", err: inner, want: inner},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Unwrap(tt.err); got != tt.want {
				t.Errorf("Unwrap(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
	t.Run("real client error holds no URL", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		_ = ln.Close()
		_, err = Client(nil).Get("http://" + addr + "/hook?token=tok-secret-42")
		if err == nil {
			t.Fatal("no error from a closed port")
		}
		if msg := Unwrap(err).Error(); strings.Contains(msg, "tok-secret-42") {
			t.Errorf("Unwrap(err) = %q still quotes the URL", msg)
		}
	})
}
