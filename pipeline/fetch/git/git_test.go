package git_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/butler-sre/butler/internal/errtest"
	"github.com/butler-sre/butler/internal/fstest"
	"github.com/butler-sre/butler/internal/gitrepo"
	"github.com/butler-sre/butler/internal/nettest"
	"github.com/butler-sre/butler/pipeline/fetch/git"
	"github.com/butler-sre/butler/pipeline/source"
)

// newClient returns a client whose staging directory does not exist yet.
func newClient(t *testing.T, max int64) *git.Client {
	t.Helper()
	return &git.Client{Staging: filepath.Join(t.TempDir(), "state", "staging"), MaxFileSize: max}
}

func parse(t *testing.T, src string) *source.Source {
	t.Helper()
	s, err := source.Parse(src)
	if err != nil {
		t.Fatalf("Parse(%q): %v", src, err)
	}
	return s
}

// revParse returns the commit id rev names in the repository dir.
func revParse(t *testing.T, dir, rev string) string {
	t.Helper()
	out, err := exec.Command("git", "-C", dir, "rev-parse", rev+"^{commit}").Output()
	if err != nil {
		t.Fatalf("git rev-parse %s: %v", rev, err)
	}
	return strings.TrimSpace(string(out))
}

// assertEmpty fails when the staging directory holds anything.
func assertEmpty(t *testing.T, staging string) {
	t.Helper()
	entries, err := os.ReadDir(staging)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("staging directory still holds %s", e.Name())
	}
}

// checkout checks src out and closes it at the end of the test.
func checkout(t *testing.T, c *git.Client, src string) *git.Checkout {
	t.Helper()
	co, err := c.Checkout(context.Background(), parse(t, src))
	if err != nil {
		t.Fatalf("Checkout(%q): %v", src, err)
	}
	t.Cleanup(func() { _ = co.Close() })
	return co
}

func TestCheckoutRefs(t *testing.T) {
	repo := gitrepo.Sample(t)
	first, second := revParse(t, repo, "v1"), revParse(t, repo, "main")
	cases := []struct {
		name       string
		query      string
		wantCommit string
		wantBody   string
	}{
		{name: "default branch", query: "", wantCommit: second, wantBody: "version: 2\n"},
		{name: "branch", query: "?ref=main", wantCommit: second, wantBody: "version: 2\n"},
		{name: "tag", query: "?ref=v1", wantCommit: first, wantBody: "version: 1\n"},
		{name: "commit id", query: "?ref=" + first, wantCommit: first, wantBody: "version: 1\n"},
		{name: "abbreviated commit id", query: "?ref=" + first[:8], wantCommit: first, wantBody: "version: 1\n"},
		{name: "deeper", query: "?ref=main&depth=2", wantCommit: second, wantBody: "version: 2\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, 0)
			co := checkout(t, c, "git::file://"+repo+"//prometheus/rules/common.yml"+tc.query)
			if got := co.Commit(); got != tc.wantCommit {
				t.Errorf("Commit() = %s, want %s", got, tc.wantCommit)
			}
			data, err := co.File("prometheus/rules/common.yml")
			if err != nil || string(data) != tc.wantBody {
				t.Errorf("File = %q, %v; want %q", data, err, tc.wantBody)
			}
			if err := co.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			assertEmpty(t, c.Staging)
			if _, err := co.File("root.yml"); err == nil {
				t.Error("File after Close read a file")
			}
			if err := co.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
		})
	}
}

func TestCheckoutErrors(t *testing.T) {
	repo := gitrepo.Sample(t)
	first := revParse(t, repo, "v1")
	closed := nettest.ClosedAddr(t)
	cases := []struct {
		name    string
		src     string
		wantErr string
	}{
		{name: "missing ref", src: "git::file://" + repo + "//root.yml?ref=nope", wantErr: "git fetch: fatal: couldn't find remote ref nope"},
		{name: "missing repository", src: "git::file://" + repo + "-missing//root.yml", wantErr: "git fetch: fatal: "},
		{name: "abbreviated commit with a depth", src: "git::file://" + repo + "//root.yml?depth=1&ref=" + first[:8], wantErr: "must be written in full"},
		{name: "abbreviated commit not in the repository", src: "git::file://" + repo + "//root.yml?ref=deadbeef", wantErr: "no commit deadbeef"},
		{name: "credentials never in the error", src: "git::https://user:topsecretpw@" + closed + "/repo.git//a.yml?token=tok-secret-1", wantErr: "git fetch: fatal: unable to access"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, 0)
			co, err := c.Checkout(context.Background(), parse(t, tc.src))
			if err == nil {
				_ = co.Close()
				t.Fatalf("Checkout(%q) succeeded, want an error containing %q", tc.src, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Checkout(%q) = %v, want an error containing %q", tc.src, err, tc.wantErr)
			}
			for _, secret := range []string{"topsecretpw", "tok-secret-1"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q contains the secret %q", err, secret)
				}
			}
			assertEmpty(t, c.Staging)
		})
	}
}

func TestCheckoutRefusals(t *testing.T) {
	c := newClient(t, 0)
	cases := []struct {
		name    string
		client  *git.Client
		src     *source.Source
		path    string // PATH, when set
		wantErr string
	}{
		{name: "not a git source", client: c, src: parse(t, "https://h/a.yml"), wantErr: "not a git source"},
		{name: "no staging directory", client: &git.Client{}, src: parse(t, "git::file:///srv/repo//a.yml"), wantErr: "no staging directory"},
		{name: "git not installed", client: c, src: parse(t, "git::file:///srv/repo//a.yml"), path: t.TempDir(), wantErr: "git is not installed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.path != "" {
				t.Setenv("PATH", tc.path)
			}
			co, err := tc.client.Checkout(context.Background(), tc.src)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				if co != nil {
					_ = co.Close()
				}
				t.Fatalf("Checkout = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestFile(t *testing.T) {
	r := gitrepo.New(t)
	r.Write("root.yml", "root: 1\n")
	r.Write("prometheus/rules/common.yml", "version: 1\n")
	r.Write("real/a.yml", "a: 1\n")
	for link, target := range map[string]string{"link.yml": "root.yml", "linkdir": "real", "escape.yml": "/etc/hostname"} {
		fstest.Symlink(t, target, filepath.Join(r.Dir, link))
	}
	r.Commit("files")
	cases := []struct {
		name     string
		max      int64
		rel      string
		wantBody string
		wantIs   error
		wantErr  string
	}{
		{name: "top", rel: "root.yml", wantBody: "root: 1\n"},
		{name: "below", rel: "prometheus/rules/common.yml", wantBody: "version: 1\n"},
		{name: "leading slash", rel: "/root.yml", wantBody: "root: 1\n"},
		{name: "exactly the limit", max: 8, rel: "root.yml", wantBody: "root: 1\n"},
		{name: "above the limit", max: 7, rel: "root.yml", wantIs: git.ErrTooLarge, wantErr: "larger than max_file_size"},
		{name: "missing file", rel: "missing.yml", wantIs: fs.ErrNotExist, wantErr: "not found"},
		{name: "missing directory", rel: "prometheus/missing/x.yml", wantIs: fs.ErrNotExist, wantErr: "not found"},
		{name: "a file taken for a directory", rel: "root.yml/x", wantIs: fs.ErrNotExist, wantErr: "not found"},
		{name: "symlink", rel: "link.yml", wantIs: fs.ErrPermission, wantErr: "link.yml is a symbolic link"},
		{name: "symlink out of the repository", rel: "escape.yml", wantIs: fs.ErrPermission, wantErr: "symbolic link"},
		{name: "symlinked directory on the way", rel: "linkdir/a.yml", wantIs: fs.ErrPermission, wantErr: "linkdir is a symbolic link"},
		{name: "directory", rel: "prometheus", wantIs: fs.ErrPermission, wantErr: "not a regular file"},
		{name: "git metadata", rel: ".git/config", wantIs: fs.ErrPermission, wantErr: "git's own metadata"},
		{name: "dot-dot", rel: "prometheus/../../x", wantErr: `may not contain ".."`},
		{name: "no file", rel: "", wantErr: "must name a file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			co := checkout(t, newClient(t, tc.max), "git::file://"+r.Dir)
			data, err := co.File(tc.rel)
			errtest.Want(t, fmt.Sprintf("File(%q)", tc.rel), err, tc.wantErr, tc.wantIs)
			if err == nil && string(data) != tc.wantBody {
				t.Errorf("File(%q) = %q, want %q", tc.rel, data, tc.wantBody)
			}
		})
	}
}

func TestFiles(t *testing.T) {
	plain := gitrepo.New(t)
	for _, f := range []string{"conf/a.yml", "conf/sub/b.yml", "conf/.hidden.yml", "conf/sub/deeper/c.txt", "top.yml"} {
		plain.Write(f, f+"\n")
	}
	plain.Commit("files")
	linked := gitrepo.New(t)
	linked.Write("conf/a.yml", "a\n")
	linked.Write("other/b.yml", "b\n")
	fstest.Symlink(t, "../conf/a.yml", filepath.Join(linked.Dir, "other", "link.yml"))
	linked.Commit("files")

	cases := []struct {
		name    string
		repo    string
		dir     string
		want    []string
		wantIs  error
		wantErr string
	}{
		{name: "subdirectory", repo: plain.Dir, dir: "conf", want: []string{".hidden.yml", "a.yml", "sub/b.yml", "sub/deeper/c.txt"}},
		{name: "deeper subdirectory", repo: plain.Dir, dir: "conf/sub/", want: []string{"b.yml", "deeper/c.txt"}},
		{name: "top, without git's metadata", repo: plain.Dir, dir: "", want: []string{"conf/.hidden.yml", "conf/a.yml", "conf/sub/b.yml", "conf/sub/deeper/c.txt", "top.yml"}},
		{name: "top as a dot", repo: plain.Dir, dir: ".", want: []string{"conf/.hidden.yml", "conf/a.yml", "conf/sub/b.yml", "conf/sub/deeper/c.txt", "top.yml"}},
		{name: "directory without symlinks in a repository with one", repo: linked.Dir, dir: "conf", want: []string{"a.yml"}},
		{name: "symlink below", repo: linked.Dir, dir: "other", wantIs: fs.ErrPermission, wantErr: "other/link.yml is a symbolic link"},
		{name: "symlink below the top", repo: linked.Dir, dir: "", wantIs: fs.ErrPermission, wantErr: "symbolic link"},
		{name: "missing directory", repo: plain.Dir, dir: "missing", wantIs: fs.ErrNotExist, wantErr: "not found"},
		{name: "a file", repo: plain.Dir, dir: "top.yml", wantErr: "not a directory"},
		{name: "git metadata", repo: plain.Dir, dir: ".git", wantIs: fs.ErrPermission, wantErr: "git's own metadata"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			co := checkout(t, newClient(t, 0), "git::file://"+tc.repo)
			got, err := co.Files(tc.dir)
			errtest.Want(t, fmt.Sprintf("Files(%q)", tc.dir), err, tc.wantErr, tc.wantIs)
			if err == nil && !slices.Equal(got, tc.want) {
				t.Errorf("Files(%q) = %q, want %q", tc.dir, got, tc.want)
			}
		})
	}
}

// endCtx is a context that ends, when the test closes done, with err: a
// deadline or a cancellation at a moment the test chooses.
type endCtx struct {
	context.Context
	done chan struct{}
	err  error
}

func (c *endCtx) Done() <-chan struct{} { return c.done }

func (c *endCtx) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// fakeSSH writes an executable script named ssh into a new directory and
// returns its path.
func fakeSSH(t *testing.T, script string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ssh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// procStart returns the start time of process pid (field 22 of its
// /proc stat) and whether it still runs: false when it is gone or a zombie.
func procStart(pid int) (start string, running bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", false
	}
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(fields) < 20 {
		return "", false
	}
	return fields[19], fields[0] != "Z" && fields[0] != "X"
}

// TestCheckoutKillsProcessGroup checks that no process of git's group
// outlives Checkout: not ssh when the context ends while it runs, nor a
// process ssh left behind when git exits on its own. Checkout must return
// the context's error or git's, the process must be dead by then or die
// at once, and nothing may be left in staging.
func TestCheckoutKillsProcessGroup(t *testing.T) {
	cases := []struct {
		name    string
		script  string // the fake ssh; PIDFILE and GOFILE are fifos the test reads and writes
		end     error  // the context ends with it once the pid is known; nil: it does not end
		wantErr error
		wantMsg string
	}{
		{name: "cancelled", script: "echo $$ > PIDFILE\nexec sleep 600\n", end: context.Canceled, wantErr: context.Canceled},
		{name: "deadline", script: "echo $$ > PIDFILE\nexec sleep 600\n", end: context.DeadlineExceeded, wantErr: context.DeadlineExceeded},
		{name: "left behind", script: "sleep 600 </dev/null >/dev/null 2>&1 &\necho $! > PIDFILE\nread go < GOFILE\necho 'ssh: connect to host: refused' >&2\nexit 255\n", wantMsg: "fatal:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gitrepo.New(t) // skips, or fails under CI, without git
			fifo, goFifo := filepath.Join(t.TempDir(), "pid"), filepath.Join(t.TempDir(), "go")
			for _, f := range []string{fifo, goFifo} {
				if err := syscall.Mkfifo(f, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			script := strings.NewReplacer("PIDFILE", "'"+fifo+"'", "GOFILE", "'"+goFifo+"'").Replace(tc.script)
			t.Setenv("GIT_SSH_COMMAND", fakeSSH(t, script))
			ctx := &endCtx{Context: context.Background(), done: make(chan struct{}), err: tc.end}
			end := func() {
				select {
				case <-ctx.done:
				default:
					close(ctx.done)
				}
			}
			t.Cleanup(end)
			c := newClient(t, 0)
			result := make(chan error, 1)
			go func() {
				co, err := c.Checkout(ctx, parse(t, "git::ssh://git@127.0.0.1/srv/repo.git//a.yml"))
				if co != nil {
					_ = co.Close()
				}
				result <- err
			}()

			data, err := os.ReadFile(fifo) // blocks until ssh runs and writes the pid
			if err != nil {
				t.Fatal(err)
			}
			var pid int
			if _, err := fmt.Sscan(string(data), &pid); err != nil {
				t.Fatalf("pid %q: %v", data, err)
			}
			start, running := procStart(pid)
			if !running {
				t.Fatalf("process %d is not running before Checkout returns", pid)
			}
			if tc.end != nil {
				end()
			} else if err := os.WriteFile(goFifo, []byte("go\n"), 0o600); err != nil { // lets ssh exit
				t.Fatal(err)
			}
			err = <-result
			switch {
			case err == nil:
				t.Fatal("Checkout succeeded against a fake ssh")
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Errorf("Checkout = %v, want an error that is %v", err, tc.wantErr)
			case !strings.Contains(err.Error(), tc.wantMsg):
				t.Errorf("Checkout = %v, want an error containing %q", err, tc.wantMsg)
			}
			// SIGKILL was sent before Checkout returned; the process may
			// take a moment to die (and stays a zombie where nothing reaps
			// orphans).
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				if s, running := procStart(pid); !running || s != start {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("process %d still runs after Checkout returned", pid)
				}
			}
			assertEmpty(t, c.Staging)
		})
	}
}

// TestSSHKey checks how an sshkey reaches ssh: a 0600 file in a 0700
// directory under staging, with the options butler sets, gone once
// Checkout returns; and that TMPDIR is under staging too.
func TestSSHKey(t *testing.T) {
	gitrepo.New(t)
	key := []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END OPENSSH PRIVATE KEY-----\n")
	out := t.TempDir()
	t.Setenv("GIT_SSH_COMMAND", fakeSSH(t, `out='`+out+`'
for a in "$@"; do printf '%s\n' "$a" >> "$out/args"; done
while [ $# -gt 0 ]; do
	if [ "$1" = -i ]; then
		printf '%s' "$2" > "$out/keypath"
		stat -c %a "$2" > "$out/keymode"
		stat -c %a "$(dirname "$2")" > "$out/dirmode"
		cat "$2" > "$out/key"
	fi
	shift
done
printf '%s' "$TMPDIR" > "$out/tmpdir"
echo 'git@127.0.0.1: Permission denied (publickey).' >&2
exit 255
`))
	c := newClient(t, 0)
	src := "git::ssh://git@127.0.0.1/srv/repo.git//a.yml?sshkey=" + url.QueryEscape(base64.StdEncoding.EncodeToString(key))
	co, err := c.Checkout(context.Background(), parse(t, src))
	if err == nil {
		_ = co.Close()
		t.Fatal("Checkout succeeded against a fake ssh that refuses")
	}
	if !strings.Contains(err.Error(), "fatal:") || strings.Contains(err.Error(), "c2VjcmV0") {
		t.Errorf("Checkout = %v, want git's fatal line and no key", err)
	}
	read := func(name string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatalf("the fake ssh did not record %s: %v", name, err)
		}
		return strings.TrimSpace(string(b))
	}
	if got := read("key"); got != strings.TrimSpace(string(key)) {
		t.Errorf("key file holds %q, want the decoded key", got)
	}
	if got := read("keymode"); got != "600" {
		t.Errorf("key file mode %s, want 600", got)
	}
	if got := read("dirmode"); got != "700" {
		t.Errorf("key directory mode %s, want 700", got)
	}
	keyPath := read("keypath")
	if !strings.HasPrefix(keyPath, c.Staging+string(filepath.Separator)) {
		t.Errorf("key file %s is not under staging %s", keyPath, c.Staging)
	}
	if _, err := os.Lstat(keyPath); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("key file %s is still there after Checkout returned: %v", keyPath, err)
	}
	if got := read("tmpdir"); !strings.HasPrefix(got, c.Staging+string(filepath.Separator)) {
		t.Errorf("TMPDIR = %q, want a directory under staging", got)
	}
	args := strings.Split(read("args"), "\n")
	for _, opt := range []string{"BatchMode=yes", "StrictHostKeyChecking=accept-new", "IdentitiesOnly=yes", "ControlMaster=no"} {
		if !slices.Contains(args, opt) {
			t.Errorf("ssh arguments %q lack -o %s", args, opt)
		}
	}
	assertEmpty(t, c.Staging)
}
