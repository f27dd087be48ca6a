// Package reload asks a manager to load its configuration again: an HTTP
// request (Prometheus' POST /-/reload) or a command (systemctl reload nginx).
//
// Guarantees:
//   - An HTTP reload is retried only when there was no response or the
//     status was 429, 502, 503 or 504; any other answer means the manager has
//     judged the configuration. Redirects are not followed.
//   - A command's exit 0 counts as 200, any other exit as 500, no exit in
//     time (or a program that cannot start) as 0, and its process group is
//     killed on a timeout.
//   - A result's Detail never holds a header value or a URL credential: a
//     server may echo a request back in its error page.
package reload

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/butler-sre/butler/pipeline/command"
	"github.com/butler-sre/butler/pipeline/httpreq"
	"github.com/butler-sre/butler/pipeline/redact"
)

// Result is what a reload attempt got. Status is the HTTP status of the last
// attempt; for a command, 200 when it exited 0 and 500 otherwise; 0 when there
// was no answer (timeout, connection refused, command that could not start).
// Detail is a short text for the log: the first 512 bytes of the response
// body or command output, trimmed, or what went wrong. Attempts counts the
// requests made.
type Result struct {
	Status   int
	Detail   string
	Attempts int
}

const (
	defaultTimeout = 10 * time.Second
	defaultBackoff = time.Second
	// drainMax is how much of a response body is read past the detail, so
	// that the connection can be reused without reading a huge body.
	drainMax = 64 << 10
	// queryTokenLen is the length from which any query value of a reload URL
	// is taken for a token and kept out of details; shorter ones are ids.
	queryTokenLen = 8
)

// HTTP reloads a manager with an HTTP request.
type HTTP struct {
	URL     string
	Method  string            // default POST
	Headers map[string]string // sent with each attempt
	Timeout time.Duration     // per attempt; default 10s
	Retries int               // extra attempts after no response, 429, 502, 503, 504
	Backoff time.Duration     // wait between attempts; default 1s
	Client  *http.Client      // nil: a client without an overall timeout that does not follow redirects
}

// Reload sends the request until it gets an answer that is not worth retrying,
// runs out of retries, or ctx (the run's deadline) ends.
func (r *HTTP) Reload(ctx context.Context) Result {
	backoff := r.Backoff
	if backoff <= 0 {
		backoff = defaultBackoff
	}
	scrub := r.scrubber()
	var res Result
	for {
		res.Status, res.Detail = r.attempt(ctx)
		res.Detail = scrub.Scrub(res.Detail)
		res.Attempts++
		if !retryable(res.Status) || res.Attempts > r.Retries || ctx.Err() != nil {
			return res
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			res.Detail = command.Trim(command.Join("no more attempts, "+command.EndReason(ctx), res.Detail))
			return res
		case <-t.C:
		}
	}
}

// retryable reports whether an answer is worth another attempt.
func retryable(status int) bool {
	switch status {
	case 0, http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// attempt makes one request and returns its status and detail.
func (r *HTTP) attempt(ctx context.Context) (int, string) {
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	method := r.Method
	if method == "" {
		method = http.MethodPost
	}
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := httpreq.New(actx, method, r.URL, nil, r.Headers)
	if err != nil {
		return 0, "bad request: " + httpreq.Unwrap(err).Error()
	}
	resp, err := httpreq.Client(r.Client).Do(req)
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return 0, "no response: " + command.EndReason(ctx)
		case actx.Err() != nil:
			return 0, fmt.Sprintf("no response within %s", timeout)
		}
		return 0, "no response: " + httpreq.Unwrap(err).Error()
	}
	defer func() { _ = resp.Body.Close() }()
	head, err := io.ReadAll(io.LimitReader(resp.Body, command.DetailMax))
	if err == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainMax))
	}
	return resp.StatusCode, command.Trim(string(head))
}

// scrubber knows the header values and the URL's secrets, the basic-auth
// credential net/http makes of the URL's user info, and any query value long
// enough to be a token, both as written in the URL (a server echoes the
// request line) and decoded.
func (r *HTTP) scrubber() *redact.Scrubber {
	s := redact.NewScrubber(redact.Secrets(r.URL)...)
	for _, v := range r.Headers {
		s.Add(v)
	}
	u, err := url.Parse(r.URL)
	if err != nil {
		return s
	}
	if p, ok := u.User.Password(); ok {
		s.Add(base64.StdEncoding.EncodeToString([]byte(u.User.Username() + ":" + p)))
	}
	for pair := range strings.SplitSeq(u.RawQuery, "&") {
		_, raw, _ := strings.Cut(pair, "=")
		v, err := url.QueryUnescape(raw)
		if err != nil {
			v = raw
		}
		if len(v) >= queryTokenLen {
			s.Add(v, raw)
		}
	}
	return s
}

// Command reloads a manager by running a command, such as
// ["systemctl", "reload", "nginx"]: see package command for how it runs.
type Command struct {
	Argv    []string
	Timeout time.Duration // default 10s
}

// Reload runs the command once.
func (r *Command) Reload(ctx context.Context) Result {
	res := Result{Attempts: 1}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	c := command.Run(ctx, r.Argv, "", timeout)
	switch {
	case c.StartErr != nil:
		name := "the reload command"
		if len(r.Argv) > 0 && r.Argv[0] != "" {
			name = r.Argv[0]
		}
		res.Detail = fmt.Sprintf("cannot start %s: %v", name, c.StartErr)
	case c.OK:
		res.Status = http.StatusOK
		res.Detail = c.Output
	case c.TimedOut:
		res.Detail = command.Trim(command.Join(c.Reason+"; killed", c.Output))
	default:
		res.Status = http.StatusInternalServerError
		res.Detail = command.Trim(command.Join(c.Output, c.Err.Error()))
	}
	return res
}
