package main

// Runs at once: cron and a timer, or an operator's hand run, may start
// several syncs of one configuration together. The lock lets exactly one
// through; the others exit 3 at once and change nothing.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

const (
	concurrentRounds = 20
	concurrentRuns   = 10 // started together in each round
)

func TestConcurrentRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("starts butler 200 times; skipped with -short")
	}
	dir := t.TempDir()
	dest := filepath.Join(dir, "dest")
	stateDir := filepath.Join(dir, "state")
	prom := filepath.Join(dir, "textfile", "butler.prom")

	var (
		mu      sync.Mutex
		round   int
		fetches int
		reloads int
		// exited is closed when every run of the round but the one holding
		// the lock has ended; the first fetch of the round waits for it, so
		// the holder is inside the lock while all the others try it.
		exited chan struct{}
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if r.URL.Path == "/reload" {
			reloads++
			mu.Unlock()
			return
		}
		fetches++
		first, wait, v := fetches == 1, exited, round
		mu.Unlock()
		if first {
			select {
			case <-wait:
			case <-time.After(time.Minute):
				http.Error(w, "the other runs never ended", http.StatusInternalServerError)
				return
			}
		}
		fmt.Fprintf(w, "round: %d\n", v)
	}))
	defer srv.Close()
	config := filepath.Join(dir, "butler.toml")
	text := fmt.Sprintf("[butler]\nstate_dir = %q\ntextfile = %q\n\n[managers.web]\ndest = %q\n\n"+
		"[[managers.web.files]]\nsource = %q\npath = \"web.yml\"\n\n[managers.web.reload]\nurl = %q\n",
		stateDir, prom, dest, srv.URL+"/web.yml", srv.URL+"/reload")
	if err := os.WriteFile(config, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}

	for r := 1; r <= concurrentRounds && !t.Failed(); r++ {
		mu.Lock()
		round, fetches, reloads = r, 0, 0
		exited = make(chan struct{})
		mu.Unlock()

		cmds := make([]*exec.Cmd, concurrentRuns)
		outs := make([]*bytes.Buffer, concurrentRuns)
		for i := range cmds {
			cmds[i] = exec.Command(butlerBin, "--config", config, "sync")
			outs[i] = &bytes.Buffer{}
			cmds[i].Stdout, cmds[i].Stderr = outs[i], outs[i]
		}
		for _, c := range cmds {
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
		}
		codes := make(chan int, concurrentRuns)
		var wg sync.WaitGroup
		for _, c := range cmds {
			wg.Go(func() {
				_ = c.Wait()
				codes <- c.ProcessState.ExitCode()
			})
		}
		byCode := map[int]int{}
		for range concurrentRuns - 1 {
			byCode[<-codes]++
		}
		close(exited)
		byCode[<-codes]++
		wg.Wait()

		mu.Lock()
		f, rl := fetches, reloads
		mu.Unlock()
		if byCode[0] != 1 || byCode[3] != concurrentRuns-1 || f != 1 || rl != 1 {
			t.Errorf("round %d: exit codes %v, %d fetches, %d reloads; want one run (exit 0, one fetch, one reload) and %d exits 3",
				r, byCode, f, rl, concurrentRuns-1)
			for i, out := range outs {
				t.Logf("run %d:\n%s", i, out)
			}
		}
		if data, err := os.ReadFile(filepath.Join(dest, "web.yml")); err != nil || string(data) != fmt.Sprintf("round: %d\n", r) {
			t.Errorf("round %d: dest web.yml = %q, %v", r, data, err)
		}
		if data, err := os.ReadFile(filepath.Join(stateDir, "state.json")); err != nil || !json.Valid(data) {
			t.Errorf("round %d: state.json is not valid JSON (%v)", r, err)
		}
		if v, ok := textfileValue(t, prom, "butler_run_success", nil); !ok || v != 1 {
			t.Errorf("round %d: butler_run_success = %v (present %v), want 1", r, v, ok)
		}
	}
	t.Logf("%d rounds of %d runs at once", concurrentRounds, concurrentRuns)
}
