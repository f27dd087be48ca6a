// Package gitrepo makes a real git repository for tests. Tests only.
package gitrepo

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Repo is a git repository in a temp dir.
type Repo struct {
	t   testing.TB
	Dir string
}

// New makes an empty repository with branch main. Without git it skips the
// test, or fails it when CI is set.
func New(t testing.TB) *Repo {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("git is required under CI: %v", err)
		}
		t.Skipf("git not on PATH: %v", err)
	}
	r := &Repo{t: t, Dir: filepath.Join(t.TempDir(), "repo")}
	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r.Git("init", "-q")
	return r
}

// Git runs git in the repository with an identity and no signing.
func (r *Repo) Git(args ...string) {
	r.t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=butler", "-c", "user.email=butler@example.invalid",
		"-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false"}, args...)...)
	cmd.Dir = r.Dir
	if out, err := cmd.CombinedOutput(); err != nil {
		r.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// Write writes a file of the work tree, with its directories.
func (r *Repo) Write(name, data string) {
	r.t.Helper()
	p := filepath.Join(r.Dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

// Commit adds everything and commits it.
func (r *Repo) Commit(msg string) {
	r.t.Helper()
	r.Git("add", "-A")
	r.Git("commit", "-q", "-m", msg)
}

// Sample is the repository the fetch tests use: root.yml and
// prometheus/rules/common.yml ("version: 1") and a symlink link.yml in a
// first commit tagged v1, then common.yml at "version: 2" on main.
func Sample(t testing.TB) string {
	t.Helper()
	r := New(t)
	r.Write("root.yml", "root: 1\n")
	r.Write("prometheus/rules/common.yml", "version: 1\n")
	if err := os.Symlink("root.yml", filepath.Join(r.Dir, "link.yml")); err != nil {
		t.Fatal(err)
	}
	r.Commit("first")
	r.Git("tag", "v1")
	r.Write("prometheus/rules/common.yml", "version: 2\n")
	r.Commit("second")
	return r.Dir
}
