// Package source owns butler's source strings: the go-getter syntax users
// write in butler.toml ("s3::https://...", "git::https://host/repo//path?ref=x",
// "gs://bucket/object", "/abs/path", "rules.yml") and the schemes butler knows.
//
// Guarantees:
//   - Scheme names every source by the one scheme that decides whether it is
//     allowed: https, http, s3, gcs, file or git. Every other form is an error
//     that says what to write instead, and no error carries the source's
//     credentials.
//   - Detection never touches the network (the BitBucket detector, which asks
//     bitbucket.org, is not used).
//   - Resolve turns relative file sources into absolute ones and leaves every
//     other source byte for byte as written.
package source

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	getter "github.com/hashicorp/go-getter"

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

// forced matches go-getter's forced getter prefix ("s3::", "git::").
var forced = regexp.MustCompile(`^([A-Za-z0-9]+)::(.+)$`)

// SplitForced splits "s3::https://x" into "s3" and "https://x"; a source
// without a forced getter gives "" and itself.
func SplitForced(src string) (getterName, rest string) {
	if m := forced.FindStringSubmatch(src); m != nil {
		return m[1], m[2]
	}
	return "", src
}

// Detectors are the go-getter detectors butler uses: no BitBucket detector,
// which asks bitbucket.org over the network while merely detecting.
func Detectors() []getter.Detector {
	return []getter.Detector{
		new(getter.GitHubDetector),
		new(getter.GitLabDetector),
		new(getter.GitDetector),
		new(getter.S3Detector),
		new(getter.GCSDetector),
		new(getter.FileDetector),
	}
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

// Detect runs go-getter's detection on src and returns the detected source
// (with its forced getter, "s3::https://...") and the scheme butler sees. pwd
// is the directory for relative file paths ("" refuses them).
func Detect(src, pwd string) (detected, scheme string, err error) {
	if strings.TrimSpace(src) == "" {
		return "", "", errors.New("empty source")
	}
	scrub := redact.NewScrubber(redact.Secrets(src)...)
	s := normalizeGS(src)
	if _, rest := SplitForced(s); strings.HasPrefix(strings.ToLower(rest), "bitbucket.org/") {
		return "", "", errors.New("bitbucket.org shorthand sources are not supported: write git::https://bitbucket.org/OWNER/REPO.git//PATH")
	}
	if _, rest := SplitForced(s); strings.Contains(rest, "://") {
		// A URL that does not parse is a mistake, never a relative file name.
		u, err := url.Parse(rest)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return "", "", fmt.Errorf("not a valid URL: %s", scrub.Scrub(err.Error()))
		}
		pass, _ := u.User.Password()
		if strings.Contains(u.User.Username()+pass, "@") {
			return "", "", errors.New("the user info of the URL holds a raw \"@\": write it as %40")
		}
	}
	detected, err = getter.Detect(s, pwd, Detectors())
	if err != nil {
		msg := strings.ReplaceAll(err.Error(), s, redact.URL(s))
		return "", "", fmt.Errorf("unrecognised source: %s", scrub.Scrub(msg))
	}
	name, rest := SplitForced(detected)
	base, sub := getter.SourceDirSubdir(rest)
	u, err := url.Parse(base)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", "", fmt.Errorf("unrecognised source: %s", scrub.Scrub(err.Error()))
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

// Scheme returns the scheme go-getter uses for src after detection and
// forced getters: "s3::https://..." is "s3", "git::https://..." and
// "github.com/a/b" are "git", "https://x" is "https", "gcs::..." and
// "gs://bucket/object" are "gcs", "/abs/path", "file:///x" and relative paths
// are "file". Other forms (hg, ftp, ssh without git::, bitbucket.org
// shorthand, the "//" subdirectory form outside git) are an error naming the
// problem. The error never contains the source's credentials.
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
	ds := Detectors()
	for _, d := range ds[:len(ds)-1] { // every detector but the file one
		if _, ok, err := d.Detect(rest, ""); ok || err != nil {
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
// without query or go-getter subdirectory markers; "" when there is none.
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
