package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/tools/txtar"
)

// TestBadInput runs every case of testdata/badinput against the built binary:
// bad input of any kind must give the exit code the case names and an error
// that names what it says (manager, file, phase), never a panic, and must
// lose nothing: the files the case puts in dest stay byte for byte, and the
// state stays readable.
//
// A case is a txtar archive. Its comment holds one directive a line:
//
//	exit N          the exit code (required)
//	args A B ...    butler's arguments after --config (default: sync)
//	stderr TEXT     stderr must contain TEXT (repeatable)
//	secret TEXT     TEXT must appear in no output, textfile or state file
//	changes         the files in dest may change (default: they must not)
//	runs N          run N times, checking each run (default 1)
//
// Its files: butler.toml, remote/... (served at $REMOTE), dest/... (put in
// the manager's dest before the run), state/... (put in the state directory).
// In butler.toml, $DIR, $DEST, $STATE, $TEXTFILE, $REMOTE and $RELOAD (a
// reload endpoint: $RELOAD/200, $RELOAD/500) are replaced. The remote
// answers /status/N with status N and /hang never.
func TestBadInput(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("testdata", "badinput", "*.txtar"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("no cases under testdata/badinput")
	}
	for _, p := range paths {
		name := strings.TrimSuffix(filepath.Base(p), ".txtar")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			runBadInput(t, p)
		})
	}
}

// badCase is a parsed case.
type badCase struct {
	exit    int
	args    []string
	stderr  []string
	secrets []string
	changes bool
	runs    int
	arch    *txtar.Archive
}

func parseBadCase(t *testing.T, path string) badCase {
	t.Helper()
	arch, err := txtar.ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c := badCase{exit: -1, args: []string{"sync"}, runs: 1, arch: arch}
	for _, line := range strings.Split(string(arch.Comment), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		word, rest, _ := strings.Cut(line, " ")
		switch word {
		case "exit":
			c.exit, err = strconv.Atoi(rest)
		case "args":
			c.args = strings.Fields(rest)
		case "stderr":
			c.stderr = append(c.stderr, rest)
		case "secret":
			c.secrets = append(c.secrets, rest)
		case "changes":
			c.changes = true
		case "runs":
			c.runs, err = strconv.Atoi(rest)
		default:
			t.Fatalf("%s: unknown directive %q", path, line)
		}
		if err != nil {
			t.Fatalf("%s: %q: %v", path, line, err)
		}
	}
	if c.exit < 0 {
		t.Fatalf("%s: no exit directive", path)
	}
	return c
}

func runBadInput(t *testing.T, path string) {
	c := parseBadCase(t, path)
	dir := t.TempDir()
	remote := http.NewServeMux()
	remote.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	remote.HandleFunc("/status/{code}", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.PathValue("code"))
		http.Error(w, "failing on purpose", code)
	})
	remote.HandleFunc("/reload/{code}", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.PathValue("code"))
		w.WriteHeader(code)
	})
	remote.Handle("/", http.FileServer(http.Dir(filepath.Join(dir, "remote"))))
	srv := httptest.NewServer(remote)
	defer srv.Close()

	repl := strings.NewReplacer(
		"$DEST", filepath.Join(dir, "dest"),
		"$STATE", filepath.Join(dir, "state"),
		"$TEXTFILE", filepath.Join(dir, "textfile", "butler.prom"),
		"$REMOTE", srv.URL,
		"$RELOAD", srv.URL+"/reload",
		"$DIR", dir,
	)
	for _, f := range c.arch.Files {
		data := f.Data
		if f.Name == "butler.toml" {
			data = []byte(repl.Replace(string(data)))
		}
		p := filepath.Join(dir, filepath.FromSlash(f.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	before := snapshotTree(t, filepath.Join(dir, "dest"))
	for run := 1; run <= c.runs; run++ {
		args := []string{"--config", filepath.Join(dir, "butler.toml")}
		for _, a := range c.args {
			args = append(args, repl.Replace(a))
		}
		cmd := exec.Command(butlerBin, args...)
		cmd.Dir = dir
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		done := make(chan error, 1)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatalf("run %d: butler did not end within 60s; stderr:\n%s", run, stderr.String())
		}
		out := stderr.String()
		if code := cmd.ProcessState.ExitCode(); code != c.exit {
			t.Errorf("run %d: exit %d, want %d; stderr:\n%s", run, code, c.exit, out)
		}
		// A log line names them as attributes: manager=prom file=a.yml phase=fetch.
		flat := strings.ReplaceAll(out, "=", " ")
		for _, want := range c.stderr {
			if !strings.Contains(out, want) && !strings.Contains(flat, want) {
				t.Errorf("run %d: stderr does not contain %q:\n%s", run, want, out)
			}
		}
		if strings.Contains(out, "panic:") || strings.Contains(out, "goroutine ") {
			t.Errorf("run %d: butler panicked:\n%s", run, out)
		}
		for _, s := range c.secrets {
			if strings.Contains(out, s) || strings.Contains(stdout.String(), s) {
				t.Errorf("run %d: secret %q in the output:\n%s%s", run, s, stdout.String(), out)
			}
		}
	}
	if after := snapshotTree(t, filepath.Join(dir, "dest")); !c.changes {
		for name, data := range before {
			if got, ok := after[name]; !ok || got != data {
				t.Errorf("dest/%s changed: %q, was %q", name, got, data)
			}
		}
	}
	stateFile := filepath.Join(dir, "state", "state.json")
	if data, err := os.ReadFile(stateFile); err == nil {
		if !json.Valid(data) {
			t.Errorf("state.json is not valid JSON after the run:\n%s", data)
		}
	}
	for _, s := range c.secrets {
		for name, data := range snapshotTree(t, filepath.Join(dir, "state")) {
			if strings.Contains(data, s) {
				t.Errorf("secret %q in state/%s", s, name)
			}
		}
		if data, err := os.ReadFile(filepath.Join(dir, "textfile", "butler.prom")); err == nil && bytes.Contains(data, []byte(s)) {
			t.Errorf("secret %q in the textfile", s)
		}
	}
}

// snapshotTree returns the regular files under root by their slash path.
func snapshotTree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out[filepath.ToSlash(rel)] = string(data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestBadInputCorpusSize keeps the corpus at the size README quotes.
func TestBadInputCorpusSize(t *testing.T) {
	paths, _ := filepath.Glob(filepath.Join("testdata", "badinput", "*.txtar"))
	names := make([]string, len(paths))
	for i, p := range paths {
		names[i] = filepath.Base(p)
	}
	sort.Strings(names)
	if len(names) < 60 {
		t.Errorf("%d bad-input cases, want at least 60: %s", len(names), fmt.Sprint(names))
	}
}
