package pipeline

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/butler-sre/butler/pipeline/internal/fstest"
)

// TestRunDirectorySource: a local directory of rules, filtered by include:
// every matching file is a file of the manager under path; a file removed
// upstream is removed from dest; an empty listing or one over max_files
// fails the fetch and changes nothing; a symlink in the source is refused.
func TestRunDirectorySource(t *testing.T) {
	e := newRunEnv(t)
	src := filepath.Join(e.dir, "store", "rules")
	fstest.WriteFile(t, filepath.Join(src, "a.yml"), "groups: [a]\n", 0o644)
	fstest.WriteFile(t, filepath.Join(src, "team", "b.yml"), "groups: [b]\n", 0o644)
	fstest.WriteFile(t, filepath.Join(src, "README.txt"), "not a rule\n", 0o644)
	dirs := func(extra string) string {
		text := withoutRules(e, "")
		return strings.Replace(text, "[managers.prom.reload]", fmt.Sprintf(`[[managers.prom.dirs]]
source = %q
path = "rules"
include = ["*.yml"]
template = false
max_files = 3
%s
[managers.prom.reload]`, src, extra), 1)
	}
	cfg := e.parse(dirs(""))
	_, err := e.run(cfg, nil)
	wantNoErr(t, err)
	if got := e.read("rules/a.yml") + e.read("rules/team/b.yml"); got != "groups: [a]\ngroups: [b]\n" {
		t.Errorf("rules = %q", got)
	}
	if fstest.Exists(t, filepath.Join(e.dest, "rules", "README.txt")) {
		t.Error("a file include does not match was written")
	}
	if v := e.metric("butler_remote_status", "manager", "prom", "file", "rules/team/b.yml"); v != 200 {
		t.Errorf("butler_remote_status of rules/team/b.yml = %v", v)
	}

	// b.yml removed upstream, c.yml added.
	if err := os.Remove(filepath.Join(src, "team", "b.yml")); err != nil {
		t.Fatal(err)
	}
	fstest.WriteFile(t, filepath.Join(src, "c.yml"), "groups: [c]\n", 0o644)
	_, err = e.run(cfg, nil)
	wantNoErr(t, err)
	if fstest.Exists(t, filepath.Join(e.dest, "rules", "team", "b.yml")) {
		t.Error("rules/team/b.yml, removed upstream, is still in dest")
	}
	if e.read("rules/c.yml") != "groups: [c]\n" {
		t.Error("rules/c.yml not written")
	}
	if _, ok := e.lookup("butler_remote_status", "manager", "prom", "file", "rules/team/b.yml"); ok {
		t.Error("the series of the removed file remain")
	}

	before := fstest.Tree(t, e.dest)
	for name, spoil := range map[string]func(){
		"more than max_files": func() {
			for i := range 3 {
				fstest.WriteFile(t, filepath.Join(src, fmt.Sprintf("x%d.yml", i)), "groups: []\n", 0o644)
			}
		},
		"empty": func() {
			_ = os.RemoveAll(src)
			_ = os.MkdirAll(src, 0o755)
		},
		"symlink": func() {
			_ = os.RemoveAll(src)
			fstest.WriteFile(t, filepath.Join(src, "a.yml"), "groups: [a]\n", 0o644)
			_ = os.Symlink("/etc/hostname", filepath.Join(src, "link.yml"))
		},
	} {
		t.Run(name, func(t *testing.T) {
			spoil()
			res, err := e.run(cfg, nil)
			wantFailed(t, err)
			if mr := res.Managers[0]; mr.Phase != PhaseFetch || !strings.Contains(mr.Err.Error(), "dir rules") {
				t.Errorf("result %+v, want a fetch failure naming dir rules", mr)
			}
			fstest.SameTree(t, e.dest, before)
		})
	}
}
