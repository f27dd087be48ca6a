package pipeline

import (
	"context"
	"io"
	"net/http"
	"strings"
)

// newHTTPRequest builds a request with the configured headers; a "Host" header
// sets the request's host, as net/http wants it.
func newHTTPRequest(ctx context.Context, method, url string, body io.Reader, headers map[string]string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return nil, err
	}
	for k, v := range headers {
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	return req, nil
}

// clientOrNoRedirects returns c, or when nil a client that does not follow
// redirects: a reload or notification endpoint that redirects is misconfigured,
// and following it could send the headers' credentials elsewhere.
func clientOrNoRedirects(c *http.Client) *http.Client {
	if c != nil {
		return c
	}
	return &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
