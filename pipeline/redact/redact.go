package redact

import (
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// Mask replaces every secret butler hides.
const Mask = "xxxxx"

// redactMinLen is the shortest value a Scrubber replaces. Shorter values
// ("1", "on", "yes") are common words of any text; replacing them would
// mangle messages while a credential that short protects nothing anyway.
// URL passwords and secret query values are redacted structurally by
// URL whatever their length.
const redactMinLen = 4

// redactExactParams are query parameter names (lower case) whose values are
// secret whatever their context.
var redactExactParams = map[string]bool{
	"key":  true, // Google API keys
	"sig":  true, // Azure shared access signatures
	"auth": true,
	"pass": true,
	"pwd":  true,
}

// redactParamWords are substrings that make a query parameter name secret:
// token, access_token, aws_access_token, x-amz-security-token, secret,
// aws_access_key_secret, client_secret, password, signature,
// x-amz-signature, x-goog-signature, x-amz-credential, sshkey, api_key ...
var redactParamWords = []string{
	"token",
	"secret",
	"passw",
	"signature",
	"credential",
	"sshkey",
	"apikey",
	"api_key",
	"access_key",
	"private_key",
}

// schemeStart finds where a URL's authority starts, anywhere in a text, also
// inside query values and go-getter "s3::" / "git::" forms.
var schemeStart = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.\-]*://`)

// Userinfo returns, for every URL in text that has user info, the byte range
// [start, end) of its secret: the password, or the user name when there is no
// password (a token given as the user name), except the conventional "git"
// of ssh. The user info ends at the last "@" of the authority, so a raw "@"
// in a password never lets its end through.
func Userinfo(text string) [][2]int {
	if !strings.Contains(text, "@") || !strings.Contains(text, "://") {
		return nil
	}
	var out [][2]int
	for _, m := range schemeStart.FindAllStringIndex(text, -1) {
		start := m[1]
		end := strings.IndexAny(text[start:], "/?#\"' \t\r\n<>")
		if end < 0 {
			end = len(text) - start
		}
		auth := text[start : start+end]
		at := strings.LastIndexByte(auth, '@')
		if at <= 0 {
			continue
		}
		info := auth[:at]
		if c := strings.IndexByte(info, ':'); c >= 0 {
			if c+1 < at {
				out = append(out, [2]int{start + c + 1, start + at})
			}
		} else if info != "git" {
			out = append(out, [2]int{start, start + at})
		}
	}
	return out
}

// maskUserinfo replaces the secrets Userinfo finds with Mask.
func maskUserinfo(text string) string {
	spans := Userinfo(text)
	for i := len(spans) - 1; i >= 0; i-- {
		text = text[:spans[i][0]] + Mask + text[spans[i][1]:]
	}
	return text
}

// userinfoSecrets returns the secrets Userinfo finds in text.
func userinfoSecrets(text string) []string {
	var out []string
	for _, sp := range Userinfo(text) {
		out = append(out, text[sp[0]:sp[1]])
	}
	return out
}

// redactSecretParam reports whether a query parameter name carries a secret.
func redactSecretParam(name string) bool {
	n := strings.ToLower(name)
	if redactExactParams[n] {
		return true
	}
	for _, w := range redactParamWords {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// URL returns s with the password of URL user info (or the user name, when it
// stands alone: a token) and the values of secret query parameters replaced
// by "xxxxx". Parameter names are matched
// case-insensitively: exact names key, sig, auth, pass, pwd, and any name
// containing token, secret, passw, signature, credential, sshkey, apikey,
// api_key, access_key or private_key (so aws_access_key_id,
// aws_access_key_secret, aws_access_token, X-Amz-Signature,
// X-Amz-Credential and X-Amz-Security-Token are all covered).
//
// It works on go-getter forms ("s3::https://...", "git::ssh://...", the
// scp-like "git@host:repo?sshkey=...") and leaves everything else of s
// byte for byte as it was; a string without user info or query is
// returned unchanged.
func URL(s string) string {
	s = maskUserinfo(s)
	start, end := querySpan(s)
	if start < 0 {
		return s
	}
	params := strings.Split(s[start:end], "&")
	for i, p := range params {
		if name, _, ok := splitParam(p); ok && redactSecretParam(name) {
			params[i] = p[:strings.IndexByte(p, '=')+1] + Mask
		}
	}
	return s[:start] + strings.Join(params, "&") + s[end:]
}

// querySpan returns where the query of s starts (after the first "?") and
// ends (at a "#", or the end of s); start is -1 when s has no query.
func querySpan(s string) (start, end int) {
	q := strings.IndexByte(s, '?')
	if q < 0 {
		return -1, -1
	}
	end = len(s)
	if h := strings.IndexByte(s[q:], '#'); h >= 0 {
		end = q + h
	}
	return q + 1, end
}

// splitParam splits the query parameter p at its first "=": its name,
// unescaped (left as written when it does not unescape), and its value as
// written; ok is false when p has no "=".
func splitParam(p string) (name, value string, ok bool) {
	name, value, ok = strings.Cut(p, "=")
	if un, err := url.QueryUnescape(name); err == nil {
		name = un
	}
	return name, value, ok
}

// Secrets returns the secret substrings of a source: the password of its
// URL user info and the values of its secret query parameters (see
// URL), each in the form written in the source, decoded, and
// re-encoded for a query and for a path, so that any of them can be
// scrubbed from a text. The result holds no empty or duplicate values.
func Secrets(source string) []string {
	if !strings.ContainsAny(source, "@?") {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	add := func(v string) {
		forms := []string{v}
		if un, err := url.QueryUnescape(v); err == nil {
			forms = append(forms, un)
		}
		if un, err := url.PathUnescape(v); err == nil {
			forms = append(forms, un)
		}
		for _, f := range forms[1:] {
			forms = append(forms, url.QueryEscape(f), url.PathEscape(f))
		}
		for _, f := range forms {
			if f != "" && !seen[f] {
				seen[f] = true
				out = append(out, f)
			}
		}
	}
	for _, v := range userinfoSecrets(source) {
		add(v)
	}
	if start, end := querySpan(source); start >= 0 {
		for _, p := range strings.Split(source[start:end], "&") {
			name, value, ok := splitParam(p)
			if !ok {
				continue
			}
			if redactSecretParam(name) {
				add(value)
			}
			// A nested, escaped URL (checksum=file%3Ahttps%3A%2F%2Fu%3Ap%40h)
			// may hide a password of its own.
			if un, err := url.QueryUnescape(value); err == nil && un != value {
				for _, v := range userinfoSecrets(un) {
					add(v)
				}
			}
		}
	}
	return out
}

// Scrubber replaces known secrets in any text with "xxxxx". Values shorter
// than 4 characters are ignored (see Add). It also masks the password of
// any URL user info it meets, known or not. A Scrubber is safe for
// concurrent use.
type Scrubber struct {
	mu      sync.Mutex
	secrets map[string]bool
	sorted  []string // longest first, rebuilt after Add
}

// NewScrubber returns a Scrubber that knows the given secrets.
func NewScrubber(secrets ...string) *Scrubber {
	s := &Scrubber{secrets: map[string]bool{}}
	s.Add(secrets...)
	return s
}

// Add makes the Scrubber know more secrets. Empty values and values shorter
// than 4 characters are ignored: they are ordinary words of any message; so
// are values that are part of the mask itself ("xxxx"), which every masked
// text holds.
// A header value of several words ("Bearer TOKEN") is also known by its
// last word, which is the credential.
func (s *Scrubber) Add(secrets ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range secrets {
		candidates := []string{v}
		if f := strings.Fields(v); len(f) > 1 {
			candidates = append(candidates, f[len(f)-1])
		}
		for _, c := range candidates {
			if len(c) < redactMinLen || strings.Contains(Mask, c) || s.secrets[c] {
				continue
			}
			s.secrets[c] = true
			s.sorted = nil
		}
	}
}

// Scrub returns text with every known secret and every URL password
// replaced by "xxxxx".
func (s *Scrubber) Scrub(text string) string {
	s.mu.Lock()
	if s.sorted == nil {
		for v := range s.secrets {
			s.sorted = append(s.sorted, v)
		}
		sort.Slice(s.sorted, func(i, j int) bool {
			if len(s.sorted[i]) != len(s.sorted[j]) {
				return len(s.sorted[i]) > len(s.sorted[j])
			}
			return s.sorted[i] < s.sorted[j]
		})
	}
	sorted := s.sorted
	s.mu.Unlock()
	// A mask next to the text around it can spell a secret again
	// ("xxxxxy" in "xxxxxyy" becomes "xxxxxy"), and masking one secret can
	// complete another: repeat until nothing changes. Each pass that
	// changes something makes the text shorter or removes a byte other
	// than the mask's (Add keeps no secret made of the mask's letters
	// alone), so the passes end.
	for {
		before := text
		for _, v := range sorted {
			text = strings.ReplaceAll(text, v, Mask)
		}
		text = maskUserinfo(text)
		if text == before {
			return text
		}
	}
}
