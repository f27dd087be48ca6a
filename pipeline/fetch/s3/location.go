package s3

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/butler-sre/butler/pipeline/redact"
)

// Location is one S3 object as a source names it.
type Location struct {
	Bucket string
	Key    string
	// VersionID is the object version from "?version="; "" is the latest.
	VersionID string
	// Region is the region the host names ("s3.eu-west-1.amazonaws.com"),
	// else "?region=", else "us-east-1" for the global host
	// "s3.amazonaws.com"; "" lets the Client decide (AWS_REGION,
	// AWS_DEFAULT_REGION, else us-east-1).
	Region string
	// Endpoint is "scheme://host[:port]" of an S3-compatible server, which
	// is addressed path style; "" for AWS itself, whose endpoint the
	// Client derives from the region.
	Endpoint string
	// Profile is the shared credentials profile from "?aws_profile=";
	// "" means AWS_PROFILE, else "default".
	Profile string

	// keys are the credentials written in the URL, if any.
	keys keys
}

// keys are static credentials.
type keys struct{ id, secret, token string }

func (k keys) set() bool { return k.id != "" }

// String names the object as "s3://BUCKET/KEY" (with "?version=" when
// pinned), never with credentials, so that a Location is safe to log.
func (l Location) String() string {
	s := "s3://" + l.Bucket + "/" + l.Key
	if l.VersionID != "" {
		s += "?version=" + url.QueryEscape(l.VersionID)
	}
	return s
}

// GoString is String, so that %#v does not print the credentials either.
func (l Location) GoString() string { return l.String() }

// HasKeys reports whether the source carries its own credentials
// ("?aws_access_key_id=..."); then no other credentials are looked for.
func (l Location) HasKeys() bool { return l.keys.set() }

// Secrets returns the credentials written in the source, for a caller
// that scrubs its own texts.
func (l Location) Secrets() []string {
	var out []string
	for _, v := range []string{l.keys.id, l.keys.secret, l.keys.token} {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

// params are the query parameters of an S3 source.
var params = []string{"aws_access_key_id", "aws_access_key_secret", "aws_access_token", "aws_profile", "region", "version"}

// fetcherParams belong to the fetch phase, not to the store (go-getter's
// "?checksum=" and "?archive="), and are left alone.
var fetcherParams = []string{"checksum", "archive"}

// awsSuffixes are the DNS suffixes of the AWS partitions butler addresses
// by region; other hosts are S3-compatible servers.
var awsSuffixes = []string{".amazonaws.com", ".amazonaws.com.cn"}

// regionName is the shape of an AWS region ("eu-west-1", "us-gov-west-1",
// "cn-north-1").
var regionName = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)

// ParseLocation reads an S3 source (the URL after "s3::") in the forms
// go-getter knows:
//
//	https://s3.amazonaws.com/BUCKET/KEY               (us-east-1 unless ?region=)
//	https://s3-eu-west-1.amazonaws.com/BUCKET/KEY
//	https://s3.eu-west-1.amazonaws.com/BUCKET/KEY
//	https://BUCKET.s3.eu-west-1.amazonaws.com/KEY     (also BUCKET.s3-REGION, BUCKET.s3)
//	http://HOST:PORT/BUCKET/KEY?region=R&aws_access_key_id=ID&aws_access_key_secret=S[&aws_access_token=T]
//
// with "?version=" for an object version and "?aws_profile=" for a shared
// credentials profile. query holds the source's parameters; nil means
// u.Query(). An unknown parameter is an error (a misspelt key name must
// not silently send the request with other credentials); "checksum" and
// "archive" are the fetcher's and are ignored. Errors never contain the
// credentials.
func ParseLocation(u *url.URL, query url.Values) (Location, error) {
	if query == nil {
		query = u.Query()
	}
	var unknown []string
	for name := range query {
		if !slices.Contains(params, name) && !slices.Contains(fetcherParams, name) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return Location{}, fmt.Errorf("s3 source: unknown parameter %q (known: %s)", unknown[0], strings.Join(params, ", "))
	}
	for _, name := range params {
		if len(query[name]) > 1 {
			return Location{}, fmt.Errorf("s3 source: parameter %q given %d times", name, len(query[name]))
		}
	}
	if u.User != nil {
		return Location{}, fmt.Errorf("s3 source: user info in the URL is not used; give keys as aws_access_key_id and aws_access_key_secret")
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return Location{}, fmt.Errorf("s3 source: scheme %q: write s3::https://HOST/BUCKET/KEY or s3::http://HOST/BUCKET/KEY", u.Scheme)
	}
	if u.Host == "" {
		return Location{}, fmt.Errorf("s3 source: no host")
	}

	loc := Location{
		VersionID: query.Get("version"),
		Profile:   query.Get("aws_profile"),
		keys: keys{
			id:     query.Get("aws_access_key_id"),
			secret: query.Get("aws_access_key_secret"),
			token:  query.Get("aws_access_token"),
		},
	}
	if (loc.keys.secret != "" || loc.keys.token != "") && loc.keys.id == "" {
		return Location{}, fmt.Errorf("s3 source: aws_access_key_secret or aws_access_token without aws_access_key_id")
	}
	if loc.keys.id != "" && loc.keys.secret == "" {
		return Location{}, fmt.Errorf("s3 source: aws_access_key_id without aws_access_key_secret")
	}
	if loc.keys.set() && loc.Profile != "" {
		return Location{}, fmt.Errorf("s3 source: aws_profile and aws_access_key_id both given; use one")
	}

	host := strings.ToLower(u.Host)
	suffix := ""
	for _, s := range awsSuffixes {
		if strings.HasSuffix(host, s) {
			suffix = s
		}
	}
	var err error
	if suffix == "" {
		err = loc.parseCustom(u, query.Get("region"))
	} else {
		err = loc.parseAWS(strings.TrimSuffix(host, suffix), u.Path, query.Get("region"))
	}
	if err != nil {
		return Location{}, fmt.Errorf("s3 source %s: %w", redact.URL(u.Redacted()), err)
	}
	switch {
	case loc.Bucket == "":
		return Location{}, fmt.Errorf("s3 source %s: no bucket", redact.URL(u.Redacted()))
	case loc.Key == "" || strings.HasSuffix(loc.Key, "/"):
		return Location{}, fmt.Errorf("s3 source %s: names a bucket or prefix, not an object", redact.URL(u.Redacted()))
	}
	return loc, nil
}

// parseCustom reads the path-style form of an S3-compatible server.
func (l *Location) parseCustom(u *url.URL, region string) error {
	l.Endpoint = u.Scheme + "://" + u.Host
	l.Region = region
	l.Bucket, l.Key, _ = strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
	return nil
}

// parseAWS reads the AWS forms; labels is the host without its partition
// suffix: "s3", "s3-eu-west-1", "s3.eu-west-1", "bucket.s3.eu-west-1",
// "bucket.s3-eu-west-1", "bucket.s3". The S3 label is the last one that is
// "s3" or starts with "s3-" (a region never does, a bucket name may).
func (l *Location) parseAWS(labels, path, region string) error {
	parts := strings.Split(labels, ".")
	i := -1
	for j := len(parts) - 1; j >= 0; j-- {
		if parts[j] == "s3" || strings.HasPrefix(parts[j], "s3-") {
			i = j
			break
		}
	}
	if i < 0 {
		return fmt.Errorf("not an S3 host")
	}
	after := parts[i+1:]
	switch {
	case len(after) == 1 && parts[i] == "s3":
		l.Region = after[0]
	case len(after) == 0 && parts[i] == "s3-external-1": // the old name of us-east-1's endpoint
		l.Region = "us-east-1"
	case len(after) == 0 && parts[i] != "s3":
		l.Region = strings.TrimPrefix(parts[i], "s3-")
	case len(after) == 0: // the global endpoint
		l.Region = region
		if l.Region == "" {
			l.Region = "us-east-1"
		}
	default:
		return fmt.Errorf("host form not supported: use s3.REGION.amazonaws.com or BUCKET.s3.REGION.amazonaws.com")
	}
	if !regionName.MatchString(l.Region) {
		return fmt.Errorf("%q is not an AWS region", l.Region)
	}
	path = strings.TrimPrefix(path, "/")
	if i > 0 { // virtual-hosted style: the bucket is in the host
		l.Bucket = strings.Join(parts[:i], ".")
		l.Key = path
		return nil
	}
	l.Bucket, l.Key, _ = strings.Cut(path, "/")
	return nil
}
