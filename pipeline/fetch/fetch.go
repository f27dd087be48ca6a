// Package fetch is the fetch phase: it downloads one source with butler's
// safety rules.
//
// Guarantees:
//   - Only the allowed schemes; no netrc, no decompression, no symlinks, no
//     X-Terraform-Get, no redirect to a scheme not allowed or from https to
//     http, and configured headers never follow a redirect to another host.
//   - max_file_size is enforced by butler itself, whether or not the server
//     announces a length.
//   - Bodies are read into memory, never onto an existing file; git
//     checkouts go to fresh directories under the staging area and are
//     removed by Close.
//   - Errors say what happened without the source's credentials or the
//     header values, and unwrap only to safe sentinels.
package fetch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/butler-sre/butler/pipeline/redact"
	"github.com/butler-sre/butler/pipeline/source"
)

// defaultMaxFileSize applies when Config.MaxFileSize is not
// positive: remote content is never read without a limit.
const defaultMaxFileSize = 10 << 20

// maxRedirects is how many HTTP redirects one fetch follows.
const maxRedirects = 10

// errTooLarge marks a fetch stopped by max_file_size.
var errTooLarge = errors.New("larger than max_file_size")

// Config is what the configuration gives the fetch phase.
type Config struct {
	// Schemes lists the allowed schemes: any of "https", "http", "s3",
	// "gcs", "file", "git".
	Schemes []string
	// MaxFileSize is the largest remote file in bytes; a larger one fails
	// its fetch. Zero or less means the default, 10 MiB.
	MaxFileSize int64
	// TempDir is where fresh per-fetch staging directories are made;
	// "" means os.TempDir().
	TempDir string
	// HTTPClient is used for HTTP(S) sources; nil means a client of the
	// Fetcher's own whose connections are kept alive across fetches. Its
	// transport, jar, timeout and redirect policy are kept.
	HTTPClient *http.Client
	// Concurrency is how many fetches run at once: the size of the pool of
	// idle connections kept per host. 0 means 8.
	Concurrency int
}

// Fetcher downloads remote sources with butler's safety
// rules: only allowed schemes, no netrc, no decompression, no symlinks, no
// X-Terraform-Get, never onto an existing file, and max_file_size enforced
// by butler itself. A Fetcher is safe for concurrent use.
type Fetcher struct {
	schemes map[string]bool
	max     int64
	tempDir string
	client  *http.Client // never modified after New
	stores  stores
	git     checkouts
}

// New returns a Fetcher for cfg.
func New(cfg Config) *Fetcher {
	f := &Fetcher{
		schemes: map[string]bool{},
		max:     cfg.MaxFileSize,
		tempDir: cfg.TempDir,
		client:  cfg.HTTPClient,
	}
	for _, s := range cfg.Schemes {
		f.schemes[strings.ToLower(s)] = true
	}
	if f.max <= 0 {
		f.max = defaultMaxFileSize
	}
	if f.client == nil {
		f.client = &http.Client{Transport: pooledTransport(cfg.Concurrency)}
	}
	return f
}

// pooledTransport keeps one idle connection per fetch that runs at once, so
// that a run of many files over one host reuses them instead of dialling
// anew (the default pool keeps two per host).
func pooledTransport(concurrency int) *http.Transport {
	if concurrency <= 0 {
		concurrency = 8
	}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          4 * concurrency,
		MaxIdleConnsPerHost:   concurrency,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// failure is the error Fetch returns. Its text is scrubbed of secrets;
// it unwraps only to a safe sentinel (context.DeadlineExceeded,
// context.Canceled, fs.ErrNotExist, fs.ErrPermission, errTooLarge),
// never to an error whose text could hold a credential.
type failure struct {
	msg  string
	kind error
}

func (e *failure) Error() string { return e.msg }
func (e *failure) Unwrap() error { return e.kind }

// errorf returns a failure of the given kind (nil for none).
func errorf(kind error, format string, args ...any) *failure {
	return &failure{msg: fmt.Sprintf(format, args...), kind: kind}
}

// redirectError is a redirect butler refused.
type redirectError struct{ msg string }

func (e *redirectError) Error() string { return e.msg }

// Fetch downloads one source (a go-getter source string; relative file paths
// were already made absolute by the caller with source.Resolve) into memory,
// unconditionally, and returns the bytes.
//
// status is the response code as butler_remote_status defines it: the HTTP
// status for http(s), also on errors; the storage API's HTTP status for s3
// and gcs; 200, 403 or 404 for file (403 also for a symlink or a file that
// is not regular, which butler refuses to read); 200 for git (404 or 403 for
// a missing or symlinked path inside the repository); 0 when there was no
// response at all: timeout (also one in the middle of a body), refused
// connection, DNS failure, a failed clone. A file larger than max_file_size
// keeps the status of its response.
//
// headers are sent with HTTP(S) requests only, and never to another host
// after a redirect. ctx carries the run deadline. The error says what
// happened ("http status 404 Not Found", "timed out", "larger than
// max_file_size 10MiB (10485760 bytes)", "scheme \"git\" is not allowed (add
// it to [butler] schemes)"); it does not repeat the source and never
// contains its credentials or the header values.
func (f *Fetcher) Fetch(ctx context.Context, src string, headers map[string]string) (data []byte, status int, err error) {
	res, err := f.Get(ctx, Request{Source: src, Headers: headers})
	return res.Body, res.Status, err
}

// Validators identify a version of a remote file, for conditional requests.
type Validators struct {
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
	Generation   string `json:"generation,omitempty"` // gcs
}

// IsZero reports whether there is nothing to make a request conditional on.
func (v Validators) IsZero() bool { return v == Validators{} }

// Request is one fetch.
type Request struct {
	Source  string            // resolved (see Fetch)
	Headers map[string]string // http(s) only
	// If holds the validators of the copy the caller keeps: the request is
	// made conditional on them (If-None-Match, If-Modified-Since, a
	// generation), and an unchanged source answers NotModified without a
	// body. Zero: an unconditional fetch.
	If Validators
}

// Result is what a fetch got.
type Result struct {
	Status      int    // as butler_remote_status defines it (see Fetch); 304 for NotModified
	Body        []byte // nil when NotModified
	NotModified bool   // the caller's copy is current: use it
	Validators  Validators
	Bytes       int64 // body bytes received
	// Checksum is the source's ?checksum=, when it has one and the body was
	// not sent (NotModified): the caller checks it against its own copy.
	Checksum *source.Checksum
}

// Get fetches one source as Fetch does, conditionally when req.If is set.
// A source that does not support conditions (file, git, or a store that
// ignores them) simply answers with the body.
func (f *Fetcher) Get(ctx context.Context, req Request) (Result, error) {
	res, err := f.get(ctx, req)
	if err == nil {
		return res, nil
	}
	scrub := redact.NewScrubber(redact.Secrets(req.Source)...)
	for _, v := range req.Headers {
		scrub.Add(v)
	}
	fe := &failure{msg: err.Error()}
	var inner *failure
	if errors.As(err, &inner) {
		fe.kind = inner.kind
	}
	fe.msg = scrub.Scrub(fe.msg)
	return Result{Status: res.Status}, fe
}

func (f *Fetcher) get(ctx context.Context, req Request) (Result, error) {
	// With no base directory, Resolve fails exactly on a relative file
	// source, which the caller should have resolved.
	if _, err := source.Resolve(req.Source, ""); err != nil {
		return Result{}, err
	}
	src, scheme, err := source.Detect(req.Source, "")
	if err != nil {
		return Result{}, err
	}
	if !f.schemes[scheme] {
		return Result{}, errorf(nil, "scheme %q is not allowed (add it to [butler] schemes)", scheme)
	}
	if err := ctx.Err(); err != nil {
		return Result{}, contextError(ctx, err)
	}
	switch scheme {
	case "http", "https":
		return f.getHTTP(ctx, src, req)
	case "file":
		return f.getFile(src)
	case "s3", "gcs":
		return f.getObject(ctx, src, scheme, req)
	}
	return f.getGit(ctx, req.Source)
}

// contextError describes a fetch ended by its context.
func contextError(ctx context.Context, err error) *failure {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return errorf(context.DeadlineExceeded, "timed out")
	}
	return errorf(context.Canceled, "canceled")
}

// tooLarge is the error for content larger than max bytes.
func tooLarge(max int64) *failure {
	size := fmt.Sprintf("%d bytes", max)
	for _, u := range []struct {
		name  string
		bytes int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if max >= u.bytes && max%u.bytes == 0 {
			size = fmt.Sprintf("%d%s (%d bytes)", max/u.bytes, u.name, max)
			break
		}
	}
	return errorf(errTooLarge, "larger than max_file_size %s", size)
}
