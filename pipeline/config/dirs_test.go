package config

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/butler-sre/butler/internal/casefile"
	"github.com/butler-sre/butler/internal/envtest"
)

// Two minisign public keys: SPEC section 12's example and the one of the
// verify package's test data.
const (
	dirsTestKey1 = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3"
	dirsTestKey2 = "RWRRCldWsnqFMo3lzc9OYVVQrvS5tQWN+AJtq1HENtkc1dam9hHNe2Vh"
)

// configDirs is a manager m with one file (a.yml) and what extra adds.
func configDirs(extra string) string {
	return "[butler]\nschemes = [\"https\", \"http\", \"s3\", \"gcs\", \"file\", \"git\"]\n" +
		"[managers.m]\ndest = \"/srv/m\"\n" + extra +
		"\n[[managers.m.files]]\nsource = \"https://h/a.yml\"\n"
}

func TestDirsDefaults(t *testing.T) {
	text := configDirs("[[managers.m.dirs]]\nsource = \"s3::https://s3.eu-west-1.amazonaws.com/bucket/rules/\"\n")
	cfg, err := Parse([]byte(text), "butler.toml", "", envtest.Lookup(nil))
	if err != nil {
		t.Fatal(err)
	}
	m := cfg.Manager("m")
	if !m.Prune || m.Verify != nil || len(m.Dirs) != 1 {
		t.Fatalf("manager: prune %v, verify %v, dirs %d", m.Prune, m.Verify, len(m.Dirs))
	}
	d := m.Dirs[0]
	if d.Source != "s3::https://s3.eu-west-1.amazonaws.com/bucket/rules/" || d.Path != "rules" || d.Include != nil ||
		d.Format != "" || !d.Template || d.Delims != nil || d.Mode != 0o644 || d.Headers != nil ||
		d.MaxFiles != DefaultMaxFiles || d.AllowEmpty {
		t.Errorf("dir defaults: %+v", d)
	}
}

func TestDirsFull(t *testing.T) {
	text := `
[butler]
schemes = ["https", "s3", "gcs", "file", "git"]
[managers.m]
dest = "/srv/m"
prune = false
[[managers.m.dirs]]
source = "git::https://git.example.com/cfg.git//prometheus/rules?ref=v1"
path = "rules/./common/"
include = ["*.yml", "*.yaml", "team/*.json"]
format = "YAML"
template = true
delims = ["[[", "]]"]
mode = "0640"
max_files = 50
allow_empty = true
[[managers.m.dirs]]
source = "local/alerts"
template = false
[managers.m.verify]
minisign_keys = ["` + dirsTestKey1 + `", "untrusted comment: minisign public key 32857AB256570A51\n` + dirsTestKey2 + `\n"]
suffix = ".sig"
`
	p := configWrite(t, text)
	cfg, err := LoadFile(p, envtest.Lookup(nil))
	if err != nil {
		t.Fatal(err)
	}
	m := cfg.Manager("m")
	if m.Prune || len(m.Files) != 0 || len(m.Dirs) != 2 {
		t.Fatalf("manager: prune %v, %d files, %d dirs", m.Prune, len(m.Files), len(m.Dirs))
	}
	d := m.Dirs[0]
	if d.Source != "git::https://git.example.com/cfg.git//prometheus/rules?ref=v1" || d.Path != "rules/common" ||
		!slices.Equal(d.Include, []string{"*.yml", "*.yaml", "team/*.json"}) || d.Format != "yml" || !d.Template ||
		!slices.Equal(d.Delims, []string{"[[", "]]"}) || d.Mode != 0o640 || d.MaxFiles != 50 || !d.AllowEmpty {
		t.Errorf("dir #1: %+v", d)
	}
	local := m.Dirs[1]
	if local.Source != filepath.Join(filepath.Dir(p), "local/alerts") || local.Path != "alerts" || local.Template {
		t.Errorf("dir #2: %+v", local)
	}
	if m.Verify == nil || m.Verify.Suffix != ".sig" || strings.Join(m.Verify.Keys.IDs(), ",") != "E7620F1842B4E81F,32857AB256570A51" {
		t.Fatalf("verify: %+v", m.Verify)
	}
	if !d.Matches("a.yml") || d.Matches("a.yml.sig") {
		t.Errorf("the signatures of a verified manager are files of its dirs")
	}
}

func TestVerifyDefaults(t *testing.T) {
	text := configDirs("[managers.m.verify]\nminisign_keys = [\"" + dirsTestKey1 + "\"]\n")
	cfg, err := Parse([]byte(text), "butler.toml", "", envtest.Lookup(nil))
	if err != nil {
		t.Fatal(err)
	}
	v := cfg.Manager("m").Verify
	if v == nil || v.Suffix != DefaultSigSuffix || v.Keys.Len() != 1 {
		t.Fatalf("verify: %+v", v)
	}
}

func TestDirsErrors(t *testing.T) {
	dir := func(extra string) string {
		return configDirs("[[managers.m.dirs]]\nsource = \"s3::https://s3.amazonaws.com/b/rules/\"\n" + extra)
	}
	verify := func(extra string) string { return configDirs("[managers.m.verify]\n" + extra) }
	tests := []struct {
		name string
		text string
		want []string // substrings of the error
	}{
		{"https source", configDirs("[[managers.m.dirs]]\nsource = \"https://h/rules/\"\n"),
			[]string{"manager m: dir #1", "http(s) cannot list a directory", "s3", "gcs", "git::URL//dir", "local directory"}},
		{"http source", configDirs("[[managers.m.dirs]]\nsource = \"http://h/rules/\"\n"), []string{"http(s) cannot list a directory"}},
		{"no directory name", configDirs("[[managers.m.dirs]]\nsource = \"file:///\"\n"), []string{"manager m: dir #1: cannot tell a directory name from source file:///: set path"}},
		{"no source", configDirs("[[managers.m.dirs]]\npath = \"rules\"\n"), []string{"manager m: dir #1: source is required"}},
		{"scheme not allowed", "[managers.m]\ndest = \"/srv/m\"\n[[managers.m.dirs]]\nsource = \"git::https://h/r.git//rules\"\n", []string{`scheme "git" is not allowed`}},
		{"bad glob", dir("include = [\"*.yml\", \"[a-\"]\n"), []string{"dir #1 (rules): include \"[a-\"", "not a glob"}},
		{"empty glob", dir("include = [\"\"]\n"), []string{"empty glob"}},
		{"absolute glob", dir("include = [\"/x/*.yml\"]\n"), []string{"must be relative"}},
		{"directory glob", dir("include = [\"sub/\"]\n"), []string{"matches files, not directories"}},
		{"max_files 0", dir("max_files = 0\n"), []string{"dir #1 (rules): max_files must be at least 1, not 0"}},
		{"max_files negative", dir("max_files = -5\n"), []string{"not -5"}},
		{"path with ..", dir("path = \"../etc\"\n"), []string{"dir #1 (../etc): path", `must not contain ".."`}},
		{"absolute path", dir("path = \"/etc\"\n"), []string{"must be relative to dest"}},
		{"path names dest", dir("path = \".\"\n"), []string{"does not name a directory under dest"}},
		{"bad format", dir("format = \"xml\"\n"), []string{`format "xml"`}},
		{"bad mode", dir("mode = \"777a\"\n"), []string{`mode "777a"`}},
		{"delims without template", dir("template = false\ndelims = [\"[[\", \"]]\"]\n"), []string{"template = false"}},
		{"bad delims", dir("delims = [\"<%\"]\n"), []string{"delims must be two"}},
		{"headers", dir("headers = { A = \"b\" }\n"), []string{"headers are only sent to http(s) sources, not s3"}},
		{"unknown key", dir("includes = [\"*.yml\"]\n"), []string{`unknown key "managers.m.dirs.includes"`}},
		{"include not a list", dir("include = \"*.yml\"\n"), []string{"managers.m.dirs.include"}},
		{"dir over a file", configDirs("[[managers.m.dirs]]\nsource = \"s3::https://s3.amazonaws.com/b/x/\"\npath = \"a.yml\"\n"),
			[]string{"file #1 (a.yml) and dir #1 (a.yml) overlap"}},
		{"file inside a dir", dir("") + "[[managers.m.files]]\nsource = \"https://h/c.yml\"\npath = \"rules/c.yml\"\n",
			[]string{"file #2 (rules/c.yml) and dir #1 (rules) overlap"}},
		{"dir inside a file's place", dir("path = \"a.yml/sub\"\n"), []string{"file #1 (a.yml) and dir #1 (a.yml/sub) overlap"}},
		{"dirs overlap", dir("") + "[[managers.m.dirs]]\nsource = \"gs://b/more\"\npath = \"rules/more\"\n",
			[]string{"dirs #1 (rules) and #2 (rules/more) overlap"}},
		{"same dir twice", dir("") + "[[managers.m.dirs]]\nsource = \"gs://b/rules\"\n", []string{"dirs #1 (rules) and #2 (rules) overlap"}},
		{"verify without keys", verify("suffix = \".minisig\"\n"), []string{"manager m: verify: minisign_keys is required"}},
		{"verify with an empty list", verify("minisign_keys = []\n"), []string{"minisign_keys is required"}},
		{"bad key", verify("minisign_keys = [\"" + dirsTestKey1 + "\", \"RWQnotakey\"]\n"), []string{"manager m: verify: minisign_keys: key #2"}},
		{"every bad key", verify("minisign_keys = [\"a\", \"b\"]\n"), []string{"key #1", "key #2"}},
		{"empty suffix", verify("minisign_keys = [\"" + dirsTestKey1 + "\"]\nsuffix = \"\"\n"), []string{`suffix ""`}},
		{"suffix with a slash", verify("minisign_keys = [\"" + dirsTestKey1 + "\"]\nsuffix = \"/sig\"\n"), []string{`suffix "/sig"`}},
		{"unknown verify key", verify("keys = [\"" + dirsTestKey1 + "\"]\n"), []string{`unknown key "managers.m.verify.keys"`}},
		{"prune not a bool", configDirs("prune = \"no\"\n"), []string{"prune"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.text), "butler.toml", "", envtest.Lookup(nil))
			wantInvalid(t, err, tt.want...)
		})
	}
}

// TestDirsOnly: a manager may have dirs and no files; neither is an error.
func TestDirsOnly(t *testing.T) {
	text := "[managers.m]\ndest = \"/srv/m\"\n[[managers.m.dirs]]\nsource = \"gs://bucket/rules\"\n"
	cfg, err := Parse([]byte(text), "butler.toml", "", envtest.Lookup(nil))
	if err != nil {
		t.Fatal(err)
	}
	if d := cfg.Manager("m").Dirs; len(d) != 1 || d[0].Path != "rules" {
		t.Errorf("dirs: %+v", d)
	}
	_, err = Parse([]byte("[managers.m]\ndest = \"/srv/m\"\n"), "butler.toml", "", envtest.Lookup(nil))
	if err == nil || !strings.Contains(err.Error(), "[[managers.m.files]] or [[managers.m.dirs]]") {
		t.Errorf("a manager without files or dirs: %v", err)
	}
}

func TestDirMatches(t *testing.T) {
	tests := []struct {
		name    string
		include []string
		suffix  string
		rel     string
		want    bool
	}{
		{name: "every file by default", rel: "sub/any.txt", want: true},
		{name: "name glob at the top", include: []string{"*.yml"}, rel: "a.yml", want: true},
		{name: "name glob at any depth", include: []string{"*.yml"}, rel: "team/a/b.yml", want: true},
		{name: "no glob matches", include: []string{"*.yml", "*.yaml"}, rel: "a.json", want: false},
		{name: "second glob matches", include: []string{"*.yml", "*.yaml"}, rel: "a.yaml", want: true},
		{name: "path glob", include: []string{"team/*.json"}, rel: "team/a.json", want: true},
		{name: "path glob, other directory", include: []string{"team/*.json"}, rel: "other/a.json", want: false},
		{name: "path glob, deeper", include: []string{"team/*.json"}, rel: "team/x/a.json", want: false},
		{name: "signature file", suffix: ".minisig", rel: "a.yml.minisig", want: false},
		{name: "signature file, matching glob", include: []string{"*"}, suffix: ".minisig", rel: "a.yml.minisig", want: false},
		{name: "signed file", include: []string{"*"}, suffix: ".minisig", rel: "a.yml", want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &Dir{Include: tt.include, sigSuffix: tt.suffix}
			if got := d.Matches(tt.rel); got != tt.want {
				t.Errorf("Matches(%q) with %q = %v, want %v", tt.rel, tt.include, got, tt.want)
			}
		})
	}
}

func TestDirFile(t *testing.T) {
	d := &Dir{Path: "rules", Template: true, Delims: []string{"[[", "]]"}, Mode: 0o600, MaxFiles: 10}
	casefile.Run(t, "testdata/dir-file.txt", 3, func(t *testing.T, tc casefile.Case) {
		rel, format, wantPath, wantFormat := tc.Name, tc.Fields[0], tc.Fields[1], tc.Fields[2]
		dd := *d
		dd.Format = format
		f, err := dd.File(rel, "s3::https://h/b/rules/"+rel)
		if casefile.Check(t, filePath(f), err, wantPath, "File(%q).Path", rel) {
			if !strings.Contains(err.Error(), "dir rules") {
				t.Errorf("File(%q): error %q does not name the dir", rel, err)
			}
			return
		}
		if f == nil {
			return
		}
		if f.Format != wantFormat || f.Source != "s3::https://h/b/rules/"+rel ||
			!f.Template || f.Mode != 0o600 || !slices.Equal(f.Delims, d.Delims) {
			t.Errorf("File(%q) = %+v", rel, f)
		}
	})
}

func TestSignatureSource(t *testing.T) {
	v := &Verify{Suffix: ".minisig"}
	casefile.Run(t, "testdata/signature-source.txt", 1, func(t *testing.T, tc casefile.Case) {
		src, want := tc.Name, tc.Fields[0]
		if got := v.SignatureSource(src); got != want {
			t.Errorf("SignatureSource(%q) = %q, want %q", src, got, want)
		}
	})
}
