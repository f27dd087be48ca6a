package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/butler-sre/butler/pipeline/fetch/neterr"
)

// getHTTP fetches an http(s) source straight into memory: one GET (never a
// HEAD, never a Range), conditional on req.If, the body read with the size
// limit and the checksum checked in one pass.
func (f *Fetcher) getHTTP(ctx context.Context, src string, req Request) (Result, error) {
	u, sum, err := parseSource(src, "invalid URL")
	if err != nil {
		return Result{}, err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return Result{}, errorf(nil, "invalid URL")
	}
	for k, v := range req.Headers {
		if strings.EqualFold(k, "Host") {
			hr.Host = v
			continue
		}
		hr.Header.Set(k, v)
	}
	switch {
	case req.If.ETag != "":
		hr.Header.Set("If-None-Match", req.If.ETag)
	case req.If.LastModified != "":
		hr.Header.Set("If-Modified-Since", req.If.LastModified)
	}
	resp, err := f.httpClient(req.Headers).Do(hr)
	if err != nil {
		var re *redirectError
		switch {
		case errors.As(err, &re) && resp != nil:
			return Result{Status: resp.StatusCode}, errorf(nil, "http status %d: %s", resp.StatusCode, re.msg)
		case errors.As(err, &re):
			return Result{}, errorf(nil, "%s", re.msg)
		case neterr.IsTimeout(ctx, err):
			return Result{}, contextError(ctx, err)
		}
		return Result{}, errorf(nil, "%s", neterr.Describe(err))
	}
	defer func() { _ = resp.Body.Close() }()
	res := Result{
		Status:     resp.StatusCode,
		Validators: Validators{ETag: resp.Header.Get("ETag"), LastModified: strongLastModified(resp.Header)},
	}
	switch {
	case resp.StatusCode == http.StatusNotModified && !req.If.IsZero():
		res.NotModified = true
		if res.Validators.IsZero() {
			res.Validators = req.If
		}
		res.Checksum = sum
		return res, nil
	case resp.StatusCode == http.StatusNotModified:
		return res, errorf(nil, "http status 304 Not Modified to a request without a condition")
	case resp.StatusCode != http.StatusOK:
		drain(resp.Body)
		return res, errorf(nil, "http status %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	case resp.ContentLength > f.max:
		return res, tooLarge(f.max)
	}
	body, err := readLimited(ctx, resp.Body, resp.ContentLength, f.max)
	res.Bytes = int64(len(body))
	if err != nil {
		if errors.Is(err, errTooLarge) {
			return res, tooLarge(f.max)
		}
		if neterr.IsTimeout(ctx, err) {
			return Result{Bytes: res.Bytes}, contextError(ctx, err)
		}
		return res, errorf(nil, "http status %d: reading the body: %s", resp.StatusCode, neterr.Describe(err))
	}
	if sum != nil {
		if err := sum.Verify(body); err != nil {
			return res, err
		}
	}
	res.Body = body
	return res, nil
}

// strongLastModified returns the response's Last-Modified when it can be
// trusted as a validator (RFC 9110 section 8.8.2.2): at least a second
// before the response's Date. A file changed twice within one second keeps
// its Last-Modified, so a date that recent could hide the second change from
// every later If-Modified-Since.
func strongLastModified(h http.Header) string {
	lm := h.Get("Last-Modified")
	if lm == "" {
		return ""
	}
	mod, err := http.ParseTime(lm)
	if err != nil {
		return ""
	}
	date, err := http.ParseTime(h.Get("Date"))
	if err != nil || date.Sub(mod) < time.Second {
		return ""
	}
	return lm
}

// readLimited reads a body of at most max bytes, sized for what was announced.
func readLimited(ctx context.Context, r io.Reader, announced, max int64) ([]byte, error) {
	size := 512
	if announced > 0 && announced <= max {
		size = int(announced) + 1 // +1: the read that sees EOF needs no new buffer
	}
	buf := make([]byte, 0, size)
	lr := io.LimitReader(r, max+1)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > max {
			return buf[:max], errTooLarge
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
		if ctx.Err() != nil {
			return buf, ctx.Err()
		}
	}
}

// drain reads a little of an error response so that its connection can be
// reused.
func drain(r io.Reader) {
	_, _ = io.Copy(io.Discard, io.LimitReader(r, 64<<10))
}

// httpClient returns a client for one fetch: the shared transport, and a
// redirect policy that refuses schemes that are not allowed, downgrades to
// http and more than maxRedirects, and drops the configured headers when a
// redirect leaves the host.
func (f *Fetcher) httpClient(headers map[string]string) *http.Client {
	next := f.client.CheckRedirect
	return &http.Client{
		Transport: f.client.Transport,
		Jar:       f.client.Jar,
		Timeout:   f.client.Timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxRedirects {
				return &redirectError{msg: fmt.Sprintf("stopped after %d redirects", maxRedirects)}
			}
			if !f.schemes[req.URL.Scheme] {
				return &redirectError{msg: fmt.Sprintf("redirect to scheme %q is not allowed", req.URL.Scheme)}
			}
			if via[len(via)-1].URL.Scheme == "https" && req.URL.Scheme != "https" {
				return &redirectError{msg: "redirect from https to http refused"}
			}
			if req.URL.Host != via[0].URL.Host {
				for k := range headers {
					req.Header.Del(k)
				}
			}
			if next != nil {
				return next(req, via)
			}
			return nil
		},
	}
}
