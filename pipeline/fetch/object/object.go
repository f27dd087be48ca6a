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
