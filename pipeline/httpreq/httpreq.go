// Package httpreq builds the HTTP requests butler sends to endpoints it does
// not fetch from: reloads, webhooks and heartbeats.
//
// Guarantees: configured headers are set as given (a "Host" header sets the
// request's host), and the default client never follows a redirect, so a
// misconfigured endpoint cannot send the headers' credentials elsewhere.
package httpreq

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// New builds a request with the configured headers.
func New(ctx context.Context, method, url string, body io.Reader, headers map[string]string) (*http.Request, error) {
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

// Client returns c, or when nil a client that does not follow redirects.
func Client(c *http.Client) *http.Client {
	if c != nil {
		return c
	}
	return &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Unwrap drops the *url.Error wrapper, whose text repeats the URL (and so any
// secret in its query).
func Unwrap(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
