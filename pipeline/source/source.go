// Package source owns butler's source strings: the syntax users write in
// butler.toml ("s3::https://...", "git::https://host/repo//path?ref=x",
// "gs://bucket/object", "github.com/org/repo//path", "/abs/path",
// "rules.yml"), which is go-getter's, and the schemes butler knows. It reads
// that syntax itself: it links no getter, no SDK and runs no program.
//
// Guarantees:
//   - Scheme names every source by the one scheme that decides whether it is
//     allowed: https, http, s3, gcs, file or git. Every other form is an error
//     that says what to write instead, and no error carries the source's
//     credentials.
//   - Detection never touches the network (the bitbucket.org shorthand, which
//     go-getter resolves by asking bitbucket.org, is refused).
//   - Resolve turns relative file sources into absolute ones and leaves every
//     other source byte for byte as written.
//   - Parse splits a source into what a fetcher needs (the address, the git
//     ref, depth and key, the checksum, the object store's bucket and key),
//     keeping every query parameter that belongs to the server in the
//     address byte for byte.
package source

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/butler-sre/butler/pipeline/redact"
)

// known are the schemes butler can fetch from at all.
var known = []string{"https", "http", "s3", "gcs", "file", "git"}

// Known returns the schemes butler can fetch from, in a fixed order.
func Known() []string { return slices.Clone(known) }

// IsKnown reports whether butler can fetch from scheme.
func IsKnown(scheme string) bool { return slices.Contains(known, scheme) }

// DefaultSchemes returns the schemes allowed when [butler] schemes is not
// set: every known one but git, which runs an external program.
func DefaultSchemes() []string { return []string{"https", "http", "s3", "gcs", "file"} }

// SplitForced splits "s3::https://x" into "s3" and "https://x"; a source
// without a forced getter gives "" and itself. A forced getter is a name of
// ASCII letters and digits at the very start, then "::", then a rest that
// is not empty and holds no newline.
func SplitForced(src string) (getterName, rest string) {
	n := 0
	for n < len(src) && isAlnum(src[n]) {
		n++
	}
	if n == 0 || !strings.HasPrefix(src[n:], "::") {
		return "", src
	}
	rest = src[n+2:]
	if rest == "" || strings.IndexByte(rest, '\n') >= 0 {
		return "", src
	}
	return src[:n], rest
}

// isAlnum reports whether c is an ASCII letter or digit.
func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// normalizeGS turns the usual "gs://bucket/object" form, which go-getter v1
// does not know, into its "gcs::https://www.googleapis.com/..." form.
func normalizeGS(src string) string {
	if len(src) < 5 || !strings.EqualFold(src[:5], "gs://") {
		return src
	}
	bucket, object, _ := strings.Cut(src[5:], "/")
	if bucket == "" || object == "" {
		return src
	}
	return "gcs::https://www.googleapis.com/storage/v1/" + src[5:]
}

// urlErr is the reason of a url.Parse error, without the URL it quotes.
func urlErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Detect expands src to its full form and returns it (with its forced
// getter: "s3::https://...", "git::https://github.com/o/r.git//p") with the
// scheme butler sees. pwd is the directory for relative file paths (""
// refuses them).
func Detect(src, pwd string) (detected, scheme string, err error) {
	if strings.TrimSpace(src) == "" {
		return "", "", errors.New("empty source")
	}
	var urls urlMemo
	s := normalizeGS(src)
	_, written := SplitForced(s)
	if strings.HasPrefix(strings.ToLower(written), "bitbucket.org/") {
		return "", "", errors.New("bitbucket.org shorthand sources are not supported: write git::https://bitbucket.org/OWNER/REPO.git//PATH")
	}
	if strings.Contains(written, "://") {
		// A URL that does not parse is a mistake, never a relative file name.
		u, err := urls.parse(written)
		if err != nil {
			return "", "", fmt.Errorf("not a valid URL: %s", scrubbed(src, urlErr(err).Error()))
		}
		pass, _ := u.User.Password()
		if strings.Contains(u.User.Username()+pass, "@") {
			return "", "", errors.New("the user info of the URL holds a raw \"@\": write it as %40")
		}
	}
	detected, err = expand(s, pwd, &urls)
	if err != nil {
		msg := strings.ReplaceAll(err.Error(), s, redact.URL(s))
		return "", "", fmt.Errorf("unrecognised source: %s", scrubbed(src, msg))
	}
	name, rest := SplitForced(detected)
	base, sub := splitSubdir(rest)
	u, err := urls.parse(base)
	if err != nil {
		return "", "", fmt.Errorf("unrecognised source: %s", scrubbed(src, urlErr(err).Error()))
	}
	scheme = strings.ToLower(name)
	if scheme == "" {
		scheme = u.Scheme
	}
	if !IsKnown(scheme) {
		if scheme == "ssh" {
			return "", "", fmt.Errorf("unsupported source scheme %q (for a git repository write git::ssh://...)", scheme)
		}
		return "", "", fmt.Errorf("unsupported source scheme %q", scheme)
	}
	if sub != "" && scheme != "git" {
		return "", "", fmt.Errorf("the \"//\" subdirectory form is only supported for git sources, not %q", scheme)
	}
	return detected, scheme, nil
}

// scrubbed is msg without the credentials of src.
func scrubbed(src, msg string) string {
	return redact.NewScrubber(redact.Secrets(src)...).Scrub(msg)
}

// urlMemo parses URLs and keeps the last one it parsed: detection reads the
// same address up to three times. The URL it returns is shared between those
// reads, so callers must not change it.
type urlMemo struct {
	raw  string
	u    *url.URL
	err  error
	done bool
}

// parse is url.Parse(raw), parsed again only when raw is not the last one.
func (m *urlMemo) parse(raw string) (*url.URL, error) {
	if !m.done || raw != m.raw {
		m.raw, m.done = raw, true
		m.u, m.err = url.Parse(raw)
	}
	return m.u, m.err
}

// Scheme returns the scheme of src after detection and forced getters:
// "s3::https://..." is "s3", "git::https://..." and "github.com/a/b" are
// "git", "https://x" is "https", "gcs::..." and "gs://bucket/object" are
// "gcs", "/abs/path", "file:///x" and relative paths are "file". Other forms
// (hg, ftp, ssh without git::, bitbucket.org shorthand, the "//"
// subdirectory form outside git) are an error naming the problem. The error
// never contains the source's credentials.
func Scheme(src string) (string, error) {
	_, scheme, err := Detect(src, string(filepath.Separator))
	return scheme, err
}

// Resolve makes a relative file source ("rules.yml", "./x/y.yml",
// "file::rules.yml") absolute against baseDir (the config file's directory);
// every other source (URLs, forced getters other than file::, absolute
// paths, shorthands such as "github.com/a/b" or "bucket.s3.amazonaws.com/k")
// is returned unchanged. With baseDir "", a relative file source is an error.
func Resolve(src, baseDir string) (string, error) {
	if strings.TrimSpace(src) == "" {
		return "", errors.New("empty source")
	}
	name, rest := SplitForced(src)
	if name != "" && !strings.EqualFold(name, "file") {
		return src, nil
	}
	if filepath.IsAbs(rest) || strings.HasPrefix(strings.ToLower(rest), "bitbucket.org/") {
		return src, nil
	}
	if u, err := url.Parse(rest); err == nil && u.Scheme != "" {
		return src, nil
	}
	for _, d := range shorthands {
		if _, ok, err := d(rest); ok || err != nil {
			return src, nil
		}
	}
	if baseDir == "" {
		return "", errors.New("relative file source needs the configuration file's directory")
	}
	abs, err := filepath.Abs(baseDir)
	if err != nil {
		return "", fmt.Errorf("resolve source against %s: %w", baseDir, err)
	}
	resolved := filepath.Join(abs, rest)
	if name != "" {
		return name + "::" + resolved, nil
	}
	return resolved, nil
}

// IsAbsFile reports whether a file source is absolute ("/x", "file:///x").
func IsAbsFile(src string) bool {
	s := strings.TrimPrefix(src, "file::")
	return strings.HasPrefix(s, "/") || strings.HasPrefix(s, "file://")
}

// BaseName is the default path of a file: the last element of the source,
// without query or subdirectory markers; "" when there is none.
func BaseName(src string) string {
	if i := strings.Index(src, "::"); i >= 0 && !strings.Contains(src[:i], "/") {
		src = src[i+2:]
	}
	if i := strings.IndexAny(src, "?#"); i >= 0 {
		src = src[:i]
	}
	if u, err := url.Parse(src); err == nil && u.Scheme != "" {
		src = u.Path
	}
	b := path.Base(strings.ReplaceAll(src, "//", "/"))
	if b == "." || b == "/" {
		return ""
	}
	return b
}
