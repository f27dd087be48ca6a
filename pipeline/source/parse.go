package source

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"path"
	"strconv"
	"strings"

	"github.com/butler-sre/butler/pipeline/redact"
)

// Source is a parsed source string.
type Source struct {
	// Scheme is the one that decides whether the source is allowed: https,
	// http, s3, gcs, file or git.
	Scheme string
	// URL is the address without butler's own query parameters:
	//   - https, http: the URL to request, with every other query
	//     parameter as written (they belong to the server);
	//   - git: the repository URL (https, http, ssh, git or file), with
	//     the query parameters git does not read (ref, depth, sshkey) taken
	//     out;
	//   - s3, gcs: the endpoint URL with the bucket and object path, no
	//     query (its parameters are in Query); a gcs "#GENERATION" stays in
	//     URL.Fragment;
	//   - file: file:///abs, URL.Path the path to read.
	URL *url.URL
	// Subdir is the part after "//" (git): cleaned, slash-separated, never
	// absolute or above the repository; "" when there is none.
	Subdir string
	// Ref is git's ?ref= (a branch, a tag or a commit id); "" for the
	// remote's HEAD.
	Ref string
	// Depth is git's ?depth=; 0 means the fetcher's default.
	Depth int
	// SSHKey is git's ?sshkey=, base64-decoded: a private key.
	SSHKey []byte
	// Checksum is ?checksum=, nil when there is none.
	Checksum *Checksum
	// Query holds the query parameters that are not butler's own (checksum;
	// archive, which is ignored as go-getter did with decompression off;
	// and ref, depth and sshkey for git), decoded: s3's region,
	// aws_access_key_id, aws_access_key_secret, aws_access_token,
	// aws_profile and version, or an https server's own parameters (which
	// are also in URL).
	Query url.Values

	// Bucket and Object are the bucket and the object key of s3 and gcs
	// sources, the key without its leading "/". Object is "" only for a
	// whole bucket written with a final "/" (".../BUCKET/"), a directory
	// source.
	Bucket, Object string
	// Region is the AWS region of an s3 source: from the host name on
	// amazonaws.com, else ?region=, else us-east-1.
	Region string
	// Endpoint is, for an s3 source on a host that is not AWS's (an
	// S3-compatible store), its scheme://host[:port], to be addressed
	// path-style; "" on AWS, whose endpoint the SDK knows.
	Endpoint string
}

// awsSuffixes are the DNS suffixes of the AWS partitions: an s3 host
// ending in one of them is AWS's own.
var awsSuffixes = []string{
	"amazonaws.com", "amazonaws.com.cn", "amazonaws.eu", "c2s.ic.gov",
	"sc2s.sgov.gov", "cloud.adc-e.uk", "csp.hci.ic.gov",
}

// gitTransports are the repository URL schemes a git source may use: not
// ext:: and the other transports that run commands.
var gitTransports = []string{"https", "http", "ssh", "git", "file"}

// Parse parses src, a source already resolved (relative file paths made
// absolute with Resolve). Its errors never contain the source's
// credentials.
func Parse(src string) (*Source, error) {
	s, err := parse(src)
	if err != nil {
		scrub := redact.NewScrubber(redact.Secrets(src)...)
		return nil, errors.New(scrub.Scrub(err.Error()))
	}
	return s, nil
}

func parse(src string) (*Source, error) {
	detected, scheme, err := Detect(src, "")
	if err != nil {
		return nil, err
	}
	name, rest := SplitForced(detected)
	base, sub := splitSubdir(rest)
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("not a valid URL: %w", urlErr(err))
	}
	s := &Source{Scheme: scheme}
	name = strings.ToLower(name)
	if name != "" && name != u.Scheme && !forcedFits(name, u.Scheme) {
		return nil, fmt.Errorf("%s:: cannot fetch a %s URL", name, u.Scheme)
	}
	if sub != "" {
		if s.Subdir, err = cleanSubdir(sub); err != nil {
			return nil, err
		}
	}

	own := map[string]bool{"checksum": true, "archive": true}
	if scheme == "git" {
		own["ref"], own["depth"], own["sshkey"] = true, true, true
	}
	params, kept, err := splitQuery(u.RawQuery, own)
	if err != nil {
		return nil, err
	}
	s.Query = params.Values
	if v, ok := params.own["checksum"]; ok {
		if s.Checksum, err = parseChecksum(v); err != nil {
			return nil, err
		}
	}

	switch scheme {
	case "http", "https":
		if u.Host == "" {
			return nil, fmt.Errorf("%s URL without a host", scheme)
		}
		u.RawQuery, u.ForceQuery = kept, false
	case "git":
		if err := s.git(u, params.own); err != nil {
			return nil, err
		}
		u.RawQuery, u.ForceQuery = kept, false
	case "s3":
		u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = "", false, "", ""
		if err := s.s3(u); err != nil {
			return nil, err
		}
	case "gcs":
		u.RawQuery, u.ForceQuery = "", false
		if err := s.gcs(u); err != nil {
			return nil, err
		}
	case "file":
		p := u.Path
		if u.RawPath != "" { // a path written with escapes of its own is read as written
			p = u.RawPath
		}
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("file URL with the host %q: write file:///PATH", u.Host)
		}
		if !path.IsAbs(p) {
			return nil, errors.New("file source is not an absolute path")
		}
		u = &url.URL{Scheme: "file", Path: p}
	}
	s.URL = u
	return s, nil
}

// forcedFits reports whether a forced getter can fetch a URL of scheme.
func forcedFits(getter, scheme string) bool {
	switch getter {
	case "s3", "gcs":
		return scheme == "https" || scheme == "http"
	case "git":
		for _, t := range gitTransports {
			if scheme == t {
				return true
			}
		}
	}
	return false
}

// cleanSubdir cleans a "//" subdirectory; one that climbs out of the
// repository is an error.
func cleanSubdir(sub string) (string, error) {
	c := path.Clean(sub)
	for _, el := range strings.Split(c, "/") {
		if el == ".." {
			return "", errors.New("the subdirectory after \"//\" climbs out of the repository")
		}
	}
	c = strings.TrimLeft(c, "/")
	if c == "." {
		c = ""
	}
	return c, nil
}

// query is a decoded query: every parameter that is not butler's own in
// Values (the first value counts for butler's own, as with url.Values.Get).
type query struct {
	url.Values
	own map[string]string
}

// splitQuery splits a raw query into butler's own parameters (names in own)
// and the others, returning those others both decoded and as their raw
// text, in their order and escaping, for the address.
func splitQuery(raw string, own map[string]bool) (query, string, error) {
	q := query{Values: url.Values{}, own: map[string]string{}}
	if raw == "" {
		return q, "", nil
	}
	var kept []string
	for _, p := range strings.Split(raw, "&") {
		if p == "" {
			continue
		}
		k, v, _ := strings.Cut(p, "=")
		key, kerr := url.QueryUnescape(k)
		val, verr := url.QueryUnescape(v)
		if kerr == nil && own[key] {
			if verr != nil {
				return q, "", fmt.Errorf("query parameter %s is not valid URL escaping", key)
			}
			if _, dup := q.own[key]; !dup {
				q.own[key] = val
			}
			continue
		}
		kept = append(kept, p)
		if kerr == nil && verr == nil {
			q.Add(key, val)
		}
	}
	return q, strings.Join(kept, "&"), nil
}

// git reads the ref, depth and key of a git source.
func (s *Source) git(u *url.URL, own map[string]string) error {
	if !forcedFits("git", u.Scheme) {
		return fmt.Errorf("git cannot fetch a %s URL: use https, http, ssh, git or file", u.Scheme)
	}
	if u.Scheme != "file" && u.Host == "" {
		return fmt.Errorf("git %s URL without a host", u.Scheme)
	}
	s.Ref = own["ref"]
	if strings.HasPrefix(s.Ref, "-") || strings.ContainsFunc(s.Ref, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fmt.Errorf("ref %q is not a git ref", s.Ref)
	}
	if v, ok := own["depth"]; ok && v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fmt.Errorf("depth %q is not a number of commits", v)
		}
		s.Depth = n
	}
	if v := own["sshkey"]; v != "" {
		key, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			// A "+" that was not written %2B arrives as a space.
			key, err = base64.StdEncoding.DecodeString(strings.ReplaceAll(v, " ", "+"))
		}
		if err != nil {
			return errors.New("sshkey is not valid base64 (a key file's contents, base64-encoded, with + written as %2B)")
		}
		s.SSHKey = key
	}
	return nil
}

// s3 reads the region, bucket and key of an s3 source, path style
// (https://s3.REGION.amazonaws.com/BUCKET/KEY, s3-REGION, or an
// S3-compatible http(s)://HOST:PORT/BUCKET/KEY?region=R) or virtual-host
// style (https://BUCKET.s3.REGION.amazonaws.com/KEY, s3-REGION).
func (s *Source) s3(u *url.URL) error {
	invalid := errors.New("not a valid S3 URL: write s3::https://s3.REGION.amazonaws.com/BUCKET/KEY")
	host := strings.ToLower(u.Hostname())
	suffix := ""
	for _, sfx := range awsSuffixes {
		if strings.HasSuffix(host, "."+sfx) {
			suffix = sfx
			break
		}
	}
	p := strings.TrimPrefix(u.Path, "/")
	if suffix == "" {
		bucket, key, _ := strings.Cut(p, "/")
		if u.Host == "" {
			return invalid
		}
		s.Endpoint = u.Scheme + "://" + u.Host
		s.Bucket, s.Object = bucket, key
		s.Region = s.Query.Get("region")
	} else {
		labels := strings.Split(strings.TrimSuffix(host, "."+suffix), ".")
		i := -1
		for j, l := range labels {
			if l == "s3" || strings.HasPrefix(l, "s3-") {
				i = j
				break
			}
		}
		if i < 0 || len(labels)-i > 2 {
			return invalid
		}
		s.Region = strings.TrimPrefix(labels[i], "s3")
		s.Region = strings.TrimPrefix(s.Region, "-")
		if i+1 < len(labels) {
			if s.Region != "" {
				return invalid
			}
			s.Region = labels[i+1]
		}
		if i > 0 {
			s.Bucket, s.Object = strings.Join(labels[:i], "."), p
		} else {
			s.Bucket, s.Object, _ = strings.Cut(p, "/")
		}
	}
	if s.Region == "" {
		s.Region = "us-east-1"
	}
	if s.Bucket == "" || s.Object == "" && !strings.HasSuffix(u.Path, "/") {
		return invalid
	}
	return nil
}

// gcs reads the bucket and object of a gcs source:
// https://www.googleapis.com/storage/v1/BUCKET/OBJECT[#GENERATION].
func (s *Source) gcs(u *url.URL) error {
	invalid := errors.New("not a valid GCS URL: write gs://BUCKET/OBJECT or gcs::https://www.googleapis.com/storage/v1/BUCKET/OBJECT")
	if labels := strings.Split(u.Host, "."); len(labels) != 3 || !strings.HasSuffix(u.Host, ".googleapis.com") {
		return invalid
	}
	parts := strings.SplitN(u.Path, "/", 5)
	if len(parts) != 5 || parts[3] == "" || parts[4] == "" && !strings.HasSuffix(u.Path, "/") {
		return invalid
	}
	s.Bucket, s.Object = parts[3], parts[4]
	if u.Fragment != "" {
		if _, err := strconv.ParseInt(u.Fragment, 10, 64); err != nil {
			return fmt.Errorf("gcs generation %q is not a number", u.Fragment)
		}
	}
	return nil
}
