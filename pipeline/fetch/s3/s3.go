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
// The SDK's config package is not used (its package init alone costs a
// few milliseconds of every run): ~/.aws/config, SSO, assume-role and
// credential_process are not read; only static keys are.
package s3

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/hashicorp/go-cleanhttp"

	"github.com/butler-sre/butler/pipeline/fetch/neterr"
	"github.com/butler-sre/butler/pipeline/fetch/object"
	"github.com/butler-sre/butler/pipeline/redact"
)

// ErrTooLarge marks an object larger than the limit given to Get (the
// same error as object.ErrTooLarge).
var ErrTooLarge = object.ErrTooLarge

// Defaults of Options.
const (
	defaultAttempts    = 2
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
	// AWS_EC2_METADATA_SERVICE_ENDPOINT, else the SDK's default.
	IMDSEndpoint string
	// IMDSTimeout bounds each request for the instance role's
	// credentials; zero means 2s.
	IMDSTimeout time.Duration
	// Attempts is how often a request is tried (throttling, 5xx, a
	// connection that failed); zero means 2.
	Attempts int
}

// Client reads objects. It is safe for concurrent use.
type Client struct {
	api    *s3sdk.Client
	getenv func(string) string
	chain  *chain
}

// New returns a Client for opts.
func New(opts Options) *Client {
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Transport: cleanhttp.DefaultPooledTransport()}
	}
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	if opts.IMDSTimeout <= 0 {
		opts.IMDSTimeout = defaultIMDSTimeout
	}
	if opts.Attempts <= 0 {
		opts.Attempts = defaultAttempts
	}
	api := s3sdk.New(s3sdk.Options{
		HTTPClient: opts.HTTPClient,
		Region:     "us-east-1", // each request sets its own
		Retryer: retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = opts.Attempts
			so.MaxBackoff = maxBackoff
			so.RateLimiter = ratelimit.None // every file of a run may retry
		}),
		// What AWS_REQUEST_CHECKSUM_CALCULATION and
		// AWS_RESPONSE_CHECKSUM_VALIDATION=when_required set: no checksum
		// asked for, none expected, and no "Response has no supported
		// checksum" against servers that send none.
		RequestChecksumCalculation:                aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation:                aws.ResponseChecksumValidationWhenRequired,
		DisableLogOutputChecksumValidationSkipped: true,
		Logger: logging.Nop{},
	})
	return &Client{
		api:    api,
		getenv: opts.Getenv,
		chain:  newChain(opts.Getenv, opts.IMDSEndpoint, opts.IMDSTimeout),
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
	in := &s3sdk.GetObjectInput{Bucket: aws.String(loc.Bucket), Key: aws.String(loc.Key)}
	if loc.VersionID != "" {
		in.VersionId = aws.String(loc.VersionID)
	}
	if cond.ETag != "" {
		in.IfNoneMatch = aws.String(cond.ETag)
	}
	var used atomic.Pointer[aws.Credentials] // for scrubbing: whatever a server echoes
	out, err := c.api.GetObject(ctx, in, c.options(loc, &used))
	scrub := scrubber(loc, &used)
	if err != nil {
		return failed(ctx, err, scrub)
	}
	defer func() { _ = out.Body.Close() }()

	obj := Object{Status: http.StatusOK, ETag: aws.ToString(out.ETag)}
	if raw, ok := awsmiddleware.GetRawResponse(out.ResultMetadata).(*smithyhttp.Response); ok {
		obj.Status = raw.StatusCode
	}
	if out.ContentLength != nil && *out.ContentLength > max {
		return obj, tooLarge(obj.Status, max)
	}
	return object.ReadBody(ctx, "s3", obj, out.Body, max, scrub)
}

// options sets the region, the endpoint and the credentials of a request for
// loc, and notes in used the credentials it signs with.
func (c *Client) options(loc Location, used *atomic.Pointer[aws.Credentials]) func(*s3sdk.Options) {
	own := static(loc.keys)
	return func(o *s3sdk.Options) {
		o.Region = c.region(loc)
		if loc.Endpoint != "" {
			o.BaseEndpoint = aws.String(loc.Endpoint)
			o.UsePathStyle = true
		}
		o.Credentials = aws.CredentialsProviderFunc(func(ctx context.Context) (aws.Credentials, error) {
			var cr aws.Credentials
			var err error
			if own != nil {
				cr, err = own.Retrieve(ctx)
			} else {
				cr, err = c.chain.retrieve(ctx, loc.Profile)
			}
			if err == nil {
				used.Store(&cr)
			}
			return cr, err
		})
	}
}

// scrubber knows loc's secrets and the credentials a request used.
func scrubber(loc Location, used *atomic.Pointer[aws.Credentials]) *redact.Scrubber {
	scrub := redact.NewScrubber(loc.Secrets()...)
	if cr := used.Load(); cr != nil {
		scrub.Add(cr.AccessKeyID, cr.SecretAccessKey, cr.SessionToken)
	}
	return scrub
}

// List returns the keys under the prefix loc.Key (read as a directory: a
// "/" is added when missing), relative to it, in the store's order. More
// than limit keys is an error: a directory source stops there.
func (c *Client) List(ctx context.Context, loc Location, limit int) ([]string, error) {
	prefix := loc.Key
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	var used atomic.Pointer[aws.Credentials]
	in := &s3sdk.ListObjectsV2Input{Bucket: aws.String(loc.Bucket), Prefix: aws.String(prefix)}
	pages := s3sdk.NewListObjectsV2Paginator(c.api, in)
	var keys []string
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx, c.options(loc, &used))
		if err != nil {
			_, ferr := failed(ctx, err, scrubber(loc, &used))
			if ferr == nil {
				ferr = errors.New("s3: list: unexpected answer")
			}
			return nil, ferr
		}
		for _, o := range page.Contents {
			k := strings.TrimPrefix(aws.ToString(o.Key), prefix)
			if k == "" || strings.HasSuffix(k, "/") {
				continue // the prefix itself, or a "directory" marker
			}
			keys = append(keys, k)
			if len(keys) > limit {
				return nil, fmt.Errorf("s3: more than %d objects under %s", limit, prefix)
			}
		}
	}
	return keys, nil
}

// failure is the error Get returns (see object.Failure).
type failure = object.Failure

func tooLarge(status int, max int64) *failure { return object.TooLarge("s3", status, max) }

// failed turns an error of GetObject into Get's result: a 304 is not a
// failure.
func failed(ctx context.Context, err error, scrub *redact.Scrubber) (Object, error) {
	var re *awshttp.ResponseError
	status := 0
	if errors.As(err, &re) && re.Response != nil {
		status = re.HTTPStatusCode()
	}
	switch {
	case status == http.StatusNotModified:
		return Object{Status: status, ETag: re.Response.Header.Get("ETag")}, nil
	case status == 0 && neterr.IsTimeout(ctx, err):
		return Object{}, contextError(ctx, err)
	case status == 0:
		var ce *credError
		if errors.As(err, &ce) {
			return Object{}, &failure{Msg: scrub.Scrub("s3: " + ce.msg)}
		}
		return Object{}, &failure{Msg: scrub.Scrub("s3: " + neterr.Describe(err))}
	}
	msg := fmt.Sprintf("s3 status %d", status)
	var api smithy.APIError
	if errors.As(err, &api) {
		if code := api.ErrorCode(); code != "" {
			msg += ": " + code
		}
		if m := api.ErrorMessage(); m != "" {
			msg += ": " + m
		}
	}
	var kind error
	switch status {
	case http.StatusNotFound:
		kind = fs.ErrNotExist
	case http.StatusUnauthorized, http.StatusForbidden:
		kind = fs.ErrPermission
	}
	return Object{Status: status}, &failure{Msg: scrub.Scrub(msg), Kind: kind}
}

// contextError describes a Get ended by its context or a timeout.
func contextError(ctx context.Context, err error) *failure {
	return object.ContextError(ctx, "s3", err)
}
