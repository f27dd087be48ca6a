package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/butler-sre/butler/internal/smtptest"
	"github.com/butler-sre/butler/pipeline/config"
	"github.com/butler-sre/butler/pipeline/redact"
)

// TestEmailAuthEchoLeaksNothing talks to an SMTP server that refuses AUTH
// PLAIN and quotes the exchange back in its error reply, in the forms real
// servers and proxies use; the error Send returns (which the run logs) must
// hold none of them.
func TestEmailAuthEchoLeaksNothing(t *testing.T) {
	// The password's base64 has "+" and "/" (standard alphabet) where the
	// URL alphabet has "-" and "_", and its length needs padding.
	const (
		user     = "butler-mailer"
		password = "s3cr\xfbt>>?\"pa55"
	)
	fields := func(resp []byte) (string, string) {
		parts := bytes.Split(resp, []byte{0})
		if len(parts) != 3 {
			return "", ""
		}
		return string(parts[1]), string(parts[2])
	}
	std, raw := base64.StdEncoding.EncodeToString, base64.RawStdEncoding.EncodeToString
	url := base64.URLEncoding.EncodeToString
	tests := []struct {
		name string
		echo func(resp []byte) []string // the secrets the server quotes
	}{
		{name: "the initial response", echo: func(resp []byte) []string {
			return []string{std(resp)}
		}},
		{name: "the initial response without padding", echo: func(resp []byte) []string {
			return []string{raw(resp)}
		}},
		{name: "the initial response in the URL alphabet", echo: func(resp []byte) []string {
			return []string{url(resp)}
		}},
		{name: "user and password in base64", echo: func(resp []byte) []string {
			u, p := fields(resp)
			return []string{std([]byte(u)), std([]byte(p))}
		}},
		{name: "user and password in base64 without padding", echo: func(resp []byte) []string {
			u, p := fields(resp)
			return []string{raw([]byte(u)), raw([]byte(p))}
		}},
		{name: "the decoded response", echo: func(resp []byte) []string {
			_, p := fields(resp)
			return []string{p}
		}},
		{name: "identity, user and password re-encoded", echo: func(resp []byte) []string {
			u, p := fields(resp)
			return []string{std([]byte(u + "\x00" + u + "\x00" + p))}
		}},
		{name: "user:password re-encoded as for HTTP", echo: func(resp []byte) []string {
			u, p := fields(resp)
			return []string{std([]byte(u + ":" + p)), raw([]byte("x" + u + ":" + p))}
		}},
	}
	cert, pool := smtptest.Cert(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var quoted []string
			be := &smtptest.Backend{User: user, Pass: password, Echo: func(resp []byte) string {
				quoted = tt.echo(resp)
				return "authentication failed for " + strings.Join(quoted, " and ")
			}}
			port := smtptest.Serve(t, be, &cert)
			n := &Email{
				Config: config.Email{
					Host: "127.0.0.1", Port: port, Username: user, Password: password,
					From: "butler@example.com", To: []string{"oncall@example.com"}, Subject: "[butler]",
				},
				TLSConfig: &tls.Config{RootCAs: pool},
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := n.Send(ctx, testMessage())
			if err == nil {
				t.Fatal("Send() = nil, want the refused AUTH")
			}
			t.Logf("error: %v", err)
			if _, auths := be.Snapshot(); auths != 1 {
				t.Fatalf("server saw %d AUTH attempts, want 1", auths)
			}
			if len(quoted) == 0 {
				t.Fatal("the server quoted nothing")
			}
			for _, want := range []string{"auth", "535", "authentication failed for ", redact.Mask} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			for _, secret := range quoted {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q quotes the secret %q", err, secret)
				}
			}
		})
	}
}

// TestEmailSecrets checks that a password is known in every base64 text that
// contains it, whatever its byte offset there, without the text being known.
func TestEmailSecrets(t *testing.T) {
	const password = "correct horse battery"
	scrub := redact.NewScrubber(EmailSecrets(config.Email{Username: "u", Password: password})...)
	for _, prefix := range []string{"", "a", "ab", "abc", "user\x00", "\x00butler\x00"} {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawURLEncoding} {
			text := enc.EncodeToString([]byte(prefix + password + "!tail"))
			t.Run(strings.ReplaceAll(prefix, "\x00", "NUL")+"/"+text, func(t *testing.T) {
				got := scrub.Scrub("reply: " + text)
				if got == "reply: "+text {
					t.Fatalf("Scrub left %q as it was", text)
				}
				// At most the character on each side that mixes the
				// password's bits with its neighbours' may stay.
				masked := len(text) - (len(got) - len("reply: ") - len(redact.Mask))
				if strings.Count(got, redact.Mask) != 1 || masked < 4*len(password)/3-2 {
					t.Errorf("Scrub(%q) = %q: too much of the password is left", text, got)
				}
			})
		}
	}
}
