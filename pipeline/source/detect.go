package source

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"path/filepath"
	"regexp"
	"strings"
)

// A shorthand recognises one short form ("github.com/o/r",
// "git@host:o/r.git", "bucket.s3.amazonaws.com/k") written without its
// query and "//" subdirectory, and returns its full form. ok is false when
// src is not of that form; an error means it is, but malformed.
type shorthand func(src string) (full string, ok bool, err error)

// shorthands are tried in this order, before a source is taken for a file
// path. There is no bitbucket.org one: go-getter's asks bitbucket.org over
// the network.
var shorthands = []shorthand{
	func(src string) (string, bool, error) { return gitHost(src, "github.com", "GitHub") },
	func(src string) (string, bool, error) { return gitHost(src, "gitlab.com", "GitLab") },
	scpLike,
	s3Host,
	gcsHost,
}

// expand turns src into a source whose address is a URL with a scheme,
// as go-getter's detection does: an address that already has a scheme is
// left as written; a shorthand becomes its URL with the forced getter it
// implies; anything else is a file path, relative ones joined to pwd.
//
// The query and the "//" subdirectory are set aside while the shorthands
// look at the address and put back after it, so "github.com/o/r/p.yml?ref=x"
// keeps its ref (go-getter escapes that "?" into the path). urls parses the
// address, which Detect reads too.
func expand(src, pwd string, urls *urlMemo) (string, error) {
	force, rest := SplitForced(src)
	base, sub := splitSubdir(rest)
	if u, err := urls.parse(base); err == nil && u.Scheme != "" {
		return src, nil
	}
	addr, query, hasQuery := strings.Cut(base, "?")
	if addr == "" {
		return "", fmt.Errorf("invalid source string: %s", src)
	}
	full, ok, err := "", false, error(nil)
	for _, d := range shorthands {
		if full, ok, err = d(addr); ok || err != nil {
			break
		}
	}
	if err != nil {
		return "", err
	}
	if !ok {
		if full, err = filePath(addr, pwd); err != nil {
			return "", err
		}
	}
	implied, full := SplitForced(full)
	full, impliedSub := splitSubdir(full)
	switch {
	case impliedSub != "" && sub != "":
		sub = path.Join(impliedSub, sub)
	case impliedSub != "":
		sub = impliedSub
	}
	if sub != "" {
		u, err := url.Parse(full)
		if err != nil {
			return "", fmt.Errorf("error parsing URL: %w", urlErr(err))
		}
		u.Path += "//" + sub
		u.RawPath = u.Path // keep glob characters of the subdirectory unescaped
		full = u.String()
	}
	if hasQuery {
		full += "?" + query
	}
	switch {
	case force != "":
		full = force + "::" + full
	case implied != "":
		full = implied + "::" + full
	}
	return full, nil
}

// splitSubdir splits "proto://host/repo//sub/dir?q=1" into
// "proto://host/repo?q=1" and "sub/dir": the first "//" after the scheme
// and before the query starts the subdirectory, and the query goes back
// onto the address.
func splitSubdir(src string) (base, sub string) {
	stop := len(src)
	if i := strings.IndexByte(src, '?'); i >= 0 {
		stop = i
	}
	offset := 0
	if i := strings.Index(src[:stop], "://"); i >= 0 {
		offset = i + 3
	}
	i := strings.Index(src[offset:stop], "//")
	if i < 0 {
		return src, ""
	}
	i += offset
	base, sub = src[:i], src[i+2:]
	if q := strings.IndexByte(sub, '?'); q >= 0 {
		base += sub[q:]
		sub = sub[:q]
	}
	return base, sub
}

// gitHost expands "HOST/owner/repo[/path]" (github.com, gitlab.com) to
// "git::https://HOST/owner/repo.git[//path]".
func gitHost(src, host, name string) (string, bool, error) {
	if !strings.HasPrefix(src, host+"/") {
		return "", false, nil
	}
	parts := strings.Split(src, "/")
	if len(parts) < 3 || parts[1] == "" || parts[2] == "" {
		return "", false, fmt.Errorf("%s URLs should be %s/username/repo", name, host)
	}
	u, err := url.Parse("https://" + strings.Join(parts[:3], "/"))
	if err != nil {
		return "", true, fmt.Errorf("error parsing %s URL: %w", name, urlErr(err))
	}
	if !strings.HasSuffix(u.Path, ".git") {
		u.Path += ".git"
	}
	if len(parts) > 3 {
		u.Path += "//" + strings.Join(parts[3:], "/")
	}
	return "git::" + u.String(), true, nil
}

// scpPattern matches the scp-like address of ssh: [user@]host:path.
var scpPattern = regexp.MustCompile(`^(?:([^@]+)@)?([^:]+):/?(.+)$`)

// scpLike expands "git@host:owner/repo.git" to
// "git::ssh://git@host/owner/repo.git". Only the user "git" marks a git
// repository; "host:path" alone could be anything.
func scpLike(src string) (string, bool, error) {
	m := scpPattern.FindStringSubmatch(src)
	if m == nil || m[1] != "git" {
		return "", false, nil
	}
	u := &url.URL{Scheme: "ssh", User: url.User(m[1]), Host: m[2], Path: m[3]}
	return "git::" + u.String(), true, nil
}

// s3Host expands the S3 shorthands: "s3.amazonaws.com/bucket/key" and
// "s3-REGION.amazonaws.com/bucket/key" (path style), "s3.REGION.amazonaws.com/bucket/key",
// "bucket.s3.amazonaws.com/key", "bucket.s3-REGION.amazonaws.com/key" and
// "bucket.s3.REGION.amazonaws.com/key" (virtual-host style), all to the
// path-style "s3::https://ENDPOINT/bucket/key".
func s3Host(src string) (string, bool, error) {
	if !strings.Contains(src, ".amazonaws.com/") {
		return "", false, nil
	}
	host, key, _ := strings.Cut(src, "/")
	labels := strings.Split(host, ".")
	var endpoint, bucket string
	switch {
	case len(labels) == 3:
		endpoint = labels[0]
	case len(labels) == 4 && labels[0] == "s3":
		endpoint = "s3." + labels[1]
	case len(labels) == 4:
		bucket, endpoint = labels[0], labels[1]
	case len(labels) == 5 && labels[1] == "s3":
		bucket, endpoint = labels[0], "s3."+labels[2]
	default:
		return "", false, errors.New("URL is not a valid S3 URL")
	}
	if bucket != "" {
		key = bucket + "/" + key
	}
	u, err := url.Parse("https://" + endpoint + ".amazonaws.com/" + key)
	if err != nil {
		return "", false, fmt.Errorf("error parsing S3 URL: %w", urlErr(err))
	}
	return "s3::" + u.String(), true, nil
}

// gcsHost expands "www.googleapis.com/storage/v1/bucket/object" to
// "gcs::https://www.googleapis.com/storage/v1/bucket/object".
func gcsHost(src string) (string, bool, error) {
	if !strings.Contains(src, ".googleapis.com/") {
		return "", false, nil
	}
	parts := strings.Split(src, "/")
	if len(parts) < 5 {
		return "", false, errors.New("URL is not a valid GCS URL")
	}
	version, bucket, object := parts[2], parts[3], strings.Join(parts[4:], "/")
	u, err := url.Parse("https://www.googleapis.com/storage/" + version + "/" + bucket + "/" + object)
	if err != nil {
		return "", false, fmt.Errorf("error parsing GCS URL: %w", urlErr(err))
	}
	return "gcs::" + u.String(), true, nil
}

// filePath makes a file URL of a path, relative ones joined to pwd. The
// path is not escaped, as go-getter writes it: "?" starts its query.
func filePath(p, pwd string) (string, error) {
	if !filepath.IsAbs(p) {
		if pwd == "" {
			return "", errors.New("relative paths require the configuration file's directory")
		}
		p = filepath.Join(pwd, p)
	}
	return "file:///" + strings.TrimPrefix(filepath.ToSlash(p), "/"), nil
}
