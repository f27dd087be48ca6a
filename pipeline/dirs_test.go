package pipeline

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/butler-sre/butler/internal/fstest"
	"github.com/butler-sre/butler/internal/gitrepo"
	"github.com/butler-sre/butler/pipeline/minisigntest"
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
	e.wantMetric(t, 200, "butler_remote_status", "manager", "prom", "file", "rules/team/b.yml")

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
			wantFailedIn(t, res, err, PhaseFetch, "dir rules")
			fstest.SameTree(t, e.dest, before)
		})
	}
}

// TestRunDirectoryInBucket: an S3 prefix (gofakes3) and a GCS prefix
// (fake-gcs-server) as directory sources: the listing decides the files, and
// an object deleted from the bucket is removed from dest.
func TestRunDirectoryInBucket(t *testing.T) {
	type bucket struct {
		source string
		put    func(name, body string)
		del    func(name string)
	}
	stores := map[string]func(t *testing.T) bucket{
		"s3": func(t *testing.T) bucket {
			backend := s3mem.New()
			srv := httptest.NewServer(gofakes3.New(backend).Server())
			t.Cleanup(srv.Close)
			if err := backend.CreateBucket("cfg"); err != nil {
				t.Fatal(err)
			}
			return bucket{
				source: "s3::" + srv.URL + "/cfg/rules/?region=us-east-1&aws_access_key_id=AKIDTEST&aws_access_key_secret=SECRETKEY1234",
				put: func(name, body string) {
					if _, err := backend.PutObject("cfg", name, map[string]string{}, strings.NewReader(body), int64(len(body)), nil); err != nil {
						t.Fatal(err)
					}
				},
				del: func(name string) {
					if _, err := backend.DeleteObject("cfg", name); err != nil {
						t.Fatal(err)
					}
				},
			}
		},
		"gcs": func(t *testing.T) bucket {
			fake, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1", NoListener: true, Writer: io.Discard})
			if err != nil {
				t.Fatal(err)
			}
			fake.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: "cfg"})
			srv := httptest.NewServer(fake.HTTPHandler())
			t.Cleanup(func() { srv.Close(); fake.Stop() })
			t.Setenv("STORAGE_EMULATOR_HOST", strings.TrimPrefix(srv.URL, "http://"))
			return bucket{
				source: "gs://cfg/rules/",
				put: func(name, body string) {
					fake.CreateObject(fakestorage.Object{ObjectAttrs: fakestorage.ObjectAttrs{BucketName: "cfg", Name: name}, Content: []byte(body)})
				},
				del: func(name string) {
					req, _ := http.NewRequest(http.MethodDelete, srv.URL+"/storage/v1/b/cfg/o/"+url.PathEscape(name), nil)
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					resp.Body.Close()
					if resp.StatusCode/100 != 2 {
						t.Fatalf("delete %s: status %d", name, resp.StatusCode)
					}
				},
			}
		},
	}
	for name, newBucket := range stores {
		t.Run(name, func(t *testing.T) {
			b := newBucket(t)
			b.put("rules/a.yml", "groups: [a]\n")
			b.put("rules/team/b.yml", "groups: [b]\n")
			b.put("rules/notes.txt", "not a rule\n")
			b.put("other/c.yml", "groups: [c]\n")
			e := newRunEnv(t)
			text := strings.Replace(withoutRules(e, ""), "[managers.prom.reload]", fmt.Sprintf(`[[managers.prom.dirs]]
source = %q
path = "rules"
include = ["*.yml"]
template = false

[managers.prom.reload]`, b.source), 1)
			cfg := e.parse(text)
			res, err := e.run(cfg, nil)
			if err != nil {
				t.Fatalf("first run: %v: %+v\n%s", err, res.Managers[0].Err, e.logs.String())
			}
			if got := e.read("rules/a.yml") + e.read("rules/team/b.yml"); got != "groups: [a]\ngroups: [b]\n" {
				t.Fatalf("rules = %q", got)
			}
			for _, p := range []string{"rules/notes.txt", "rules/c.yml", "other/c.yml"} {
				if fstest.Exists(t, filepath.Join(e.dest, p)) {
					t.Errorf("%s written: not under the prefix or not matched", p)
				}
			}
			b.del("rules/team/b.yml")
			_, err = e.run(cfg, nil)
			wantNoErr(t, err)
			if fstest.Exists(t, filepath.Join(e.dest, "rules", "team", "b.yml")) {
				t.Error("an object deleted from the bucket is still in dest")
			}
			b.del("rules/a.yml")
			res, err = e.run(cfg, nil)
			wantFailedIn(t, res, err, PhaseFetch, "no file matches")
			if e.read("rules/a.yml") != "groups: [a]\n" {
				t.Error("an empty prefix wiped the rules")
			}
		})
	}
}

// TestRunDirectoryInGit: a subdirectory of a real git repository at a ref as
// a directory source; a file removed in a later commit is removed from dest.
func TestRunDirectoryInGit(t *testing.T) {
	repo := gitrepo.New(t)
	repo.Write("prometheus/rules/a.yml", "groups: [a]\n")
	repo.Write("prometheus/rules/b.yml", "groups: [b]\n")
	repo.Write("README.md", "not under the directory\n")
	repo.Commit("first")
	e := newRunEnv(t)
	text := strings.Replace(withoutRules(e, ""), "[managers.prom.reload]", fmt.Sprintf(`[[managers.prom.dirs]]
source = "git::file://%s//prometheus/rules?ref=main"
path = "rules"
template = false

[managers.prom.reload]`, repo.Dir), 1)
	text = strings.Replace(text, "[butler]\n", "[butler]\nschemes = [\"http\", \"git\"]\n", 1)
	cfg := e.parse(text)
	_, err := e.run(cfg, nil)
	wantNoErr(t, err)
	if got := e.read("rules/a.yml") + e.read("rules/b.yml"); got != "groups: [a]\ngroups: [b]\n" {
		t.Fatalf("rules = %q", got)
	}
	if err := os.Remove(filepath.Join(repo.Dir, "prometheus", "rules", "b.yml")); err != nil {
		t.Fatal(err)
	}
	repo.Commit("drop b")
	_, err = e.run(cfg, nil)
	wantNoErr(t, err)
	if fstest.Exists(t, filepath.Join(e.dest, "rules", "b.yml")) {
		t.Error("rules/b.yml, removed in the repository, is still in dest")
	}
	if fstest.Exists(t, filepath.Join(e.dest, "rules", "README.md")) {
		t.Error("a file outside the subdirectory was written")
	}
}

// TestRunSignedDirectory: with [verify], every file of a directory source
// needs its own signature beside it (the .minisig files are not files of
// the manager); one file without one fails the manager and writes nothing.
func TestRunSignedDirectory(t *testing.T) {
	tool := minisigntest.Tool(t)
	key := minisigntest.NewPair(t, tool)
	e := newRunEnv(t)
	src := filepath.Join(e.dir, "store", "rules")
	sign := func(name, body string) {
		fstest.WriteFile(t, filepath.Join(src, name), body, 0o644)
		sig := minisigntest.Sign(t, tool, key, []byte(body))
		fstest.WriteFile(t, filepath.Join(src, name+".minisig"), string(sig), 0o644)
	}
	sign("a.yml", "groups: [a]\n")
	sign("b.yml", "groups: [b]\n")
	e.remote.Set("/prometheus.yml.minisig", string(minisigntest.Sign(t, tool, key, []byte(e.remote.Get("/prometheus.yml")))))
	text := strings.Replace(withoutRules(e, fmt.Sprintf("[managers.prom.verify]\nminisign_keys = [%q]\n", key.Pub)), "[managers.prom.reload]", fmt.Sprintf(`[[managers.prom.dirs]]
source = %q
path = "rules"
template = false

[managers.prom.reload]`, src), 1)
	cfg := e.parse(text)
	_, err := e.run(cfg, nil)
	wantNoErr(t, err)
	if e.read("rules/a.yml")+e.read("rules/b.yml") != "groups: [a]\ngroups: [b]\n" {
		t.Fatal("the signed directory was not applied")
	}
	if fstest.Exists(t, filepath.Join(e.dest, "rules", "a.yml.minisig")) {
		t.Error("a signature file was written as a file of the manager")
	}
	before := fstest.Tree(t, e.dest)
	fstest.WriteFile(t, filepath.Join(src, "c.yml"), "groups: [unsigned]\n", 0o644)
	res, err := e.run(cfg, nil)
	wantFailedIn(t, res, err, PhaseFetch, "rules/c.yml", "signature")
	fstest.SameTree(t, e.dest, before)
}
