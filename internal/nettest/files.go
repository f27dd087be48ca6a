package nettest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
)

// Files is a test server of files that a test may change between requests:
// a request for a path gets the body set for it, one for any other path 404.
// Log holds every request it got.
type Files struct {
	URL string
	Log Recorder

	srv   *httptest.Server
	mu    sync.Mutex
	files map[string]string
}

// NewFiles starts a Files server that serves files (path to body). Each
// handler of guards, in order, gets a request before the files do and hands
// it on (a server that fails or hangs on some paths). It is closed when the
// test ends.
func NewFiles(t testing.TB, files map[string]string, guards ...func(next http.Handler) http.Handler) *Files {
	t.Helper()
	f := &Files{files: map[string]string{}}
	for path, body := range files {
		f.files[path] = body
	}
	var h http.Handler = http.HandlerFunc(f.serve)
	for _, guard := range slices.Backward(guards) {
		h = guard(h)
	}
	f.srv = httptest.NewServer(f.Log.Wrap(h))
	t.Cleanup(f.srv.Close)
	f.URL = f.srv.URL
	return f
}

// Close stops the server before the test ends: from then on a connection to
// URL is refused.
func (f *Files) Close() { f.srv.Close() }

func (f *Files) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	body, ok := f.files[r.URL.Path]
	f.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	fmt.Fprint(w, body)
}

// Set serves body at path from now on.
func (f *Files) Set(path, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.files[path] = body
}

// Get returns what path serves, "" when it is not found.
func (f *Files) Get(path string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.files[path]
}

// Remove makes path 404 from now on.
func (f *Files) Remove(path string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.files, path)
}
