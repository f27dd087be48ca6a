package redact

import (
	"net/url"
	"strings"
	"testing"
)

// fuzzURLSeeds are sources and texts of every form butler meets.
var fuzzURLSeeds = []string{
	"https://user:pass@cfg.example.com/p.yml",
	"https://user:p%40ss%2Fw@cfg.example.com/p.yml",
	"https://ghp_T0KEN@cfg.example.com/p.yml",
	"git::ssh://git@github.com/o/r.git//p.yml?sshkey=LS0tLS1CRUdJTi==&ref=main",
	"git@github.com:o/r.git?sshkey=LS0tLS1C",
	"http://u:abc@SECRET@h/x.yml",
	`Get "http://u:pw@h/x": refused`,
	"s3::https://s3.amazonaws.com/b/k.yml?aws_access_key_id=AKID&aws_access_key_secret=SE%2FCRET&region=eu-west-1",
	"https://h/p?token=a&Access_Token=b&X-Amz-Signature=c&sig=f&key=g&password=h&page=2#frag",
	"https://h/p.yml?checksum=file:https://u:pw@h/SUMS",
	"https://h/p?token&x=1",
	"/etc/butler/p.yml",
	"",
}

// fuzzUnique reports whether s holds a byte that is in none of others: then
// s can only appear where it was put, never be made of the others' bytes.
func fuzzUnique(s string, others ...string) bool {
	for i := 0; i < len(s); i++ {
		found := false
		for _, o := range others {
			if strings.IndexByte(o, s[i]) >= 0 {
				found = true
				break
			}
		}
		if !found {
			return true
		}
	}
	return false
}

// FuzzURL: URL never changes a string without "://" or "?", is idempotent,
// and masks a password put in user info and a value put in a secret query
// parameter wherever the rest of the text puts them.
func FuzzURL(f *testing.F) {
	for _, s := range fuzzURLSeeds {
		f.Add(s, "pa55word", "token", "host/p.yml")
	}
	f.Add("", "ghp_x", "aws_access_key_secret", "x")
	f.Add(`err: Get "`, "p@ss", "X-Amz-Signature", `/x": refused`)
	f.Fuzz(func(t *testing.T, s, secret, param, rest string) {
		got := URL(s)
		if !strings.Contains(s, "://") && !strings.Contains(s, "?") && got != s {
			t.Fatalf("URL(%q) = %q, want it unchanged", s, got)
		}
		if again := URL(got); again != got {
			t.Fatalf("URL is not idempotent: %q -> %q -> %q", s, got, again)
		}

		// A password in user info. It ends where an authority ends.
		if secret != "" && !strings.ContainsAny(secret, "/?#\"' \t\r\n<>") {
			prefix := strings.Map(func(r rune) rune {
				if strings.ContainsRune("?#&", r) {
					return -1
				}
				return r
			}, s)
			text := prefix + " https://user:" + secret + "@" + rest
			if fuzzUnique(secret, prefix, rest, "https://user:@", Mask) && strings.Contains(URL(text), secret) {
				t.Fatalf("URL(%q) = %q keeps the password %q", text, URL(text), secret)
			}
		}
		// A value in a secret query parameter; the prefix holds no query.
		if redactSecretParam(param) && !strings.ContainsAny(param, "=&#?") {
			prefix := strings.Map(func(r rune) rune {
				if strings.ContainsRune("?#&", r) {
					return -1
				}
				return r
			}, s)
			value := url.QueryEscape(secret)
			text := prefix + "?" + param + "=" + value + "&" + rest
			if value != "" && fuzzUnique(value, prefix, param, rest, "?=&", Mask) && strings.Contains(URL(text), value) {
				t.Fatalf("URL(%q) = %q keeps the value of %s", text, URL(text), param)
			}
		}
	})
}

// FuzzScrub: a secret added to a Scrubber never survives in what Scrub
// returns, whatever the text around it, other secrets included.
func FuzzScrub(f *testing.F) {
	for _, s := range fuzzURLSeeds {
		f.Add(s, "pass", "Bearer T0KEN")
	}
	f.Add("xxxxxyy", "xxxxxy", "")
	f.Add("abcabcd", "abcd", "bcab")
	f.Add("token=s3cr3t and s3cr3t again", "s3cr3t", "and s3")
	f.Fuzz(func(t *testing.T, text, secret, header string) {
		s := NewScrubber(secret, header)
		for _, in := range []string{text, text + secret + text, header + text + secret} {
			out := s.Scrub(in)
			for _, v := range fuzzKnown(secret, header) {
				if strings.Contains(out, v) {
					t.Fatalf("Scrub(%q) = %q keeps the secret %q", in, out, v)
				}
			}
		}
	})
}

// fuzzKnown returns the values a Scrubber given secrets must hide, as Add
// documents them.
func fuzzKnown(secrets ...string) []string {
	var out []string
	for _, v := range secrets {
		c := []string{v}
		if f := strings.Fields(v); len(f) > 1 {
			c = append(c, f[len(f)-1])
		}
		for _, v := range c {
			if len(v) >= redactMinLen && !strings.Contains(Mask, v) {
				out = append(out, v)
			}
		}
	}
	return out
}
