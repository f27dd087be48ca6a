package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/butler-sre/butler/internal/casefile"
	"github.com/butler-sre/butler/internal/envtest"
	"github.com/butler-sre/butler/internal/fstest"
)

// configWrite writes a configuration into a temp dir and returns its path.
func configWrite(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "butler.toml")
	fstest.WriteFile(t, p, text, 0o600)
	return p
}

const configMinimal = `
[managers.prom]
dest = "/srv/prom"
[[managers.prom.files]]
source = "https://cfg.example.com/prometheus.yml"
`

func TestConfigDefaults(t *testing.T) {
	cfg, err := LoadFile(configWrite(t, configMinimal), envtest.Lookup(nil))
	if err != nil {
		t.Fatal(err)
	}
	b := cfg.Butler
	if b.StateDir != DefaultStateDir || b.Textfile != DefaultTextfile || b.Timeout != DefaultTimeout ||
		b.Splay != 0 || b.Concurrency != 8 || b.MaxFileSize != 10<<20 || strings.Join(b.Schemes, ",") != "https,http,s3,gcs,file" {
		t.Errorf("butler defaults: %+v", b)
	}
	m := cfg.Manager("prom")
	if m == nil || m.Dest != "/srv/prom" || m.TimeoutOK || !m.LKG || m.CheckTimeout != 30*time.Second || m.Reload != nil {
		t.Fatalf("manager defaults: %+v", m)
	}
	f := m.Files[0]
	if f.Path != "prometheus.yml" || f.Format != "yml" || !f.Template || f.Mode != 0o644 {
		t.Errorf("file defaults: %+v", f)
	}
}

func TestConfigFull(t *testing.T) {
	text := `
[butler]
state_dir = "state"
textfile = ""
timeout = "90s"
splay = "10s"
concurrency = 2
max_file_size = "1MiB"
schemes = ["https", "file", "git"]

[vars]
datacenter = "ams1"
region = "eu"

[managers.prom]
dest = "etc/prom"
timeout_ok = true
lkg = false
check = ["promtool", "check", "config", "prometheus.yml"]
check_timeout = "5s"
vars = { region = "us", role = "edge" }

[[managers.prom.files]]
source = "https://user:${PASS}@cfg.example.com/p/prometheus.yml?x=1"
path = "prometheus.yml"
format = "yaml"
delims = ["[[", "]]"]
mode = "0600"
headers = { Authorization = "Bearer ${TOKEN}" }

[[managers.prom.files]]
source = "remote/rules.json"
path = "rules/rules.json"
template = false

[managers.prom.reload]
url = "http://127.0.0.1:9090/-/reload"
method = "put"
timeout = "3s"
retries = 0
expect = [200, 204]

[managers.nginx]
dest = "/etc/nginx/conf.d"
[[managers.nginx.files]]
source = "git::https://example.com/repo.git//site.conf"
[managers.nginx.reload]
command = ["systemctl", "reload", "nginx"]
`
	p := configWrite(t, text)
	dir := filepath.Dir(p)
	cfg, err := LoadFile(p, envtest.Lookup(map[string]string{"PASS": "s3cret", "TOKEN": "tok123"}))
	if err != nil {
		t.Fatal(err)
	}
	b := cfg.Butler
	if b.StateDir != filepath.Join(dir, "state") || b.Textfile != "" || b.Timeout != 90*time.Second ||
		b.Splay != 10*time.Second || b.Concurrency != 2 || b.MaxFileSize != 1<<20 {
		t.Errorf("butler: %+v", b)
	}
	if len(cfg.Managers) != 2 || cfg.Managers[0].Name != "nginx" || cfg.Managers[1].Name != "prom" {
		t.Fatalf("managers not sorted by name: %v", cfg.Managers)
	}
	m := cfg.Manager("prom")
	if m.Dest != filepath.Join(dir, "etc/prom") || !m.TimeoutOK || m.LKG || m.CheckTimeout != 5*time.Second {
		t.Errorf("manager: %+v", m)
	}
	if m.Vars["region"] != "us" || m.Vars["datacenter"] != "ams1" || m.Vars["role"] != "edge" {
		t.Errorf("vars not merged: %v", m.Vars)
	}
	f := m.Files[0]
	if !strings.Contains(f.Source, "user:s3cret@") || f.Format != "yml" || f.Mode != 0o600 ||
		strings.Join(f.Delims, " ") != "[[ ]]" || f.Headers["Authorization"] != "Bearer tok123" {
		t.Errorf("file 1: %+v", f)
	}
	f = m.Files[1]
	if f.Template || f.Format != "json" || !strings.HasSuffix(f.Source, filepath.Join(dir, "remote/rules.json")) {
		t.Errorf("file 2: %+v", f)
	}
	r := m.Reload
	if r.Method != "PUT" || r.Timeout != 3*time.Second || r.Retries != 0 || len(r.Expect) != 2 {
		t.Errorf("reload: %+v", r)
	}
	n := cfg.Manager("nginx")
	if n.Files[0].Path != "site.conf" || n.Files[0].Format != "text" || n.Reload.Command[0] != "systemctl" ||
		n.Reload.Timeout != 10*time.Second || n.Reload.Retries != 2 || n.Reload.Expect[0] != 200 {
		t.Errorf("nginx: %+v %+v", n.Files[0], n.Reload)
	}
}

// TestConfigErrors checks that every rule is enforced with a message that names
// the place of the problem.
func TestConfigErrors(t *testing.T) {
	file := func(extra string) string {
		return "[managers.m]\ndest = \"/srv/m\"\n[[managers.m.files]]\nsource = \"https://h/a.yml\"\n" + extra
	}
	tests := []struct {
		name string
		text string
		want []string // substrings of the error
	}{
		{"malformed toml", "[butler\nstate_dir = 1", []string{"line 2", "table name"}},
		{"unknown top key", "colour = 1\n" + file(""), []string{`unknown key "colour"`, "line 1"}},
		{"unknown butler key", "[butler]\nstatedir = \"/x\"\n" + file(""), []string{`unknown key "butler.statedir"`, "line 2"}},
		{"unknown file key", file("pth = \"x\"\n"), []string{`unknown key "managers.m.files.pth"`, "line 5"}},
		// The TOML library matches a key in another case to the field: both
		// spellings given, which one won changed from run to run.
		{"table in another case", "[Butler]\nstate_dir = \"/x\"\n" + file(""), []string{`unknown key "Butler"`, "line 1", `did you mean "butler"?`}},
		{"manager key in another case", "[managers.m]\nDest = \"/srv/m\"\n[[managers.m.files]]\nsource = \"https://h/a.yml\"\n",
			[]string{`unknown key "managers.m.Dest"`, "line 2", `did you mean "dest"?`}},
		{"key in both cases", "[managers.m]\ndest = \"/srv/m\"\nDEST = \"/srv/n\"\n[[managers.m.files]]\nsource = \"https://h/a.yml\"\n",
			[]string{`unknown key "managers.m.DEST"`, "line 3"}},
		{"file key in another case", file("Path = \"x\"\n"), []string{`unknown key "managers.m.files.Path"`, "line 5", `did you mean "path"?`}},
		{"reload key in another case", file("[managers.m.reload]\nURL = \"http://h/-/reload\"\n"),
			[]string{`unknown key "managers.m.reload.URL"`, "line 6", `did you mean "url"?`}},
		{"unknown reload key", file("[managers.m.reload]\nurl = \"http://h/\"\nexpected = [200]\n"), []string{"managers.m.reload.expected", "line 7"}},
		{"wrong type", "[butler]\nconcurrency = \"many\"\n" + file(""), []string{"concurrency"}},
		{"unset env var", file("headers = { A = \"${NOPE}\" }\n"), []string{"NOPE is not set", "headers.A"}},
		{"bad env name", file("headers = { A = \"${1X}\" }\n"), []string{"not an environment variable name"}},
		{"unclosed env", file("headers = { A = \"${X\" }\n"), []string{"unclosed"}},
		{"bad manager name", "[managers.\"a b\"]\ndest = \"/x\"\n[[managers.\"a b\".files]]\nsource = \"https://h/a\"\n", []string{"manager a b", "letters"}},
		{"no dest", "[managers.m]\n[[managers.m.files]]\nsource = \"https://h/a.yml\"\n", []string{"manager m: dest is required"}},
		{"root dest", "[managers.m]\ndest = \"/\"\n[[managers.m.files]]\nsource = \"https://h/a.yml\"\n", []string{`must not be "/"`}},
		{"no files", "[managers.m]\ndest = \"/srv/m\"\n", []string{"manager m: no files"}},
		{"no managers", "[butler]\ntimeout = \"1m\"\n", []string{"no manager"}},
		{"dotdot path", file("path = \"../etc/passwd\"\n"), []string{"manager m: file #1", `must not contain ".."`}},
		{"nested dotdot", file("path = \"a/../../x\"\n"), []string{`".."`}},
		{"absolute path", file("path = \"/etc/passwd\"\n"), []string{"must be relative"}},
		{"dot path", file("path = \".\"\n"), []string{"does not name a file"}},
		{"duplicate path", file("[[managers.m.files]]\nsource = \"https://h/b/a.yml\"\n"), []string{`both write "a.yml"`}},
		{"unknown scheme", "[managers.m]\ndest = \"/srv/m\"\n[[managers.m.files]]\nsource = \"ftp://h/a.yml\"\n", []string{"manager m: file #1", "ftp"}},
		{"git not allowed", "[managers.m]\ndest = \"/srv/m\"\n[[managers.m.files]]\nsource = \"git::https://h/r.git//a.yml\"\n", []string{`scheme "git" is not allowed`}},
		{"http not allowed", "[butler]\nschemes = [\"https\"]\n" + "[managers.m]\ndest = \"/srv/m\"\n[[managers.m.files]]\nsource = \"http://h/a.yml\"\n", []string{`scheme "http" is not allowed`}},
		{"unknown scheme in list", "[butler]\nschemes = [\"https\", \"gopher\"]\n" + file(""), []string{`unknown scheme "gopher"`}},
		{"bad duration", "[butler]\ntimeout = \"5 minutes\"\n" + file(""), []string{"[butler] timeout", "not a duration"}},
		{"zero timeout", "[butler]\ntimeout = \"0s\"\n" + file(""), []string{"timeout: must be more than 0"}},
		{"bad check timeout", "[managers.m]\ndest = \"/srv/m\"\ncheck_timeout = \"x\"\n[[managers.m.files]]\nsource = \"https://h/a.yml\"\n", []string{"manager m: check_timeout"}},
		{"bad concurrency", "[butler]\nconcurrency = 0\n" + file(""), []string{"concurrency: must be at least 1"}},
		{"bad size", "[butler]\nmax_file_size = \"10 parsecs\"\n" + file(""), []string{"max_file_size", "not a size"}},
		{"negative size", "[butler]\nmax_file_size = -1\n" + file(""), []string{"max_file_size"}},
		{"textfile not prom", "[butler]\ntextfile = \"/x/butler.txt\"\n" + file(""), []string{"must end in .prom"}},
		{"bad mode", file("mode = \"rw-r--r--\"\n"), []string{`mode "rw-r--r--"`}},
		{"mode too big", file("mode = \"4755\"\n"), []string{"octal permission"}},
		{"bad format", file("format = \"xml\"\n"), []string{`format "xml"`}},
		{"bad delims", file("delims = [\"<%\"]\n"), []string{"delims"}},
		{"delims without template", file("template = false\ndelims = [\"[[\", \"]]\"]\n"), []string{"template = false"}},
		{"headers on s3", "[managers.m]\ndest = \"/srv/m\"\n[[managers.m.files]]\nsource = \"s3::https://s3.amazonaws.com/b/a.yml\"\nheaders = { A = \"b\" }\n", []string{"headers are only sent"}},
		{"reserved var", "[vars]\nenv = \"prod\"\n" + file(""), []string{`"env" is a reserved`}},
		{"reload both", file("[managers.m.reload]\nurl = \"http://h/\"\ncommand = [\"true\"]\n"), []string{"not both"}},
		{"reload neither", file("[managers.m.reload]\ntimeout = \"1s\"\n"), []string{"set url or command"}},
		{"reload bad url", file("[managers.m.reload]\nurl = \"ftp://h/\"\n"), []string{"not an http(s) URL"}},
		{"reload bad expect", file("[managers.m.reload]\nurl = \"http://h/\"\nexpect = [200, 999]\n"), []string{"999 is not an HTTP status"}},
		{"reload empty expect", file("[managers.m.reload]\nurl = \"http://h/\"\nexpect = []\n"), []string{"at least one"}},
		{"reload empty command", file("[managers.m.reload]\ncommand = []\n"), []string{"program first"}},
		{"reload bad retries", file("[managers.m.reload]\nurl = \"http://h/\"\nretries = -1\n"), []string{"retries"}},
		{"overlapping dests", file("[managers.n]\ndest = \"/srv/m/sub\"\n[[managers.n.files]]\nsource = \"https://h/a.yml\"\n"), []string{"managers m and n", "overlap"}},
		{"dest in state dir", "[butler]\nstate_dir = \"/srv\"\n" + file(""), []string{"overlaps the state directory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadFile(configWrite(t, tt.text), envtest.Lookup(map[string]string{"X": "x"}))
			wantInvalid(t, err, tt.want...)
		})
	}
}

// wantInvalid fails t unless err is a refusal of the configuration: it
// wraps ErrInvalid and holds each of want.
func wantInvalid(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("error does not wrap ErrInvalid: %v", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}

func TestConfigEveryErrorReported(t *testing.T) {
	text := "[butler]\ntimeout = \"x\"\n[managers.a]\n[[managers.a.files]]\nsource = \"https://h/a.yml\"\n" +
		"[managers.b]\ndest = \"/srv/b\"\n[[managers.b.files]]\nsource = \"https://h/b.yml\"\nmode = \"9\"\n"
	_, err := LoadFile(configWrite(t, text), envtest.Lookup(nil))
	if err == nil {
		t.Fatal("no error")
	}
	// The butler table fails first; fix it and both managers' problems are reported.
	text = strings.Replace(text, `timeout = "x"`, `timeout = "1m"`, 1)
	_, err = LoadFile(configWrite(t, text), envtest.Lookup(nil))
	for _, w := range []string{"manager a: dest is required", "manager b: file #1 (b.yml): mode"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v does not contain %q", err, w)
		}
	}
}

func TestExpandEnv(t *testing.T) {
	env := envtest.Lookup(map[string]string{"A": "1", "EMPTY": "", "B_2": "two"})
	tests := []struct {
		in, want, err string
	}{
		{"plain", "plain", ""},
		{"${A}", "1", ""},
		{"x${A}y${B_2}z", "x1ytwoz", ""},
		{"${EMPTY}", "", ""},
		{"$${A}", "${A}", ""},
		{"$$${A}", "$${A}", ""}, // the escape applies to the "${" it precedes
		{"cost $5", "cost $5", ""},
		{"${MISSING}", "", "MISSING is not set"},
		{"${A", "", "unclosed"},
		{"${}", "", "not an environment variable name"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ExpandEnv(tt.in, env)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %q, %v; want error %q", got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   any
		want int64
		ok   bool
	}{
		{int64(2048), 2048, true},
		{"2048", 2048, true},
		{"10MiB", 10 << 20, true},
		{"512KiB", 512 << 10, true},
		{"1GiB", 1 << 30, true},
		{"1MB", 1000000, true},
		{"5 KiB", 5 << 10, true},
		{"0", 0, false},
		{int64(0), 0, false},
		{"ten", 0, false},
		{"1.5MiB", 0, false},
		{3.5, 0, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.in), func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if (err == nil) != tt.ok || got != tt.want {
				t.Fatalf("ParseSize(%v) = %d, %v", tt.in, got, err)
			}
		})
	}
}

// configOneFile is a configuration of one manager "m" with one file of the
// given source and extra keys.
func configOneFile(source, extra string) string {
	return "[butler]\nschemes = [\"https\", \"s3\", \"file\", \"git\"]\n" +
		"[managers.m]\ndest = \"/srv/m\"\n[[managers.m.files]]\nsource = \"" + source + "\"\n" + extra
}

// parseOneFile parses configOneFile(source, extra) with the configuration
// in dir ("" when it is not a local file) and returns its file.
func parseOneFile(t *testing.T, dir, source, extra string) (*File, error) {
	t.Helper()
	cfg, err := Parse([]byte(configOneFile(source, extra)), "butler.toml", dir, envtest.Lookup(nil))
	if err != nil {
		return nil, err
	}
	return cfg.Manager("m").Files[0], nil
}

// filePath is the path of f, "" when there is none.
func filePath(f *File) string {
	if f == nil {
		return ""
	}
	return f.Path
}

// TestDefaultPath checks that a file without path is written under the last
// element of its source, whatever the source's form.
func TestDefaultPath(t *testing.T) {
	casefile.Run(t, "testdata/default-path.txt", 2, func(t *testing.T, tc casefile.Case) {
		source, want := tc.Fields[0], tc.Fields[1]
		f, err := parseOneFile(t, t.TempDir(), source, "")
		if wantErr, ok := casefile.WantErr(want); ok {
			wantInvalid(t, err, wantErr, "manager m: file #1")
			return
		}
		casefile.Check(t, filePath(f), err, want, "path")
	})
}

// TestFilePathRules checks that a file's path cannot leave its manager's
// dest by name, that the error names the manager and the file, and that an
// accepted path is stored clean.
func TestFilePathRules(t *testing.T) {
	casefile.Run(t, "testdata/file-path.txt", 1, func(t *testing.T, tc casefile.Case) {
		path, want := tc.Name, tc.Fields[0]
		f, err := parseOneFile(t, "", "https://h/a.yml", fmt.Sprintf("path = %q\n", path))
		if wantErr, ok := casefile.WantErr(want); ok {
			wantInvalid(t, err, fmt.Sprintf("butler.toml: manager m: file #1 (%s): path: ", path), wantErr)
			return
		}
		casefile.Check(t, filePath(f), err, want, "path")
	})
}

func TestCleanPathsCollide(t *testing.T) {
	text := configOneFile("https://h/a.yml", "path = \"./x/a.yml\"\n") +
		"[[managers.m.files]]\nsource = \"https://h/b.yml\"\npath = \"x//a.yml\"\n"
	_, err := Parse([]byte(text), "butler.toml", "", envtest.Lookup(nil))
	if err == nil || !strings.Contains(err.Error(), `files #1 and #2 both write "x/a.yml"`) {
		t.Fatalf("two spellings of one path not refused: %v", err)
	}
}

func TestFormatFromPath(t *testing.T) {
	tests := []struct {
		path string
		want string
	}{
		{"prometheus.yml", "yml"},
		{"rules/common.yaml", "yml"},
		{"UPPER.YML", "yml"},
		{"Mixed.Yaml", "yml"},
		{"a.yAmL", "yml"},
		{"dashboards/node.json", "json"},
		{"a.JSON", "json"},
		{"b.Json", "json"},
		{"nginx.conf", "text"},
		{"alerts.txt", "text"},
		{"Makefile", "text"},
		{"", "text"},
		{".yml", "yml"},
		{"config.yml.bak", "text"},
		{"dir.yml/file", "text"},
		{"targets.json.tmpl", "text"},
		{"a.ymlx", "text"},
		{"a.jsonl", "text"},
		{"yml", "text"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.path), func(t *testing.T) {
			if got := FormatFromPath(tt.path); got != tt.want {
				t.Errorf("FormatFromPath(%q) = %q, want %q", tt.path, got, tt.want)
			}
		})
	}
}

// TestFileFormat checks the format a file gets: the one set, in any case
// ("yaml" is "yml"), or else the one of its path's extension.
func TestFileFormat(t *testing.T) {
	casefile.Run(t, "testdata/file-format.txt", 3, func(t *testing.T, tc casefile.Case) {
		path, format, want := tc.Fields[0], tc.Fields[1], tc.Fields[2]
		extra := fmt.Sprintf("path = %q\n", path)
		if format != "" {
			extra += fmt.Sprintf("format = %q\n", format)
		}
		f, err := parseOneFile(t, "", "https://h/src", extra)
		if err != nil {
			t.Fatal(err)
		}
		if f.Format != want {
			t.Errorf("format = %q, want %q", f.Format, want)
		}
	})
}

// TestConfigNamesAnyCase: the case rule is for butler's keys alone: a
// manager's name and the keys of vars are the user's, in any case.
func TestConfigNamesAnyCase(t *testing.T) {
	text := "[vars]\nRegion = \"eu\"\n[managers.Prom]\ndest = \"/srv/p\"\n[managers.Prom.vars]\nDC = \"ams1\"\n" +
		"[[managers.Prom.files]]\nsource = \"https://h/a.yml\"\n"
	cfg, err := Parse([]byte(text), "butler.toml", t.TempDir(), envtest.Lookup(nil))
	if err != nil {
		t.Fatal(err)
	}
	if m := cfg.Manager("Prom"); m == nil || m.Vars["Region"] != "eu" || m.Vars["DC"] != "ams1" {
		t.Errorf("manager Prom: %+v", m)
	}
}
