// Command benchchange measures butler's change run: one file of -size bytes,
// served over HTTP with an ETag, changes before every run, and butler fetches,
// renders, validates, writes and reloads it. It prints the median wall time,
// CPU time and peak RSS of -runs such runs, and with -base another binary's,
// the two run in turn so that a shared machine's noise falls on both.
//
//	go run ./scripts/benchchange -butler bin/butler [-base OLD_BINARY] [-size 10485760] [-runs 10]
//
// The file is the one ../shared/bench/run.sh makes (lines "kI_J: vvv..."),
// so its no-change figures and these are of the same content.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	butler := flag.String("butler", "bin/butler", "the butler binary to measure")
	base := flag.String("base", "", "a second binary, measured in turn with the first")
	size := flag.Int("size", 10<<20, "size of the file in bytes")
	runs := flag.Int("runs", 10, "measured change runs of each binary")
	flag.Parse()

	dir, err := os.MkdirTemp("", "benchchange")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	srv := &store{body: content(*size, 0)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go func() { _ = http.Serve(ln, srv) }()
	url := "http://" + ln.Addr().String()

	bins := []string{*butler}
	if *base != "" {
		bins = append(bins, *base)
	}
	results := make([][]sample, len(bins))
	for i, bin := range bins {
		cfg := writeConfig(filepath.Join(dir, fmt.Sprint(i)), url)
		srv.set(content(*size, 1))
		for range 2 { // the first fetch, then a run that finds the cache
			if _, err := run(bin, cfg); err != nil {
				log.Fatalf("%s: %v", bin, err)
			}
		}
		bins[i] = bin + "\x00" + cfg
	}
	for r := range *runs {
		for k := range bins {
			i := (k + r) % len(bins) // in turn, each first as often
			bin, cfg, _ := strings.Cut(bins[i], "\x00")
			srv.set(content(*size, 2+r*len(bins)+i))
			s, err := run(bin, cfg)
			if err != nil {
				log.Fatalf("%s: %v", bin, err)
			}
			results[i] = append(results[i], s)
		}
	}
	fmt.Printf("== change run of one %d-byte file over HTTP, %d runs each\n", *size, *runs)
	for i, bin := range bins {
		name, _, _ := strings.Cut(bin, "\x00")
		fmt.Printf("%-24s wall %.3f s  cpu %.3f s  peak RSS %.1f MiB\n", filepath.Base(name),
			median(results[i], func(s sample) float64 { return s.wall.Seconds() }),
			median(results[i], func(s sample) float64 { return s.cpu.Seconds() }),
			median(results[i], func(s sample) float64 { return float64(s.maxRSS) / 1024 }))
	}
	if len(bins) == 2 {
		ratios := make([]float64, *runs)
		for r := range ratios {
			ratios[r] = results[0][r].wall.Seconds() / results[1][r].wall.Seconds()
		}
		slices.Sort(ratios)
		fmt.Printf("first/second wall, median of pairs: %.2fx\n", ratios[len(ratios)/2])
	}
}

// content is a YAML file of about size bytes whose last line says which
// version it is.
func content(size, version int) []byte {
	var b strings.Builder
	for i := 0; b.Len() < size-64; i++ {
		fmt.Fprintf(&b, "k0_%d: %s\n", i, strings.Repeat("v", 60))
	}
	fmt.Fprintf(&b, "version: %d\n", version)
	return []byte(b.String())
}

// store serves one file with an ETag and answers a matching If-None-Match
// with 304; any other path (the reload) gets 200.
type store struct {
	mu   sync.Mutex
	body []byte
	etag string
}

func (s *store) set(body []byte) {
	sum := sha256.Sum256(body)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body, s.etag = body, `"`+hex.EncodeToString(sum[:8])+`"`
}

func (s *store) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	body, etag := s.body, s.etag
	s.mu.Unlock()
	if r.URL.Path != "/f.yml" {
		return
	}
	w.Header().Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	_, _ = w.Write(body)
}

func writeConfig(dir, url string) string {
	cfg := filepath.Join(dir, "butler.toml")
	text := fmt.Sprintf(`[butler]
state_dir = %q
textfile = %q
schemes = ["http"]
[managers.m]
dest = %q
[[managers.m.files]]
source = "%s/f.yml"
[managers.m.reload]
url = "%s/-/reload"
`, filepath.Join(dir, "state"), filepath.Join(dir, "butler.prom"), filepath.Join(dir, "dest"), url, url)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		log.Fatal(err)
	}
	return cfg
}

// sample is what one run cost.
type sample struct {
	wall, cpu time.Duration
	maxRSS    int64 // KiB
}

// run runs one sync with an environment of PATH alone, the same every run.
func run(bin, cfg string) (sample, error) {
	cmd := exec.Command(bin, "--config", cfg, "sync")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	start := time.Now()
	out, err := cmd.CombinedOutput()
	wall := time.Since(start)
	if err != nil {
		return sample{}, fmt.Errorf("%v\n%s", err, out)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return sample{wall: wall, cpu: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), maxRSS: ru.Maxrss}, nil
}

func median(s []sample, f func(sample) float64) float64 {
	v := make([]float64, len(s))
	for i, x := range s {
		v[i] = f(x)
	}
	slices.Sort(v)
	return v[len(v)/2]
}
