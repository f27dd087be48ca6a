// Package object holds what the object store clients (s3, gcs) share:
// what a conditional GET of one object gave, the conditions that make it
// conditional, the error Get returns and the reading of a body. It
// imports only leaf packages, so both clients can use it.
package object

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-cleanhttp"

	"github.com/butler-sre/butler/pipeline/fetch/neterr"
	"github.com/butler-sre/butler/pipeline/redact"
)

// Object is what a conditional GET gave.
type Object struct {
	// Status is the storage API's HTTP status: 200, 304 (not modified),
	// 404, 403, ...; 0 when there was no response, or the run ended
	// before the whole body came.
	Status int
	// Body is the object's content; nil on 304 and on errors.
	Body []byte
	// ETag is the validator of the object returned, also on 304 when the
	// server sends it.
	ETag string
	// Generation is the store's object generation (gcs), also on 304 when
	// the server sends it; always empty for S3.
	Generation string
	// Bytes is how many body bytes were received, also on errors.
	Bytes int64
}

// Conditions make a Get conditional.
type Conditions struct {
	// ETag is the validator of the copy the caller holds, sent as
	// If-None-Match (by gcs only when there is no Generation).
	ETag string
	// Generation of the copy the caller holds, sent by gcs as
	// ifGenerationNotMatch; not used by S3.
	Generation string
}

// DefaultAttempts is how often a client tries a request when its options
// say 0.
const DefaultAttempts = 2

// Defaults returns the HTTP client, the reader of the environment and the
// number of attempts a client's options give, each unset one replaced by
// its default: a client whose connections are kept alive across requests,
// os.Getenv and DefaultAttempts.
func Defaults(hc *http.Client, getenv func(string) string, attempts int) (*http.Client, func(string) string, int) {
	if hc == nil {
		hc = &http.Client{Transport: cleanhttp.DefaultPooledTransport()}
	}
	if getenv == nil {
		getenv = os.Getenv
	}
	if attempts <= 0 {
		attempts = DefaultAttempts
	}
	return hc, getenv, attempts
}

// Pause waits d before another try, or until ctx ends; then it returns
// ctx's error.
func Pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ErrTooLarge marks an object larger than the limit given to Get.
var ErrTooLarge = errors.New("object larger than the size limit")

// Failure is the error a client's Get returns: a text scrubbed of
// credentials that unwraps only to a safe sentinel (nil for none).
type Failure struct {
	Msg  string
	Kind error
	// Status is the HTTP status of an error answer, 0 for none.
	Status int
}

func (e *Failure) Error() string { return e.Msg }
func (e *Failure) Unwrap() error { return e.Kind }

// TooLarge is the Failure of a response with status whose body was larger
// than max; store names the client in the text ("s3", "gcs").
func TooLarge(store string, status int, max int64) *Failure {
	return &Failure{Msg: fmt.Sprintf("%s status %d: larger than the limit of %d bytes", store, status, max), Kind: ErrTooLarge}
}

// ContextError describes a request of store ended by its context or a
// timeout.
func ContextError(ctx context.Context, store string, err error) *Failure {
	if errors.Is(ctx.Err(), context.Canceled) || (ctx.Err() == nil && errors.Is(err, context.Canceled)) {
		return &Failure{Msg: store + ": canceled", Kind: context.Canceled}
	}
	return &Failure{Msg: store + ": timed out", Kind: context.DeadlineExceeded}
}

// ReadBody reads r, the body of the response obj describes, with a limit
// of max bytes, and returns obj with Body and Bytes set. On an error obj
// keeps the bytes received, and Status 0 when the read timed out; the
// error's text names store ("s3", "gcs") and goes through scrub.
func ReadBody(ctx context.Context, store string, obj Object, r io.Reader, max int64, scrub *redact.Scrubber) (Object, error) {
	body, err := io.ReadAll(io.LimitReader(r, max+1))
	obj.Bytes = int64(len(body))
	switch {
	case err != nil && neterr.IsTimeout(ctx, err):
		obj.Status = 0
		return obj, ContextError(ctx, store, err)
	case err != nil:
		return obj, &Failure{Msg: scrub.Scrub(fmt.Sprintf("%s status %d: read body: %s", store, obj.Status, neterr.Describe(err)))}
	case obj.Bytes > max:
		return obj, TooLarge(store, obj.Status, max)
	}
	obj.Body = body
	return obj, nil
}

// ReadResponse finishes a conditional GET whose answer resp (a 200 or a
// 304) obj describes: a 304 comes back as obj, a length announced above
// max is an error wrapping ErrTooLarge, else the body is read as ReadBody
// reads it. The caller closes resp.Body.
func ReadResponse(ctx context.Context, store string, obj Object, resp *http.Response, max int64, scrub *redact.Scrubber) (Object, error) {
	switch {
	case resp.StatusCode == http.StatusNotModified:
		return obj, nil
	case resp.ContentLength > max:
		return obj, TooLarge(store, obj.Status, max)
	}
	return ReadBody(ctx, store, obj, resp.Body, max, scrub)
}

// Listing gathers, page by page, the names of the objects under a prefix
// read as a directory, relative to it, up to a limit.
type Listing struct {
	store  string
	limit  int
	Prefix string
	// Names are the names added so far, in the order they came.
	Names []string
}

// NewListing starts the listing of prefix (a "/" is added when missing)
// for store ("s3", "gcs"); more than limit names is an error.
func NewListing(store, prefix string, limit int) *Listing {
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return &Listing{store: store, limit: limit, Prefix: prefix}
}

// Add adds the object name of a page, passing over the prefix itself and
// "directory" markers; past the limit it is an error.
func (l *Listing) Add(name string) error {
	n := strings.TrimPrefix(name, l.Prefix)
	if n == "" || strings.HasSuffix(n, "/") {
		return nil
	}
	l.Names = append(l.Names, n)
	if len(l.Names) > l.limit {
		return fmt.Errorf("%s: more than %d objects under %s", l.store, l.limit, l.Prefix)
	}
	return nil
}
