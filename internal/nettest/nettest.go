// Package nettest holds the network helpers of the tests of the packages
// that talk to servers (fetch and its s3, gcs and git clients, reload): an
// address nothing listens on, a log of the requests a test server saw, and
// servers that stop or overrun in the ways a client must survive. Every
// helper fails the test on an error it did not expect. Tests only.
package nettest

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
)

// ClosedAddr returns a host:port on 127.0.0.1 that nothing listens on: a
// connection to it is refused.
func ClosedAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// Request is what a test server saw of one request.
type Request struct {
	Method string
	// Host is the host the request went to.
	Host string
	// Path is the decoded path, EscapedPath the path as it was sent.
	Path, EscapedPath string
	Query             url.Values
	Header            http.Header
}

// Recorder is a test server's log of requests. The zero value is ready.
type Recorder struct {
	mu   sync.Mutex
	reqs []Request
}

// Wrap records each request, then hands it to next.
func (r *Recorder) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.Record(req)
		next.ServeHTTP(w, req)
	})
}

// Record adds req, as a server got it or as a client sends it, to the log.
func (r *Recorder) Record(req *http.Request) {
	host := req.URL.Host
	if host == "" {
		host = req.Host
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, Request{
		Method: req.Method, Host: host, Path: req.URL.Path, EscapedPath: req.URL.EscapedPath(),
		Query: req.URL.Query(), Header: req.Header.Clone(),
	})
}

// All returns the requests so far, oldest first.
func (r *Recorder) All() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.reqs...)
}

// Count is how many requests there were so far.
func (r *Recorder) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reqs)
}

// Last returns the latest request; the test fails when there was none.
func (r *Recorder) Last(t testing.TB) Request {
	t.Helper()
	all := r.All()
	if len(all) == 0 {
		t.Fatal("the server saw no request")
	}
	return all[len(all)-1]
}

// Unannounced starts a server that answers every request with the header
// key: value and a body of 2*size bytes ("y") sent in four flushed parts,
// without a Content-Length. It is closed when the test ends.
func Unannounced(t testing.TB, size int, key, value string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(key, value)
		for range 4 {
			_, _ = w.Write(bytes.Repeat([]byte("y"), size/2))
			w.(http.Flusher).Flush()
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// CanceledInBody starts a server that announces a body of 100 bytes,
// sends 4 and then waits for the client to go. It returns the server's URL
// and a context that is canceled once the server has sent those 4 bytes.
// The server is closed when the test ends.
func CanceledInBody(t testing.TB) (string, context.Context) {
	t.Helper()
	started := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		_, _ = io.WriteString(w, "half")
		w.(http.Flusher).Flush()
		close(started)
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		<-started
		cancel()
	}()
	return srv.URL, ctx
}

// Log is a list that a test server adds to as requests come and a test
// takes from, safe for concurrent use. The zero value is ready.
type Log[T any] struct {
	mu    sync.Mutex
	items []T
}

// Add appends v.
func (l *Log[T]) Add(v T) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.items = append(l.items, v)
}

// Take returns what was added since the last Take, oldest first, and
// forgets it.
func (l *Log[T]) Take() []T {
	l.mu.Lock()
	defer l.mu.Unlock()
	items := l.items
	l.items = nil
	return items
}
