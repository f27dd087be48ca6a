package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// ReloadResult is what a reload attempt got. Status is the HTTP status of the
// last attempt; for a command, 200 when it exited 0 and 500 otherwise; 0 when
// there was no answer (timeout, connection refused, command that could not
// start). Detail is a short text for the log: the first 512 bytes of the
// response body or command output, trimmed, or what went wrong; it never holds
// header values. Attempts counts the requests made.
type ReloadResult struct {
	Status   int
	Detail   string
	Attempts int
}

// Reloader asks a manager to load its configuration again.
type Reloader interface {
	Reload(ctx context.Context) ReloadResult
}

const (
	reloadDetailMax      = 512
	reloadDefaultTimeout = 10 * time.Second
	reloadDefaultBackoff = time.Second
	reloadCommandTimeout = 30 * time.Second
	// reloadWaitDelay bounds the wait for a command's output pipes once the
	// command has exited or been killed: a background grandchild holding
	// them open must not hold up the run.
	reloadWaitDelay = time.Second
	// reloadDrainMax is how much of a response body is read past the detail,
	// so that the connection can be reused without reading a huge body.
	reloadDrainMax = 64 << 10
)

// HTTPReloader reloads a manager with an HTTP request, such as Prometheus'
// POST /-/reload. The request is tried again, up to Retries more times, only
// when there was no response or the status was 429, 502, 503 or 504: any
// other answer means the manager has judged the configuration. Redirects are
// not followed; a 3xx is returned as is.
type HTTPReloader struct {
	URL     string
	Method  string            // default POST
	Headers map[string]string // sent with each attempt; their values never reach Detail
	Timeout time.Duration     // per attempt; default 10s
	Retries int               // extra attempts after no response, 429, 502, 503, 504
	Backoff time.Duration     // wait between attempts; default 1s
	Client  *http.Client      // nil: a client without an overall timeout that does not follow redirects
}

// Reload sends the request until it gets an answer that is not worth retrying,
// runs out of retries, or ctx (the run's deadline) ends.
func (r *HTTPReloader) Reload(ctx context.Context) ReloadResult {
	backoff := r.Backoff
	if backoff <= 0 {
		backoff = reloadDefaultBackoff
	}
	var res ReloadResult
	for {
		res.Status, res.Detail = r.attempt(ctx)
		res.Attempts++
		if !reloadRetryable(res.Status) || res.Attempts > r.Retries || ctx.Err() != nil {
			return res
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			res.Detail = reloadTrim(reloadJoin("no more attempts, "+reloadCtxReason(ctx), res.Detail))
			return res
		case <-t.C:
		}
	}
}

// reloadRetryable reports whether an answer is worth another attempt.
func reloadRetryable(status int) bool {
	switch status {
	case 0, http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// attempt makes one request and returns its status and detail.
func (r *HTTPReloader) attempt(ctx context.Context) (int, string) {
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = reloadDefaultTimeout
	}
	method := r.Method
	if method == "" {
		method = http.MethodPost
	}
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := newHTTPRequest(actx, method, r.URL, nil, r.Headers)
	if err != nil {
		return 0, r.redact("bad request: " + reloadInnerError(err).Error())
	}
	resp, err := clientOrNoRedirects(r.Client).Do(req)
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return 0, "no response: " + reloadCtxReason(ctx)
		case actx.Err() != nil:
			return 0, fmt.Sprintf("no response within %s", timeout)
		}
		return 0, r.redact("no response: " + reloadInnerError(err).Error())
	}
	defer func() { _ = resp.Body.Close() }()
	head, err := io.ReadAll(io.LimitReader(resp.Body, reloadDetailMax))
	if err == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, reloadDrainMax))
	}
	return resp.StatusCode, r.redact(reloadTrim(string(head)))
}

// reloadInnerError drops the *url.Error wrapper, whose text repeats the URL
// (and so any secret in its query).
func reloadInnerError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// redact removes header values, and the URL's password and query values,
// from a detail: a server may echo a request back in its error page.
func (r *HTTPReloader) redact(s string) string {
	var secrets []string
	for _, v := range r.Headers {
		secrets = append(secrets, v)
		// Also the token of "Bearer TOKEN" when echoed alone.
		if f := strings.Fields(v); len(f) > 1 {
			secrets = append(secrets, f[1:]...)
		}
	}
	if u, err := url.Parse(r.URL); err == nil {
		if p, ok := u.User.Password(); ok {
			secrets = append(secrets, p)
		}
		for _, vs := range u.Query() {
			for _, v := range vs {
				if len(v) >= 8 { // long enough to be a token; short ones are ids, flags
					secrets = append(secrets, v)
				}
			}
		}
	}
	for _, v := range secrets {
		if v = strings.TrimSpace(v); v != "" {
			s = strings.ReplaceAll(s, v, "[redacted]")
		}
	}
	return s
}

// reloadCtxReason says why the run's context ended.
func reloadCtxReason(ctx context.Context) string {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return "run deadline reached"
	}
	return "run cancelled"
}

// reloadTrim cuts s to the detail size without splitting a character and
// trims surrounding space.
func reloadTrim(s string) string {
	if len(s) > reloadDetailMax {
		s = s[:reloadDetailMax]
	}
	return strings.TrimSpace(strings.ToValidUTF8(s, string(utf8.RuneError)))
}

// CommandReloader reloads a manager by running a command, such as
// ["systemctl", "reload", "nginx"]. Exit 0 counts as status 200, any other
// exit as 500, no exit within Timeout (or before the run's deadline) as 0, and
// so does a command that cannot be started.
//
// The command runs in its own process group with stdin from /dev/null; on a
// timeout the whole group is killed. Its output (stdout and stderr together)
// becomes the detail. A background process it leaves holding the output open
// does not hold up the run for more than a second after the command exits.
type CommandReloader struct {
	Argv    []string
	Timeout time.Duration // default 30s
}

// Reload runs the command once.
func (r *CommandReloader) Reload(ctx context.Context) ReloadResult {
	res := ReloadResult{Attempts: 1}
	if len(r.Argv) == 0 || r.Argv[0] == "" {
		res.Detail = "empty reload command"
		return res
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = reloadCommandTimeout
	}
	c := runCommand(ctx, r.Argv, "", timeout)
	switch {
	case c.StartErr != nil:
		res.Detail = fmt.Sprintf("cannot start %s: %v", r.Argv[0], c.StartErr)
	case c.OK:
		res.Status = http.StatusOK
		res.Detail = c.Output
	case c.TimedOut:
		res.Detail = reloadTrim(reloadJoin(c.Reason+"; killed", c.Output))
	default:
		res.Status = http.StatusInternalServerError
		res.Detail = reloadTrim(reloadJoin(c.Output, c.Err.Error()))
	}
	return res
}

// reloadInnerExecError drops the *exec.Error wrapper, whose text repeats the
// name already given.
func reloadInnerExecError(err error) error {
	var ee *exec.Error
	if errors.As(err, &ee) {
		return ee.Err
	}
	return err
}

// reloadJoin joins the non-empty parts of a detail.
func reloadJoin(parts ...string) string {
	var kept []string
	for _, p := range parts {
		if p != "" {
			kept = append(kept, p)
		}
	}
	return strings.Join(kept, ": ")
}

// reloadOutput keeps the first bytes written to it and discards the rest, so
// a chatty command neither blocks nor fills memory.
type reloadOutput struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write keeps what fits and reports everything written.
func (o *reloadOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if room := reloadDetailMax - o.buf.Len(); room > 0 {
		o.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// String returns what was kept.
func (o *reloadOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}
