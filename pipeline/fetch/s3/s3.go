// Package s3 reads one object from Amazon S3 or an S3-compatible server
// into memory, conditionally, for the fetch phase.
//
// Guarantees:
//   - With Conditions.ETag set, an unchanged object costs one request and
//     no body: Get returns Status 304 and a nil Body.
//   - The body is read with a limit, whether or not the server announces a
//     length: a larger object is an error wrapping ErrTooLarge, and no more
//     than limit+1 bytes are read.
//   - Credentials come from the source, else the environment, else the
//     shared credentials file, else the EC2 instance role. The instance
//     metadata service is asked only when nothing before it gave keys, at
//     most once per Client and profile when it has no role, and never for
//     longer than Options.IMDSTimeout.
//   - Errors say what happened ("s3 status 404: NoSuchKey: ...", "s3: no
//     response: ..."), unwrap only to safe sentinels (ErrTooLarge,
//     fs.ErrNotExist, fs.ErrPermission, context.DeadlineExceeded,
//     context.Canceled), and never contain a credential.
//
// The AWS SDK is not used (linking its S3 client costs memory and package
// init time on every run, also on runs without an S3 source): requests go
// over net/http, signed with Signature Version 4 (sigv4.go), and the
// instance role's credentials come from IMDSv2 (imds.go). Only static
// keys are read: ~/.aws/config, SSO, assume-role and credential_process
// are not.
package s3

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/butler-sre/butler/pipeline/fetch/neterr"
	"github.com/butler-sre/butler/pipeline/fetch/object"
	"github.com/butler-sre/butler/pipeline/redact"
)

// ErrTooLarge marks an object larger than the limit given to Get (the
// same error as object.ErrTooLarge).
var ErrTooLarge = object.ErrTooLarge

// Defaults of Options.
const (
	defaultIMDSTimeout = 2 * time.Second
	maxBackoff         = 500 * time.Millisecond
)

// Options configure a Client. The zero value is usable.
type Options struct {
	// HTTPClient sends the requests; nil means a client of the Client's
	// own whose connections are kept alive across requests.
	HTTPClient *http.Client
	// Getenv reads the environment; nil means os.Getenv.
	Getenv func(string) string
	// IMDSEndpoint is the EC2 instance metadata service; "" means
	// AWS_EC2_METADATA_SERVICE_ENDPOINT, else http://169.254.169.254.
	IMDSEndpoint string
	// IMDSTimeout bounds each request for the instance role's
	// credentials; zero means 2s.
	IMDSTimeout time.Duration
	// Attempts is how often a request is tried (throttling, 5xx, a
	// connection that failed); zero means 2.
	Attempts int
}

// Bounds of what is read, and of the clock.
const (
	maxErrorBody = 64 << 10
	maxListPage  = 16 << 20
	maxListKeys  = 1000 // S3's largest page
	// skewThreshold is how far the server's clock may be from the
	// signing time before a signature error is taken for clock skew.
	skewThreshold = 4 * time.Minute
)

// Client reads objects. It is safe for concurrent use.
type Client struct {
	http     *http.Client
	getenv   func(string) string
	chain    *chain
	attempts int
	// now is the clock requests are signed by; tests set it.
	now func() time.Time
	// skew is how far the servers' clock is ahead of now, in
	// nanoseconds, once a request was refused for clock skew.
	skew atomic.Int64
}

// New returns a Client for opts.
func New(opts Options) *Client {
	opts.HTTPClient, opts.Getenv, opts.Attempts = object.Defaults(opts.HTTPClient, opts.Getenv, opts.Attempts)
	if opts.IMDSTimeout <= 0 {
		opts.IMDSTimeout = defaultIMDSTimeout
	}
	return &Client{
		http:     opts.HTTPClient,
		getenv:   opts.Getenv,
		chain:    newChain(opts.Getenv, opts.IMDSEndpoint, opts.IMDSTimeout),
		attempts: opts.Attempts,
		now:      time.Now,
	}
}

// region is the region a request for loc is signed for.
func (c *Client) region(loc Location) string {
	for _, r := range []string{loc.Region, c.getenv("AWS_REGION"), c.getenv("AWS_DEFAULT_REGION")} {
		if r != "" {
			return r
		}
	}
	return "us-east-1"
}

// Object is what a conditional GET gave (see object.Object).
type Object = object.Object

// Conditions make a Get conditional (see object.Conditions).
type Conditions = object.Conditions

// Get reads loc, conditionally: with cond.ETag set (If-None-Match), an
// unchanged object comes back as Status 304 and no body. The body is read
// with a limit of max bytes: a larger object is an error wrapping
// ErrTooLarge, whether or not a length was announced. The Object holds
// the status and the bytes received also when there is an error. ctx
// bounds the whole Get, credentials and body included.
func (c *Client) Get(ctx context.Context, loc Location, cond Conditions, max int64) (Object, error) {
	if max <= 0 {
		return Object{}, fmt.Errorf("s3: size limit %d is not positive", max)
	}
	region := c.region(loc)
	u := objectURL(loc, region)
	if loc.VersionID != "" {
		u.RawQuery = "versionId=" + uriEncode(loc.VersionID, false)
	}
	header := http.Header{}
	if cond.ETag != "" {
		header.Set("If-None-Match", cond.ETag)
	}
	resp, scrub, err := c.send(ctx, loc, region, u, header)
	if err != nil {
		return Object{Status: statusOf(err)}, err
	}
	defer func() { _ = resp.Body.Close() }()

	obj := Object{Status: resp.StatusCode, ETag: resp.Header.Get("ETag")}
	return object.ReadResponse(ctx, "s3", obj, resp, max, scrub)
}

// List returns the keys under the prefix loc.Key (read as a directory: a
// "/" is added when missing), relative to it, in the store's order. More
// than limit keys is an error: a directory source stops there.
func (c *Client) List(ctx context.Context, loc Location, limit int) ([]string, error) {
	list := object.NewListing("s3", loc.Key, limit)
	region := c.region(loc)
	token := ""
	for {
		u := bucketURL(loc, region)
		q := "list-type=2&prefix=" + uriEncode(list.Prefix, false)
		if token != "" {
			q += "&continuation-token=" + uriEncode(token, false)
		}
		// Ask no more than the limit needs to be found exceeded.
		if want := limit + 1 - len(list.Names); want < maxListKeys {
			q += "&max-keys=" + strconv.Itoa(max(want, 1))
		}
		u.RawQuery = q
		page, err := c.listPage(ctx, loc, region, u)
		if err != nil {
			return nil, err
		}
		for _, o := range page.Contents {
			if err := list.Add(o.Key); err != nil {
				return nil, err
			}
		}
		if !page.IsTruncated || page.NextContinuationToken == "" {
			return list.Names, nil
		}
		if page.NextContinuationToken == token {
			return nil, fmt.Errorf("s3: list: the store gave the same continuation token twice")
		}
		token = page.NextContinuationToken
	}
}

// listPage is the part of a ListObjectsV2 answer (ListBucketResult) that
// List reads.
type listPage struct {
	IsTruncated           bool
	NextContinuationToken string
	Contents              []struct{ Key string }
}

// listPage GETs one page of a ListObjectsV2.
func (c *Client) listPage(ctx context.Context, loc Location, region string, u *url.URL) (listPage, error) {
	resp, scrub, err := c.send(ctx, loc, region, u, http.Header{})
	if err != nil {
		return listPage{}, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode == http.StatusNotModified {
		return listPage{}, errors.New("s3: list: unexpected answer")
	}
	var page listPage
	if err := xml.NewDecoder(io.LimitReader(resp.Body, maxListPage)).Decode(&page); err != nil {
		if neterr.IsTimeout(ctx, err) {
			return listPage{}, contextError(ctx, err)
		}
		return listPage{}, &failure{Msg: scrub.Scrub(fmt.Sprintf("s3 status %d: list: read the answer: %s", resp.StatusCode, neterr.Describe(err)))}
	}
	return page, nil
}

// send GETs u for loc, signed for region, with header; it is tried again
// (up to Options.Attempts in all) after throttling, a 5xx, a failed
// connection or a refusal for clock skew. It returns a response of status
// 2xx or 304, whose body the caller closes, and a scrubber that knows the
// credentials used; any other answer is an error.
func (c *Client) send(ctx context.Context, loc Location, region string, u *url.URL, header http.Header) (*http.Response, *redact.Scrubber, error) {
	scrub := redact.NewScrubber(loc.Secrets()...)
	for attempt := 1; ; attempt++ {
		k, err := c.credentials(ctx, loc)
		if err != nil {
			return nil, scrub, credFailure(ctx, err, scrub)
		}
		scrub.Add(k.id, k.secret, k.token)

		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return nil, scrub, &failure{Msg: scrub.Scrub("s3: " + err.Error())}
		}
		for name, values := range header {
			req.Header[name] = slices.Clone(values)
		}
		// Objects come as stored: no transparent gzip (which would also
		// hide the length).
		req.Header.Set("Accept-Encoding", "identity")
		signedAt := c.now().Add(time.Duration(c.skew.Load()))
		sign(req, k, region, signedAt)

		resp, err := c.http.Do(req)
		last := attempt >= c.attempts
		if err != nil {
			if !last && retryableError(ctx, err) {
				if err := pause(ctx); err != nil {
					return nil, scrub, contextError(ctx, err)
				}
				continue
			}
			if neterr.IsTimeout(ctx, err) {
				return nil, scrub, contextError(ctx, err)
			}
			return nil, scrub, &failure{Msg: scrub.Scrub("s3: " + neterr.Describe(err))}
		}
		if resp.StatusCode/100 == 2 || resp.StatusCode == http.StatusNotModified {
			return resp, scrub, nil
		}

		data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		_ = resp.Body.Close()
		code, message := errorDocument(resp.StatusCode, data)
		skewed := c.noteSkew(code, resp.Header.Get("Date"), signedAt)
		if !last && (retryableStatus(resp.StatusCode, code) || skewed) {
			if err := pause(ctx); err != nil {
				return nil, scrub, contextError(ctx, err)
			}
			continue
		}
		return nil, scrub, apiError(resp.StatusCode, code, message, scrub)
	}
}

// credentials are those of the source, else of the chain.
func (c *Client) credentials(ctx context.Context, loc Location) (keys, error) {
	if loc.keys.set() {
		return loc.keys, nil
	}
	return c.chain.retrieve(ctx, loc.Profile)
}

// objectURL is the URL of loc's object: path style on a custom endpoint,
// else on AWS virtual-host style when the bucket name allows it.
func objectURL(loc Location, region string) *url.URL {
	u := bucketURL(loc, region)
	key := "/" + loc.Key
	if u.Path != "/" {
		key = u.Path + key
	}
	u.Path, u.RawPath = key, uriEncode(key, true)
	return u
}

// bucketURL is the URL of loc's bucket, as ListObjectsV2 asks it:
// "scheme://host/BUCKET" in path style, "https://BUCKET.s3.REGION.SUFFIX/"
// in virtual-host style.
func bucketURL(loc Location, region string) *url.URL {
	if loc.Endpoint != "" {
		scheme, host, _ := strings.Cut(loc.Endpoint, "://")
		return &url.URL{Scheme: scheme, Host: host, Path: "/" + loc.Bucket, RawPath: "/" + uriEncode(loc.Bucket, false)}
	}
	suffix := dnsSuffix(region)
	if virtualHostable(loc.Bucket) {
		return &url.URL{Scheme: "https", Host: loc.Bucket + ".s3." + region + "." + suffix, Path: "/"}
	}
	return &url.URL{Scheme: "https", Host: "s3." + region + "." + suffix, Path: "/" + loc.Bucket, RawPath: "/" + uriEncode(loc.Bucket, false)}
}

// partitionSuffixes are the DNS suffixes of the AWS partitions other than
// the main one (amazonaws.com, also that of us-gov-*), by region prefix.
var partitionSuffixes = []struct{ prefix, suffix string }{
	{"cn-", "amazonaws.com.cn"},
	{"eusc-", "amazonaws.eu"},
	{"us-iso-", "c2s.ic.gov"},
	{"us-isob-", "sc2s.sgov.gov"},
	{"eu-isoe-", "cloud.adc-e.uk"},
	{"us-isof-", "csp.hci.ic.gov"},
}

// dnsSuffix is the domain of S3's endpoints in region.
func dnsSuffix(region string) string {
	for _, p := range partitionSuffixes {
		if strings.HasPrefix(region, p.prefix) {
			return p.suffix
		}
	}
	return "amazonaws.com"
}

// virtualHostable reports whether bucket can be a host label of its own
// (3 to 63 lower-case letters, digits and hyphens, not at either end, and
// not an IP address). Other names, with dots among them (which TLS
// certificates of *.s3.REGION.amazonaws.com do not cover), go path style.
func virtualHostable(bucket string) bool {
	if len(bucket) < 3 || len(bucket) > 63 || net.ParseIP(bucket) != nil {
		return false
	}
	for i := 0; i < len(bucket); i++ {
		c := bucket[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case c == '-' && i > 0 && i < len(bucket)-1:
		default:
			return false
		}
	}
	return true
}

// retryableError reports whether a request that failed with err, before
// any answer, is worth another try: not when ctx ended, nor for a name
// that does not exist.
func retryableError(ctx context.Context, err error) bool {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var dns *net.DNSError
	return !errors.As(err, &dns) || !dns.IsNotFound
}

// throttleCodes are the error codes of throttling and of requests that
// took too long, which may succeed when tried again, whatever the status.
var throttleCodes = []string{
	"SlowDown", "Throttling", "ThrottlingException", "RequestThrottled", "RequestLimitExceeded",
	"TooManyRequestsException", "BandwidthLimitExceeded", "RequestTimeout", "RequestTimeoutException",
}

// retryableStatus reports whether an error answer is worth another try:
// throttling (429, SlowDown, ...) and server errors (500, 502, 503, 504).
func retryableStatus(status int, code string) bool {
	switch status {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return slices.Contains(throttleCodes, code)
}

// skewCodes are the error codes a request signed by a clock far from the
// server's gets.
var skewCodes = []string{"RequestTimeTooSkewed", "SignatureDoesNotMatch", "InvalidSignatureException", "AuthFailure", "RequestExpired"}

// noteSkew reports whether an error answer with code was for clock skew: a
// skew code, and a Date from the server more than skewThreshold away from
// the signing time. Then later requests are signed by the server's clock.
func (c *Client) noteSkew(code, date string, signedAt time.Time) bool {
	if !slices.Contains(skewCodes, code) || date == "" {
		return false
	}
	server, err := http.ParseTime(date)
	if err != nil {
		return false
	}
	if d := server.Sub(signedAt); d > -skewThreshold && d < skewThreshold {
		return false
	}
	c.skew.Store(int64(server.Sub(c.now())))
	return true
}

// pause waits before another try, a random while of at most maxBackoff
// (at least half of it), or until ctx ends.
func pause(ctx context.Context) error {
	return object.Pause(ctx, maxBackoff/2+rand.N(maxBackoff/2))
}

// errorDocument reads the code and message of an S3 error answer
// (<Error><Code>NoSuchKey</Code><Message>...</Message></Error>); an answer
// without one (a HEAD, a proxy's page) gives the status text as both
// ("NotFound", "Not Found").
func errorDocument(status int, data []byte) (code, message string) {
	var doc struct {
		Code    string
		Message string
	}
	if len(bytes.TrimSpace(data)) > 0 && xml.Unmarshal(data, &doc) == nil && (doc.Code != "" || doc.Message != "") {
		return strings.TrimSpace(doc.Code), strings.TrimSpace(doc.Message)
	}
	text := http.StatusText(status)
	return strings.ReplaceAll(text, " ", ""), text
}

// failure is the error Get returns (see object.Failure).
type failure = object.Failure

// statusOf is the HTTP status an error of send came with, 0 for none.
func statusOf(err error) int {
	var f *failure
	if errors.As(err, &f) {
		return f.Status
	}
	return 0
}

// apiError describes an error answer: "s3 status 404: NoSuchKey: The
// specified key does not exist.", unwrapping to fs.ErrNotExist for 404
// and fs.ErrPermission for 401 and 403.
func apiError(status int, code, message string, scrub *redact.Scrubber) *failure {
	msg := fmt.Sprintf("s3 status %d", status)
	for _, s := range []string{code, message} {
		if s != "" {
			msg += ": " + s
		}
	}
	var kind error
	switch status {
	case http.StatusNotFound:
		kind = fs.ErrNotExist
	case http.StatusUnauthorized, http.StatusForbidden:
		kind = fs.ErrPermission
	}
	return &failure{Msg: scrub.Scrub(msg), Kind: kind, Status: status}
}

// credFailure describes a failure to find credentials.
func credFailure(ctx context.Context, err error, scrub *redact.Scrubber) *failure {
	var ce *credError
	switch {
	case neterr.IsTimeout(ctx, err):
		return contextError(ctx, err)
	case errors.As(err, &ce):
		return &failure{Msg: scrub.Scrub("s3: " + ce.msg)}
	}
	return &failure{Msg: scrub.Scrub("s3: " + neterr.Describe(err))}
}

// contextError describes a Get ended by its context or a timeout.
func contextError(ctx context.Context, err error) *failure {
	return object.ContextError(ctx, "s3", err)
}
