//go:build linux

package main

// nginx as a manager, end to end: a real nginx started by the test under a
// temporary prefix, its configuration kept by the built butler binary, checked
// by `nginx -t` in the staging directory and reloaded by scripts/nginx-reload,
// as scripts/examples/nginx.toml does on a host.

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestE2ENginx syncs a running nginx through a good change, one that nginx -t
// refuses (stopped before anything is written), one that nginx -t passes but
// the master refuses at reload (a port another process holds: the last-known-
// good files are put back), and a fixed one; nginx serves the right response
// after each.
func TestE2ENginx(t *testing.T) {
	t.Parallel()
	nginxBin := needProgram(t, "nginx")
	needProgram(t, "promtool")
	nodeBin := needProgram(t, "prometheus-node-exporter")
	reloadScript, err := filepath.Abs(filepath.Join("scripts", "nginx-reload"))
	if err != nil {
		t.Fatal(err)
	}

	// The prefix holds nginx's own files (pid, logs, temp); dest = prefix/conf
	// holds only what butler manages, as /etc/nginx does beside /usr/share/nginx.
	root := t.TempDir()
	prefix := filepath.Join(root, "nginx")
	dest := filepath.Join(prefix, "conf")
	for _, d := range []string{"logs", "tmp"} {
		if err := os.MkdirAll(filepath.Join(prefix, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("nginx error log:\n%s", e2eTail(filepath.Join(prefix, "logs", "error.log")))
		}
	})

	// Another program's port: nginx -t does not notice that it is taken.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { taken.Close() })
	vars := map[string]string{
		"prefix":     prefix,
		"taken_port": strconv.Itoa(taken.Addr().(*net.TCPAddr).Port),
	}

	// nginx starts on the bootstrap configuration, rendered here as butler
	// would; the port is the one e2eStartProgram found free.
	base := e2eStartProgram(t, nginxBin, func(addr string) []string {
		_, vars["port"], _ = strings.Cut(addr, ":")
		e2eWriteFile(t, filepath.Join(dest, "nginx.conf"), e2eRender(t, "nginx/nginx.conf", vars))
		e2eWriteFile(t, filepath.Join(dest, "conf.d", "site.conf"), e2eRender(t, "nginx/site_bootstrap.conf", vars))
		return []string{"-p", prefix, "-c", "conf/nginx.conf"}
	}, "/")
	nginxWantBody(t, base, "bootstrap\n")

	node := e2eStartNodeExporter(t, nodeBin, filepath.Join(root, "textfile"))
	src := e2eNewSources(t)
	src.Set("/nginx.conf", e2eFixture(t, "nginx/nginx.conf"))
	src.Set("/site.conf", e2eFixture(t, "nginx/site_one.conf"))
	b := e2eNewButler(t, root, node)
	b.writeConfig(t, fmt.Sprintf(`
[managers.nginx]
dest  = %q
vars  = { prefix = %q, port = %q, taken_port = %q }
check = [%q, "-t", "-p", ".", "-c", "nginx.conf"]

[[managers.nginx.files]]
source = %q
path   = "nginx.conf"

[[managers.nginx.files]]
source = %q
path   = "conf.d/site.conf"

[managers.nginx.reload]
command = [%q, "-w", "3", %q, "-p", %q, "-c", "conf/nginx.conf"]
timeout = "20s"
`, dest, prefix, vars["port"], vars["taken_port"], nginxBin,
		src.url("/nginx.conf"), src.url("/site.conf"),
		reloadScript, filepath.Join(prefix, "logs", "nginx.pid"), prefix))

	var good e2eSnapshot
	e2eRunSteps(t, b, nil, "nginx.txt", []e2eStep{
		{name: "a good change is checked, written, reloaded and served", after: func(t *testing.T) {
			nginxWantBody(t, base, "one\n")
			if got := e2eRead(t, filepath.Join(dest, "nginx.conf")); !strings.Contains(got, "pid "+prefix+"/logs/nginx.pid;") {
				t.Errorf("nginx.conf is not rendered:\n%s", got)
			}
			good = e2eSnap(t, dest)
		}},
		{name: "nginx -t refuses: nothing written, nginx serves the old configuration", before: func(t *testing.T) {
			src.Set("/site.conf", e2eFixture(t, "nginx/site_bad_directive.conf"))
		}, after: func(t *testing.T) {
			good.wantSame(t, dest)
			nginxWantBody(t, base, "one\n")
		}},
		{name: "nginx refuses at reload: last-known-good put back, nginx serves the old configuration", before: func(t *testing.T) {
			src.Set("/site.conf", e2eFixture(t, "nginx/site_port_taken.conf"))
		}, after: func(t *testing.T) {
			good.wantSame(t, dest)
			nginxWantBody(t, base, "one\n")
			if log := e2eRead(t, filepath.Join(prefix, "logs", "error.log")); !strings.Contains(log, vars["taken_port"]+" failed") {
				t.Errorf("nginx's error log does not name the taken port:\n%s", log)
			}
		}},
		{name: "a fixed source is applied and served", before: func(t *testing.T) {
			src.Set("/site.conf", e2eFixture(t, "nginx/site_two.conf"))
		}, after: func(t *testing.T) { nginxWantBody(t, base, "two\n") }},
	})
}

// nginxWantBody requires GET base/ to answer 200 with body. A reload is done
// when nginx-reload returns (the new workers run), so the first answer counts.
func nginxWantBody(t *testing.T, base, body string) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(base + "/")
	if err != nil {
		t.Fatalf("GET %s/: %v", base, err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK || string(got) != body {
		t.Errorf("GET %s/: status %d, body %q, %v; want 200 and %q", base, resp.StatusCode, got, err, body)
	}
}

// TestNginxReloadScript covers what the end-to-end test does not reach: usage
// errors, and an nginx that is not running.
func TestNginxReloadScript(t *testing.T) {
	nginxBin := needProgram(t, "nginx")
	script := filepath.Join("scripts", "nginx-reload")
	prefix := t.TempDir()
	for _, d := range []string{"conf/conf.d", "logs", "tmp"} {
		if err := os.MkdirAll(filepath.Join(prefix, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	vars := map[string]string{"prefix": prefix, "port": strconv.Itoa(freePort(t))}
	e2eWriteFile(t, filepath.Join(prefix, "conf", "nginx.conf"), e2eRender(t, "nginx/nginx.conf", vars))
	e2eWriteFile(t, filepath.Join(prefix, "conf", "conf.d", "site.conf"), e2eRender(t, "nginx/site_one.conf", vars))
	pidfile := filepath.Join(prefix, "logs", "nginx.pid")
	nginxOpts := []string{"-p", prefix, "-c", "conf/nginx.conf"}
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"no arguments", nil, 2, "usage: nginx-reload"},
		{"-w without seconds", []string{"-w"}, 2, "usage: nginx-reload"},
		{"-w not a number", []string{"-w", "soon", pidfile}, 2, "usage: nginx-reload"},
		{"nginx not running", append([]string{pidfile}, nginxOpts...), 1, "nginx is not running"},
		{"nginx -t fails", append([]string{pidfile}, "-p", prefix, "-c", "conf/missing.conf"), 1, "nginx -t refused the written configuration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(script, tt.args...)
			cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(nginxBin)+string(os.PathListSeparator)+os.Getenv("PATH"))
			var stderr strings.Builder
			cmd.Stderr = &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if err != nil && !errors.As(err, &exit) {
				t.Fatal(err)
			}
			if code := cmd.ProcessState.ExitCode(); code != tt.code || !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr.String(), tt.code, tt.stderr)
			}
		})
	}
}
