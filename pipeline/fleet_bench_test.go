package pipeline

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/butler-sre/butler/internal/envtest"
	"github.com/butler-sre/butler/pipeline/config"
)

// BenchmarkFleet simulates a fleet against one store: 200 hosts, each with
// its own state directory and dest, syncing 20 files of 4 KiB with a splay
// of one second, round after round, once with a store that answers every
// request with the body and once with one that honours If-None-Match. It
// reports what the store saw in a round where nothing changed: the peak
// requests per second (in 100 ms windows) and the body bytes sent. README's
// Performance section extrapolates it to 10,000 hosts. `make bench-fleet`.
func BenchmarkFleet(b *testing.B) {
	for _, conditional := range []bool{false, true} {
		name := "plain"
		if conditional {
			name = "conditional"
		}
		b.Run(name, func(b *testing.B) {
			const hosts, files, size = 200, 20, 4096
			const splay = time.Second
			store := newETagStore(b)
			store.ignore = !conditional
			for i := range files {
				store.set(fmt.Sprintf("/f%d.yml", i), fmt.Sprintf("k%d: %s\n", i, strings.Repeat("v", size-8)))
			}
			var mu sync.Mutex
			windows := map[int64]int{}
			var bytesSent atomic.Int64
			start := time.Now()
			counted := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				windows[time.Since(start).Milliseconds()/100]++
				mu.Unlock()
				rec := &countingWriter{ResponseWriter: w}
				store.serve(rec, r)
				bytesSent.Add(rec.n)
			}))
			defer counted.Close()
			dir := b.TempDir()
			cfgs := make([]string, hosts)
			for h := range hosts {
				var text strings.Builder
				fmt.Fprintf(&text, "[butler]\nstate_dir = %q\ntextfile = \"\"\nschemes = [\"http\"]\n[managers.m]\ndest = %q\n",
					filepath.Join(dir, fmt.Sprint(h), "state"), filepath.Join(dir, fmt.Sprint(h), "dest"))
				for i := range files {
					fmt.Fprintf(&text, "[[managers.m.files]]\nsource = \"%s/f%d.yml\"\ntemplate = false\n", counted.URL, i)
				}
				cfgs[h] = text.String()
			}
			round := func() {
				var wg sync.WaitGroup
				for h := range hosts {
					cfg := parseFleet(b, cfgs[h])
					wg.Go(func() {
						_, err := Run(context.Background(), cfg, Options{
							Splay:  splay,
							Jitter: func(max time.Duration) time.Duration { return time.Duration(rand.Int64N(int64(max))) },
						})
						if err != nil {
							b.Error(err)
						}
					})
				}
				wg.Wait()
			}
			round() // the first round writes everything
			b.ResetTimer()
			var peak, sent int64
			for b.Loop() {
				mu.Lock()
				clear(windows)
				mu.Unlock()
				bytesSent.Store(0)
				start = time.Now()
				round()
				mu.Lock()
				for _, n := range windows {
					peak = max(peak, int64(n)*10)
				}
				mu.Unlock()
				sent = bytesSent.Load()
			}
			b.ReportMetric(float64(peak), "peak-req/s")
			b.ReportMetric(float64(sent), "body-bytes/round")
			b.ReportMetric(float64(hosts*files), "requests/round")
		})
	}
}

func parseFleet(b *testing.B, text string) *config.Config {
	b.Helper()
	cfg, err := config.Parse([]byte(text), "butler.toml", "/", envtest.Lookup(nil))
	if err != nil {
		b.Fatal(err)
	}
	return cfg
}

// countingWriter counts the body bytes a handler writes.
type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}
