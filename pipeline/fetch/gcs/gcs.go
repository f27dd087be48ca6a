// Package gcs reads one object from Google Cloud Storage into memory,
// conditionally, through the JSON API over net/http, for the fetch phase.
//
// Guarantees:
//   - With Conditions.Generation (ifGenerationNotMatch) or, without one,
//     Conditions.ETag (If-None-Match), an unchanged object costs one
//     request and no body: Get returns Status 304 and a nil Body.
//   - The body is read with a limit, whether or not the server announces a
//     length: a larger object is an error wrapping ErrTooLarge, and no more
//     than limit+1 bytes are read.
//   - Credentials are looked for only on the first Get that needs them:
//     Options.TokenSource, else GOOGLE_OAUTH_ACCESS_TOKEN, else Google's
//     Application Default Credentials. With STORAGE_EMULATOR_HOST set,
//     requests go to the emulator over http, unauthenticated.
//   - Errors say what happened ("gcs status 404: notFound: ...", "gcs: no
//     response: ..."), unwrap only to safe sentinels (ErrTooLarge,
//     fs.ErrNotExist, fs.ErrPermission, context.DeadlineExceeded,
//     context.Canceled), and never contain a credential.
//
// cloud.google.com/go/storage is not used: it links gRPC and its package
// init alone costs several milliseconds of every run.
package gcs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"

	"github.com/butler-sre/butler/pipeline/fetch/neterr"
	"github.com/butler-sre/butler/pipeline/fetch/object"
	"github.com/butler-sre/butler/pipeline/redact"
)

// ErrTooLarge marks an object larger than the limit given to Get (the
// same error as object.ErrTooLarge).
var ErrTooLarge = object.ErrTooLarge

// Scope is the OAuth scope butler asks for: reading objects.
const Scope = "https://www.googleapis.com/auth/devstorage.read_only"

// DefaultEndpoint is the JSON API's base URL.
const DefaultEndpoint = "https://storage.googleapis.com"

const (
	retryPause   = 250 * time.Millisecond
	maxErrorBody = 64 << 10
	maxErrorText = 300
)

// Options configure a Client. The zero value is usable.
type Options struct {
	// HTTPClient sends the requests (and those for tokens); nil means a
	// client of the Client's own whose connections are kept alive across
	// requests.
	HTTPClient *http.Client
	// Getenv reads the environment (STORAGE_EMULATOR_HOST,
	// GOOGLE_OAUTH_ACCESS_TOKEN); nil means os.Getenv. Application
	// Default Credentials read the process environment themselves
	// (GOOGLE_APPLICATION_CREDENTIALS).
	Getenv func(string) string
	// Endpoint is the JSON API's base URL; "" means
	// http://$STORAGE_EMULATOR_HOST when that is set (then without
	// authentication), else DefaultEndpoint.
	Endpoint string
	// TokenSource gives the access tokens; nil means
	// GOOGLE_OAUTH_ACCESS_TOKEN when set, else
	// google.DefaultTokenSource, made on the first Get that needs it.
	TokenSource oauth2.TokenSource
	// Attempts is how often a request is tried (429, 5xx, a connection
	// that failed); zero means 2.
	Attempts int
}

// Client reads objects. It is safe for concurrent use.
type Client struct {
	http     *http.Client
	getenv   func(string) string
	endpoint string
	anon     bool // the emulator: no credentials
	attempts int

	tsOnce sync.Once
	tsDone chan struct{}
	given  oauth2.TokenSource
	ts     oauth2.TokenSource // set before tsDone is closed
	tsErr  error
}

// New returns a Client for opts.
func New(opts Options) *Client {
	c := &Client{
		endpoint: strings.TrimSuffix(opts.Endpoint, "/"),
		given:    opts.TokenSource,
		tsDone:   make(chan struct{}),
	}
	c.http, c.getenv, c.attempts = object.Defaults(opts.HTTPClient, opts.Getenv, opts.Attempts)
	if c.endpoint == "" {
		c.endpoint = DefaultEndpoint
		if host := c.getenv("STORAGE_EMULATOR_HOST"); host != "" {
			c.anon = true
			c.endpoint = strings.TrimSuffix(host, "/")
			if !strings.HasPrefix(host, "http://") && !strings.HasPrefix(host, "https://") {
				c.endpoint = "http://" + c.endpoint
			}
		}
	}
	return c
}

// tokenSource makes the token source on first use, without holding a Get
// past its context.
func (c *Client) tokenSource(ctx context.Context) (oauth2.TokenSource, error) {
	c.tsOnce.Do(func() {
		go func() {
			defer close(c.tsDone)
			c.ts, c.tsErr = c.newTokenSource()
		}()
	})
	select {
	case <-c.tsDone:
		return c.ts, c.tsErr
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *Client) newTokenSource() (oauth2.TokenSource, error) {
	if c.given != nil {
		return c.given, nil
	}
	if tok := c.getenv("GOOGLE_OAUTH_ACCESS_TOKEN"); tok != "" {
		return oauth2.StaticTokenSource(&oauth2.Token{AccessToken: tok, TokenType: "Bearer"}), nil
	}
	// The context is kept by the token source for every refresh: it
	// carries the HTTP client, not the deadline of the first Get.
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, c.http)
	return google.DefaultTokenSource(ctx, Scope)
}

// token returns an access token within ctx.
func (c *Client) token(ctx context.Context) (*oauth2.Token, error) {
	ts, err := c.tokenSource(ctx)
	if err != nil {
		return nil, err
	}
	type result struct {
		tok *oauth2.Token
		err error
	}
	ch := make(chan result, 1)
	go func() {
		tok, err := ts.Token()
		ch <- result{tok, err}
	}()
	select {
	case r := <-ch:
		return r.tok, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// objectURL is the JSON API's media URL of loc, with its conditions.
func (c *Client) objectURL(loc Location, cond Conditions) string {
	q := url.Values{"alt": {"media"}}
	if loc.Generation != "" {
		q.Set("generation", loc.Generation)
	}
	if cond.Generation != "" {
		q.Set("ifGenerationNotMatch", cond.Generation)
	}
	return c.endpoint + "/storage/v1/b/" + url.PathEscape(loc.Bucket) + "/o/" + url.PathEscape(loc.Object) + "?" + q.Encode()
}

// Object is what a conditional GET gave (see object.Object).
type Object = object.Object

// Conditions make a Get conditional (see object.Conditions).
type Conditions = object.Conditions

// Get reads loc, conditionally: with cond.Generation set
// (ifGenerationNotMatch), else cond.ETag (If-None-Match), an unchanged
// object comes back as Status 304 and no body. The body is read with a
// limit of max bytes: a larger object is an error wrapping ErrTooLarge,
// whether or not a length was announced. The Object holds the status and
// the bytes received also when there is an error. ctx bounds the whole
// Get, token and body included.
func (c *Client) Get(ctx context.Context, loc Location, cond Conditions, max int64) (Object, error) {
	if max <= 0 {
		return Object{}, fmt.Errorf("gcs: size limit %d is not positive", max)
	}
	scrub := redact.NewScrubber()
	var auth string
	if !c.anon {
		tok, err := c.token(ctx)
		if err != nil {
			return Object{}, tokenError(ctx, err)
		}
		auth = tok.Type() + " " + tok.AccessToken
		scrub.Add(auth)
	}
	header := http.Header{}
	if auth != "" {
		header.Set("Authorization", auth)
	}
	if cond.Generation == "" && cond.ETag != "" {
		header.Set("If-None-Match", cond.ETag)
	}
	resp, err := c.send(ctx, c.objectURL(loc, cond), header)
	switch {
	case err != nil && neterr.IsTimeout(ctx, err):
		return Object{}, contextError(ctx, err)
	case err != nil:
		return Object{}, &failure{Msg: scrub.Scrub("gcs: " + neterr.Describe(err))}
	}
	defer func() { _ = resp.Body.Close() }()

	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotModified {
		return Object{Status: resp.StatusCode}, apiError(resp, scrub)
	}
	obj := Object{Status: resp.StatusCode, ETag: resp.Header.Get("ETag"), Generation: resp.Header.Get("X-Goog-Generation")}
	return object.ReadResponse(ctx, "gcs", obj, resp, max, scrub)
}

// List returns the names of the objects under the prefix loc.Object (read
// as a directory: a "/" is added when missing), relative to it, in the
// store's order. More than limit objects is an error: a directory source
// stops there.
func (c *Client) List(ctx context.Context, loc Location, limit int) ([]string, error) {
	list := object.NewListing("gcs", loc.Object, limit)
	scrub := redact.NewScrubber()
	header := http.Header{}
	if !c.anon {
		tok, err := c.token(ctx)
		if err != nil {
			return nil, tokenError(ctx, err)
		}
		auth := tok.Type() + " " + tok.AccessToken
		scrub.Add(auth)
		header.Set("Authorization", auth)
	}
	token := ""
	for {
		q := url.Values{"prefix": {list.Prefix}, "fields": {"items(name),nextPageToken"}}
		if token != "" {
			q.Set("pageToken", token)
		}
		resp, err := c.send(ctx, c.endpoint+"/storage/v1/b/"+url.PathEscape(loc.Bucket)+"/o?"+q.Encode(), header)
		switch {
		case err != nil && neterr.IsTimeout(ctx, err):
			return nil, contextError(ctx, err)
		case err != nil:
			return nil, &failure{Msg: scrub.Scrub("gcs: list: " + neterr.Describe(err))}
		}
		if resp.StatusCode != http.StatusOK {
			err := apiError(resp, scrub)
			_ = resp.Body.Close()
			return nil, err
		}
		var page struct {
			Items []struct {
				Name string `json:"name"`
			} `json:"items"`
			NextPageToken string `json:"nextPageToken"`
		}
		err = json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&page)
		_ = resp.Body.Close()
		if err != nil {
			return nil, &failure{Msg: scrub.Scrub("gcs: list: " + err.Error())}
		}
		for _, it := range page.Items {
			if err := list.Add(it.Name); err != nil {
				return nil, err
			}
		}
		if page.NextPageToken == "" {
			return list.Names, nil
		}
		token = page.NextPageToken
	}
}

// send GETs u, and once more (up to Attempts) after a 429, a 5xx or a
// failed connection.
func (c *Client) send(ctx context.Context, u string, header http.Header) (*http.Response, error) {
	for attempt := 1; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, err
		}
		req.Header = header.Clone()
		resp, err := c.http.Do(req)
		if attempt >= c.attempts || !retryable(ctx, resp, err) {
			return resp, err
		}
		if resp != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
			_ = resp.Body.Close()
		}
		if err := pause(ctx); err != nil {
			return nil, err
		}
	}
}

// retryable reports whether a request that gave resp or err is worth
// another try.
func retryable(ctx context.Context, resp *http.Response, err error) bool {
	if err != nil {
		return !neterr.IsTimeout(ctx, err)
	}
	return resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500
}

// pause waits before a retry, or until ctx ends.
func pause(ctx context.Context) error { return object.Pause(ctx, retryPause) }

// failure is the error Get returns (see object.Failure).
type failure = object.Failure

// apiError describes an error response: the status, the reason of the
// JSON API's error document ("notFound", "forbidden") and its message.
func apiError(resp *http.Response, scrub *redact.Scrubber) *failure {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var doc struct {
		Error struct {
			Message string `json:"message"`
			Errors  []struct {
				Reason string `json:"reason"`
			} `json:"errors"`
		} `json:"error"`
	}
	reason, message := "", ""
	if json.Unmarshal(data, &doc) == nil {
		message = doc.Error.Message
		if len(doc.Error.Errors) > 0 {
			reason = doc.Error.Errors[0].Reason
		}
	} else if line, _, _ := strings.Cut(strings.TrimSpace(string(data)), "\n"); line != http.StatusText(resp.StatusCode) {
		message = line // a plain text answer, as from an emulator or a proxy
	}
	if reason == "" {
		switch resp.StatusCode {
		case http.StatusNotFound:
			reason = "notFound"
		case http.StatusForbidden:
			reason = "forbidden"
		case http.StatusUnauthorized:
			reason = "unauthorized"
		}
	}
	msg := fmt.Sprintf("gcs status %d", resp.StatusCode)
	for _, s := range []string{reason, message} {
		if s = strings.TrimSpace(s); s != "" {
			if len(s) > maxErrorText {
				s = s[:maxErrorText] + "..."
			}
			msg += ": " + s
		}
	}
	var kind error
	switch resp.StatusCode {
	case http.StatusNotFound:
		kind = fs.ErrNotExist
	case http.StatusUnauthorized, http.StatusForbidden:
		kind = fs.ErrPermission
	}
	return &failure{Msg: scrub.Scrub(msg), Kind: kind}
}

// tokenError describes a failure to get an access token.
func tokenError(ctx context.Context, err error) *failure {
	if neterr.IsTimeout(ctx, err) {
		return contextError(ctx, err)
	}
	msg := "gcs: no Google credentials: "
	var re *oauth2.RetrieveError
	switch {
	case errors.As(err, &re) && re.Response != nil:
		msg += fmt.Sprintf("token endpoint status %d", re.Response.StatusCode)
		code, desc := re.ErrorCode, re.ErrorDescription
		if code == "" { // not every flow reads RFC 6749's error document
			var doc struct {
				Error       string `json:"error"`
				Description string `json:"error_description"`
			}
			if json.Unmarshal(re.Body, &doc) == nil {
				code, desc = doc.Error, doc.Description
			}
		}
		for _, s := range []string{code, desc} {
			if s != "" {
				msg += ": " + s
			}
		}
	default:
		line, _, _ := strings.Cut(neterr.Describe(err), "\n")
		msg += line
	}
	return &failure{Msg: msg}
}

// contextError describes a Get ended by its context or a timeout.
func contextError(ctx context.Context, err error) *failure {
	return object.ContextError(ctx, "gcs", err)
}
