package config

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"github.com/butler-sre/butler/pipeline/redact"
	"github.com/butler-sre/butler/pipeline/source"
	"github.com/butler-sre/butler/pipeline/verify"
)

// Defaults of [[managers.NAME.dirs]] and [managers.NAME.verify].
const (
	DefaultMaxFiles  = 1000
	DefaultSigSuffix = ".minisig"
)

// Dir is one [[managers.NAME.dirs]] entry: a whole directory of the store.
// Every file under Source that Matches is a file of the manager at
// Path/RELATIVE (see File).
type Dir struct {
	Source     string   // resolved: a relative local directory made absolute
	Path       string   // the directory under the manager's dest, clean
	Include    []string // globs (see Matches); empty: every file
	Format     string   // yml, json or text; "" takes each file's from its extension
	Template   bool
	Delims     []string
	Mode       os.FileMode
	Headers    map[string]string
	MaxFiles   int  // more matching files is an error
	AllowEmpty bool // zero matching files is an error unless set

	// sigSuffix is the manager's [verify] suffix: the signatures beside the
	// files are not files of the directory.
	sigSuffix string
}

// Verify is a [managers.NAME.verify] table: every file of the manager must
// carry a minisign signature by one of Keys, fetched from its source + Suffix.
type Verify struct {
	Keys   verify.Keys
	Suffix string
}

// rawDir is a [[managers.NAME.dirs]] entry: the keys of a file's and these.
type rawDir struct {
	rawFile
	Include    []string `toml:"include"`
	MaxFiles   *int     `toml:"max_files"`
	AllowEmpty bool     `toml:"allow_empty"`
}

type rawVerify struct {
	MinisignKeys []string `toml:"minisign_keys"`
	Suffix       *string  `toml:"suffix"`
}

// Matches reports whether the file at rel (slash-separated, relative to the
// directory source) is a file of the directory: not a signature file of the
// manager's [verify] table, and matched by one of Include when it is set. A
// glob without "/" is matched against the file's name at any depth ("*.yml"
// takes a.yml and sub/b.yml); one with "/" against the whole relative path
// ("sub/*.yml" takes sub/b.yml only). Globs are those of path.Match.
func (d *Dir) Matches(rel string) bool {
	if d.sigSuffix != "" && strings.HasSuffix(rel, d.sigSuffix) {
		return false
	}
	if len(d.Include) == 0 {
		return true
	}
	for _, g := range d.Include {
		name := rel
		if !strings.Contains(g, "/") {
			name = path.Base(rel)
		}
		if ok, _ := path.Match(g, name); ok {
			return true
		}
	}
	return false
}

// File returns the file of the manager that the file at rel (slash-separated,
// relative to the directory source) becomes, fetched from src: at Path/rel,
// with the directory's template, delims, mode and headers, and its format or
// else the one rel's extension implies. A rel that could leave the
// directory (absolute, "..", empty) is an error.
func (d *Dir) File(rel, src string) (*File, error) {
	if err := checkRelPath(rel); err != nil {
		return nil, fmt.Errorf("dir %s: file %w", d.Path, err)
	}
	rel = path.Clean(rel)
	f := &File{
		Source:   src,
		Path:     path.Join(d.Path, rel),
		Format:   d.Format,
		Template: d.Template,
		Delims:   d.Delims,
		Mode:     d.Mode,
		Headers:  d.Headers,
	}
	if f.Format == "" {
		f.Format = FormatFromPath(rel)
	}
	return f, nil
}

// SignatureSource is where the signature of the file fetched from src is:
// src with Suffix added to its path, before any query, and without a
// "checksum" parameter (which checks the file, not its signature).
// "s3::https://h/b/a.yml?region=x" gives "s3::https://h/b/a.yml.minisig?region=x".
func (v *Verify) SignatureSource(src string) string {
	forced, rest := source.SplitForced(src)
	base, query, hasQuery := strings.Cut(rest, "?")
	out := base + v.Suffix
	if hasQuery {
		var kept []string
		for _, p := range strings.Split(query, "&") {
			if k, _, _ := strings.Cut(p, "="); k != "checksum" {
				kept = append(kept, p)
			}
		}
		if len(kept) > 0 {
			out += "?" + strings.Join(kept, "&")
		}
	}
	if forced != "" {
		out = forced + "::" + out
	}
	return out
}

// dir checks one [[managers.NAME.dirs]] entry.
func (c *checker) dir(where string, r *rawDir, schemes []string) *Dir {
	if r == nil {
		r = &rawDir{}
	}
	resolved, scheme, ok := c.entrySource(where, &r.rawFile, schemes)
	if !ok {
		return nil
	}
	if scheme == "http" || scheme == "https" {
		c.errorf("%s: source %s: http(s) cannot list a directory: use an s3 or gcs prefix, a git subdirectory (git::URL//dir) or a local directory, or list the files one by one in [[files]]",
			where, redact.URL(r.Source))
		return nil
	}
	p, where, ok := c.entryPath(where, "directory", &r.rawFile)
	if !ok {
		return nil
	}
	d := &Dir{
		Source:     resolved,
		Path:       path.Clean(strings.ReplaceAll(p, `\`, "/")),
		Include:    r.Include,
		Template:   r.Template == nil || *r.Template,
		Delims:     r.Delims,
		Headers:    r.Headers,
		MaxFiles:   DefaultMaxFiles,
		AllowEmpty: r.AllowEmpty,
	}
	for _, g := range r.Include {
		if err := checkGlob(g); err != nil {
			c.errorf("%s: include %q: %v", where, g, err)
		}
	}
	d.Format, d.Mode = c.entryKeys(where, scheme, &r.rawFile, d.Template)
	if r.MaxFiles != nil {
		if *r.MaxFiles < 1 {
			c.errorf("%s: max_files must be at least 1, not %d", where, *r.MaxFiles)
		} else {
			d.MaxFiles = *r.MaxFiles
		}
	}
	return d
}

// checkGlob refuses an include glob that path.Match cannot use, or that
// could never match a path inside the directory.
func checkGlob(g string) error {
	switch {
	case g == "":
		return errors.New("empty glob")
	case strings.HasPrefix(g, "/"):
		return errors.New("must be relative to the directory source")
	case strings.HasSuffix(g, "/"):
		return errors.New("matches files, not directories: write \"sub/*\"")
	}
	if _, err := path.Match(g, ""); err != nil {
		return fmt.Errorf("not a glob (%v): write it like \"*.yml\" or \"rules/*.yaml\"", err)
	}
	return nil
}

// dirOverlaps refuses a manager whose dirs' paths overlap each other or a
// file's path: each file under dest has one source.
// dirNums and fileNums hold the number in the configuration of each of
// m.Dirs and m.Files.
func (c *checker) dirOverlaps(where string, m *Manager, dirNums, fileNums []int) {
	for i, a := range m.Dirs {
		for j, b := range m.Dirs[i+1:] {
			if within(a.Path, b.Path) || within(b.Path, a.Path) {
				c.errorf("%s: dirs #%d (%s) and #%d (%s) overlap: give each its own path", where, dirNums[i], a.Path, dirNums[i+1+j], b.Path)
			}
		}
		for k, f := range m.Files {
			if within(f.Path, a.Path) || within(a.Path, f.Path) {
				c.errorf("%s: file #%d (%s) and dir #%d (%s) overlap: a file may not lie in a directory source's path", where, fileNums[k], f.Path, dirNums[i], a.Path)
			}
		}
	}
}

// verify checks a [managers.NAME.verify] table; the keys are parsed here,
// so that `butler check` finds a bad one.
func (c *checker) verify(where string, r *rawVerify) *Verify {
	v := &Verify{Suffix: DefaultSigSuffix}
	if r.Suffix != nil {
		v.Suffix = *r.Suffix
		if v.Suffix == "" || strings.ContainsAny(v.Suffix, "/?#&\\ \t\r\n") {
			c.errorf("%s: suffix %q must be a non-empty file name ending, like \".minisig\"", where, v.Suffix)
		}
	}
	if len(r.MinisignKeys) == 0 {
		c.errorf("%s: minisign_keys is required: list the trusted public keys, like [\"RWQ...\"] (the second line of minisign.pub)", where)
		return v
	}
	keys, err := verify.ParseKeys(r.MinisignKeys)
	if err != nil {
		for _, e := range unjoin(err) {
			c.errorf("%s: minisign_keys: %v", where, e)
		}
		return v
	}
	v.Keys = keys
	return v
}

// unjoin splits an errors.Join into its errors, so that each is reported
// on its own line.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
