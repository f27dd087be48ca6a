// Package neterr says what a network error was, for the fetch phase and its
// object store clients alike: without the URL (and so without the
// credentials) that net/http and the SDKs put around it.
package neterr

import (
	"context"
	"errors"
	"net"
	"net/url"
)

// Describe says what a transport-level error was: "no response: ..." for a
// failed lookup or dial, "connection failed: ..." for a broken connection,
// else the error without its *url.Error wrapper.
func Describe(err error) string {
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return "no response: " + dns.Error()
	}
	var op *net.OpError
	if errors.As(err, &op) {
		if op.Op == "dial" {
			return "no response: " + op.Error()
		}
		return "connection failed: " + op.Error()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// IsTimeout reports whether err is the end of ctx or a network timeout.
func IsTimeout(ctx context.Context, err error) bool {
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
