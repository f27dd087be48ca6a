package pipeline

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// etagStore is an HTTP store that answers with an ETag and honours
// If-None-Match, like S3 or a CDN, and counts what it sends.
type etagStore struct {
	mu       sync.Mutex
	files    map[string]string
	ignore   bool // answer 200 whatever the condition
	rotate   bool // a new ETag every response, for the same bytes
	always   bool // answer 304 to everything, even without a condition
	n        int  // responses so far (for rotate)
	requests int
	notMod   int
	bytes    int
	uncond   int // requests without a condition
	srv      *httptest.Server
}

func newETagStore(t testing.TB) *etagStore {
	s := &etagStore{files: map[string]string{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *etagStore) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	s.n++
	body, ok := s.files[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	sum := sha256.Sum256([]byte(body))
	etag := `"` + hex.EncodeToString(sum[:8]) + `"`
	if s.rotate {
		etag = fmt.Sprintf(`"v%d"`, s.n)
	}
	cond := r.Header.Get("If-None-Match")
	if cond == "" {
		s.uncond++
	}
	if s.always || (!s.ignore && cond == etag) {
		s.notMod++
		w.Header().Set("ETag", etag)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("ETag", etag)
	s.bytes += len(body)
	fmt.Fprint(w, body)
}

func (s *etagStore) set(path, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[path] = body
}

// take returns the counts since the last take: requests, 304s, body bytes,
// requests without a condition.
func (s *etagStore) take() (requests, notMod, bytes, uncond int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	requests, notMod, bytes, uncond = s.requests, s.notMod, s.bytes, s.uncond
	s.requests, s.notMod, s.bytes, s.uncond = 0, 0, 0, 0
	return
}

// cacheEnv is a run environment whose two files come from an etagStore.
func cacheEnv(t *testing.T, checksum string) (*runEnv, *etagStore, string) {
	e := newRunEnv(t)
	s := newETagStore(t)
	s.set("/prometheus.yml", "global:\n  scrape_interval: {{interval}}\n")
	s.set("/rules/a.yml", "groups: []\n")
	text := e.config("")
	text = strings.Replace(text, e.remote.url("/prometheus.yml"), s.srv.URL+"/prometheus.yml", 1)
	text = strings.Replace(text, e.remote.url("/rules/a.yml"), s.srv.URL+"/rules/a.yml"+checksum, 1)
	return e, s, text
}

func TestRunConditionalFetches(t *testing.T) {
	e, s, text := cacheEnv(t, "")
	cfg := e.parse(text)
	_, err := e.run(cfg, nil)
	wantNoErr(t, err)
	if req, nm, bytes, _ := s.take(); req != 2 || nm != 0 || bytes == 0 {
		t.Fatalf("first run: %d requests, %d 304s, %d bytes", req, nm, bytes)
	}
	e.reload.takeCalls()
	e.logs.Reset()

	// Nothing changed: two small requests, no body, nothing rendered.
	res, err := e.run(cfg, nil)
	wantNoErr(t, err)
	if req, nm, bytes, uncond := s.take(); req != 2 || nm != 2 || bytes != 0 || uncond != 0 {
		t.Errorf("no-change run: %d requests, %d 304s, %d body bytes, %d unconditional; want 2, 2, 0, 0", req, nm, bytes, uncond)
	}
	if res.Managers[0].Outcome != "unchanged" || e.reload.takeCalls() != 0 {
		t.Errorf("outcome %q, reloads %d", res.Managers[0].Outcome, e.reload.takeCalls())
	}
	if strings.Contains(e.logs.String(), "rendered again") {
		t.Errorf("rendered again though nothing changed:\n%s", e.logs.String())
	}
	for _, f := range []string{"prometheus.yml", "rules/a.yml"} {
		if v := e.metric("butler_remote_status", "manager", "prom", "file", f); v != 304 {
			t.Errorf("%s: butler_remote_status = %v, want 304", f, v)
		}
		if v := e.metric("butler_remote_not_modified_total", "manager", "prom", "file", f); v != 1 {
			t.Errorf("%s: butler_remote_not_modified_total = %v, want 1", f, v)
		}
	}
	firstBytes := e.metric("butler_remote_bytes_total", "manager", "prom", "file", "rules/a.yml")

	// The store changes: a body, applied and reloaded.
	s.set("/rules/a.yml", "groups: [changed]\n")
	res, err = e.run(cfg, nil)
	wantNoErr(t, err)
	if res.Managers[0].Outcome != "applied" || e.read("rules/a.yml") != "groups: [changed]\n" || e.reload.takeCalls() != 1 {
		t.Errorf("changed store: outcome %q, file %q", res.Managers[0].Outcome, e.read("rules/a.yml"))
	}
	if got := e.metric("butler_remote_bytes_total", "manager", "prom", "file", "rules/a.yml"); got != firstBytes+float64(len("groups: [changed]\n")) {
		t.Errorf("butler_remote_bytes_total = %v, want %v", got, firstBytes+18)
	}

	// --force fetches unconditionally.
	s.take()
	_, err = e.run(cfg, func(o *Options) { o.Force = true })
	wantNoErr(t, err)
	if _, nm, _, uncond := s.take(); nm != 0 || uncond != 2 {
		t.Errorf("--force: %d 304s, %d unconditional requests; want 0 and 2", nm, uncond)
	}
}

func TestRunStoresThatIgnoreConditions(t *testing.T) {
	for _, mode := range []string{"ignores the condition", "new ETag for the same bytes"} {
		t.Run(mode, func(t *testing.T) {
			e, s, text := cacheEnv(t, "")
			cfg := e.parse(text)
			_, err := e.run(cfg, nil)
			wantNoErr(t, err)
			s.mu.Lock()
			s.ignore, s.rotate = mode == "ignores the condition", mode == "new ETag for the same bytes"
			s.mu.Unlock()
			e.reload.takeCalls()
			for range 2 {
				res, err := e.run(cfg, nil)
				wantNoErr(t, err)
				if res.Managers[0].Outcome != "unchanged" || e.reload.takeCalls() != 0 {
					t.Errorf("outcome %q with the same bytes", res.Managers[0].Outcome)
				}
			}
			if _, nm, bytes, _ := s.take(); nm != 0 || bytes == 0 {
				t.Errorf("%d 304s, %d bytes: the store was to send the body", nm, bytes)
			}
		})
	}
}

// TestRunNotModifiedWithoutCondition: a store that answers 304 to a request
// without a condition gives no content: that is a failed fetch, never an
// empty file.
func TestRunNotModifiedWithoutCondition(t *testing.T) {
	e, s, text := cacheEnv(t, "")
	s.always = true
	res, err := e.run(e.parse(text), nil)
	wantFailedIn(t, res, err, PhaseFetch, "304 Not Modified to a request without a condition")
	if _, err := os.Stat(filepath.Join(e.dest, "rules", "a.yml")); !os.IsNotExist(err) {
		t.Error("a file was written from a 304")
	}
}

// cacheFiles lists the body files of the prom manager's cache.
func cacheFiles(t *testing.T, e *runEnv) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(e.stateDir, "cache", "prom", "*"))
	if err != nil {
		t.Fatal(err)
	}
	var bodies []string
	for _, n := range names {
		if filepath.Base(n) != "index.json" {
			bodies = append(bodies, n)
		}
	}
	return bodies
}

// TestRunCacheSpoiled: a cache entry deleted, truncated or tampered with
// costs one plain fetch when its body is needed (here: a hand edit to
// repair), and the file put back is the store's, never the spoiled copy.
func TestRunCacheSpoiled(t *testing.T) {
	for _, spoil := range []string{"deleted", "truncated", "tampered", "index gone"} {
		t.Run(spoil, func(t *testing.T) {
			e, s, text := cacheEnv(t, "")
			cfg := e.parse(text)
			_, err := e.run(cfg, nil)
			wantNoErr(t, err)
			bodies := cacheFiles(t, e)
			if len(bodies) != 2 {
				t.Fatalf("cache holds %v, want two bodies", bodies)
			}
			for _, b := range bodies {
				switch spoil {
				case "deleted":
					err = os.Remove(b)
				case "truncated":
					err = os.Truncate(b, 3)
				case "tampered":
					err = os.WriteFile(b, []byte("groups: [evil]\n"), 0o600)
				case "index gone":
					err = os.Remove(filepath.Join(e.stateDir, "cache", "prom", "index.json"))
				}
				if err != nil && !os.IsNotExist(err) {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(filepath.Join(e.dest, "rules", "a.yml"), []byte("hand edit\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			s.take()
			_, err = e.run(cfg, nil)
			wantNoErr(t, err)
			if got := e.read("rules/a.yml"); got != "groups: []\n" {
				t.Errorf("repaired rules/a.yml = %q, want the store's", got)
			}
			if _, _, _, uncond := s.take(); uncond == 0 {
				t.Error("no plain fetch replaced the spoiled entry")
			}
		})
	}
}

// TestRunChecksumWithNotModified: ?checksum= holds for the body actually
// used: a cached body that does not match fails the fetch even on a 304.
func TestRunChecksumWithNotModified(t *testing.T) {
	sum := sha256.Sum256([]byte("groups: []\n"))
	e, s, text := cacheEnv(t, "?checksum=sha256:"+hex.EncodeToString(sum[:]))
	cfg := e.parse(text)
	_, err := e.run(cfg, nil)
	wantNoErr(t, err)
	_, err = e.run(cfg, nil)
	wantNoErr(t, err)
	if _, nm, _, _ := s.take(); nm == 0 {
		t.Fatal("no 304 with a checksum")
	}
	// Another body in the cache, with an index that vouches for it.
	idxPath := filepath.Join(e.stateDir, "cache", "prom", "index.json")
	raw, err := os.ReadFile(idxPath)
	if err != nil {
		t.Fatal(err)
	}
	var idx struct {
		Version int                       `json:"version"`
		Entries map[string]map[string]any `json:"entries"`
	}
	if err := json.Unmarshal(raw, &idx); err != nil {
		t.Fatal(err)
	}
	other := []byte("groups: [other]\n")
	osum := sha256.Sum256(other)
	for key, ent := range idx.Entries {
		if ent["size"].(float64) == float64(len("groups: []\n")) {
			if err := os.WriteFile(filepath.Join(e.stateDir, "cache", "prom", key), other, 0o600); err != nil {
				t.Fatal(err)
			}
			ent["size"], ent["sha256"] = len(other), hex.EncodeToString(osum[:])
		}
	}
	raw, _ = json.Marshal(idx)
	if err := os.WriteFile(idxPath, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := e.run(cfg, nil)
	wantFailedIn(t, res, err, PhaseFetch, "checksum mismatch")
	if got := e.read("rules/a.yml"); got != "groups: []\n" {
		t.Errorf("rules/a.yml = %q: the mismatched body was used", got)
	}
}

// TestRunDriftRepairWithStat: the stat shortcut never hides a hand edit:
// same size in the same second, the mtime put back, a replaced inode.
func TestRunDriftRepairWithStat(t *testing.T) {
	edits := map[string]func(t *testing.T, p string){
		"same size, mtime put back": func(t *testing.T, p string) {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte("groups: [x]\n"[:fi.Size()]), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
				t.Fatal(err)
			}
		},
		"replaced inode, same content size": func(t *testing.T, p string) {
			tmp := p + ".new"
			if err := os.WriteFile(tmp, []byte("groups: {}\n\n"[:len("groups: []\n")]), 0o644); err != nil {
				t.Fatal(err)
			}
			fi, _ := os.Stat(p)
			_ = os.Chtimes(tmp, fi.ModTime(), fi.ModTime())
			if err := os.Rename(tmp, p); err != nil {
				t.Fatal(err)
			}
		},
		"mode changed": func(t *testing.T, p string) {
			if err := os.Chmod(p, 0o600); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, edit := range edits {
		t.Run(name, func(t *testing.T) {
			e, _, text := cacheEnv(t, "")
			cfg := e.parse(text)
			_, err := e.run(cfg, nil)
			wantNoErr(t, err)
			_, err = e.run(cfg, nil) // known from now on
			wantNoErr(t, err)
			p := filepath.Join(e.dest, "rules", "a.yml")
			edit(t, p)
			res, err := e.run(cfg, nil)
			wantNoErr(t, err)
			fi, _ := os.Stat(p)
			if got := e.read("rules/a.yml"); got != "groups: []\n" || fi.Mode().Perm() != 0o644 {
				t.Errorf("after the edit: %q %v, want the store's content, 0644", got, fi.Mode().Perm())
			}
			if res.Managers[0].Outcome != "applied" {
				t.Errorf("outcome %q, want applied (the edit repaired)", res.Managers[0].Outcome)
			}
		})
	}
}

// TestRunConditionalS3: against gofakes3, the second run's GetObject carries
// If-None-Match and gets a 304: the cached body is used, nothing moves.
func TestRunConditionalS3(t *testing.T) {
	backend := s3mem.New()
	var mu sync.Mutex
	var conditional, notModified int
	fake := gofakes3.New(backend).Server()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		fake.ServeHTTP(rec, r)
		mu.Lock()
		defer mu.Unlock()
		if r.Header.Get("If-None-Match") != "" {
			conditional++
		}
		if rec.status == http.StatusNotModified {
			notModified++
		}
	}))
	t.Cleanup(srv.Close)
	if err := backend.CreateBucket("cfg"); err != nil {
		t.Fatal(err)
	}
	body := []byte("groups: []\n")
	if _, err := backend.PutObject("cfg", "rules/a.yml", map[string]string{}, bytes.NewReader(body), int64(len(body)), nil); err != nil {
		t.Fatal(err)
	}
	e := newRunEnv(t)
	src := "s3::" + srv.URL + "/cfg/rules/a.yml?region=us-east-1&aws_access_key_id=AKIDTEST&aws_access_key_secret=SECRETKEY1234"
	cfg := e.parse(strings.Replace(e.config(""), e.remote.url("/rules/a.yml"), src, 1))
	for range 2 {
		_, err := e.run(cfg, nil)
		wantNoErr(t, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if conditional != 1 || notModified != 1 {
		t.Errorf("conditional GetObject requests %d, 304s %d; want 1 and 1", conditional, notModified)
	}
	e.wantMetric(t, 304, "butler_remote_status", "manager", "prom", "file", "rules/a.yml")
	if e.read("rules/a.yml") != "groups: []\n" {
		t.Error("rules/a.yml not as in the bucket")
	}
}

// statusRecorder notes the status a handler answers.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// TestRunLastModifiedWithinTheSecond: a Last-Modified as recent as the
// response's Date is no validator (a second change within that second would
// keep it): the next fetch is unconditional and sees the change. An older
// one makes the fetch conditional.
func TestRunLastModifiedWithinTheSecond(t *testing.T) {
	for _, tc := range []struct {
		name        string
		age         time.Duration
		conditional bool
	}{{"same second", 0, false}, {"an hour ago", time.Hour, true}} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			body, conditional := "groups: [v1]\n", 0
			now := time.Now().UTC().Truncate(time.Second)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				defer mu.Unlock()
				if r.Header.Get("If-Modified-Since") != "" {
					conditional++
				}
				w.Header().Set("Date", now.Format(http.TimeFormat))
				w.Header().Set("Last-Modified", now.Add(-tc.age).Format(http.TimeFormat))
				fmt.Fprint(w, body)
			}))
			t.Cleanup(srv.Close)
			e := newRunEnv(t)
			cfg := e.parse(strings.Replace(e.config(""), e.remote.url("/rules/a.yml"), srv.URL+"/rules/a.yml", 1))
			_, err := e.run(cfg, nil)
			wantNoErr(t, err)
			mu.Lock()
			body = "groups: [v2]\n"
			mu.Unlock()
			_, err = e.run(cfg, nil)
			wantNoErr(t, err)
			mu.Lock()
			defer mu.Unlock()
			if got := conditional > 0; got != tc.conditional {
				t.Errorf("conditional requests: %d, want some: %v", conditional, tc.conditional)
			}
			if got := e.read("rules/a.yml"); got != "groups: [v2]\n" {
				t.Errorf("rules/a.yml = %q, want the change", got)
			}
		})
	}
}

// TestRunEnvironmentChanges: a template depends on the values of the
// environment variables it names and on which variables are set, not on the
// value of one it never names (systemd sets INVOCATION_ID anew every run).
func TestRunEnvironmentChanges(t *testing.T) {
	e, s, text := cacheEnv(t, "")
	s.set("/prometheus.yml", "global:\n  scrape_interval: {{interval}}\n# {{env.SITE}}\n")
	cfg := e.parse(text)
	withEnv := func(env ...string) func(*Options) {
		return func(o *Options) { o.Environ = env }
	}
	steps := []struct {
		name     string
		env      []string
		rendered bool
		want     string
	}{
		{"first run", []string{"SITE=a", "INVOCATION_ID=1"}, true, "# a\n"},
		{"unnamed variable changed", []string{"SITE=a", "INVOCATION_ID=2"}, false, "# a\n"},
		{"named variable changed", []string{"SITE=b", "INVOCATION_ID=3"}, true, "# b\n"},
		{"a variable is set that was not", []string{"SITE=b", "INVOCATION_ID=4", "OTHER=x"}, true, "# b\n"},
		{"same again", []string{"SITE=b", "INVOCATION_ID=5", "OTHER=x"}, false, "# b\n"},
	}
	for _, st := range steps {
		e.logs.Reset()
		_, err := e.run(cfg, withEnv(st.env...))
		wantNoErr(t, err)
		if got := strings.Contains(e.logs.String(), `msg="rendered again"`); got != st.rendered && st.name != "first run" {
			t.Errorf("%s: rendered %v, want %v\n%s", st.name, got, st.rendered, e.logs.String())
		}
		if got := e.read("prometheus.yml"); !strings.HasSuffix(got, st.want) {
			t.Errorf("%s: prometheus.yml = %q, want it to end in %q", st.name, got, st.want)
		}
	}
}
