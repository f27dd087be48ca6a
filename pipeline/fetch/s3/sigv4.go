package s3

// AWS Signature Version 4 for the requests of this package, after
// https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html
// ("Signature Calculations for the Authorization Header: Transferring
// Payload in a Single Chunk").
//
// Every request here is a GET without a body, so the payload hash is that
// of the empty string, sent as X-Amz-Content-Sha256. S3 also accepts the
// literal "UNSIGNED-PAYLOAD" for an empty body, but the empty-body hash is
// a constant that costs nothing, is what the SDK sent for these requests,
// and leaves no part of the request unsigned, which matters on the plain
// http endpoints S3-compatible servers are often reached on.

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

const (
	sigAlgorithm = "AWS4-HMAC-SHA256"
	sigService   = "s3"
	sigTerminal  = "aws4_request"
	// amzDateFormat is the ISO 8601 basic form of X-Amz-Date.
	amzDateFormat = "20060102T150405Z"
	// emptyPayloadHash is the hex SHA-256 of the empty string.
	emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)

// unsignedHeaders are sent but not signed: Authorization holds the
// signature, and the others may be changed or added on the way (the HTTP
// client sets User-Agent itself) without making the request another.
var unsignedHeaders = []string{"authorization", "user-agent", "x-amzn-trace-id", "expect", "transfer-encoding"}

// sign signs req, a request without a body, for S3 in region with k at
// time now: it sets X-Amz-Date, X-Amz-Content-Sha256,
// X-Amz-Security-Token (when k has a session token) and Authorization,
// and writes the query in its canonical order. Every header of req but
// unsignedHeaders is signed, and Host: set the headers before signing,
// and send the request as it is.
func sign(req *http.Request, k keys, region string, now time.Time) {
	amzDate := now.UTC().Format(amzDateFormat)
	day := amzDate[:8] // YYYYMMDD, the date of the credential scope

	req.Header.Set("X-Amz-Date", amzDate)
	req.Header.Set("X-Amz-Content-Sha256", emptyPayloadHash)
	if k.token != "" {
		req.Header.Set("X-Amz-Security-Token", k.token)
	} else {
		req.Header.Del("X-Amz-Security-Token")
	}
	// The Host header the server sees must be the one signed: without
	// the port a scheme implies, as clients write it.
	req.Host = signedHost(req)

	// The query is sent in its canonical form, so what is sent is what is
	// signed, byte for byte.
	req.URL.RawQuery = canonicalQuery(req.URL)

	names, headers := canonicalHeaders(req)
	canonicalRequest := strings.Join([]string{
		req.Method,
		canonicalURI(req.URL),
		req.URL.RawQuery,
		headers, // each line ends with "\n", so a blank line follows
		names,
		emptyPayloadHash,
	}, "\n")

	scope := day + "/" + region + "/" + sigService + "/" + sigTerminal
	stringToSign := strings.Join([]string{
		sigAlgorithm,
		amzDate,
		scope,
		hexSHA256(canonicalRequest),
	}, "\n")

	signature := hex.EncodeToString(hmacSHA256(signingKey(k.secret, day, region), stringToSign))
	req.Header.Set("Authorization", sigAlgorithm+" Credential="+k.id+"/"+scope+
		", SignedHeaders="+names+", Signature="+signature)
}

// signingKey derives the key of one day, region and service from the
// secret access key: a chain of HMAC-SHA256s, each keyed by the one before.
func signingKey(secret, day, region string) []byte {
	key := hmacSHA256([]byte("AWS4"+secret), day)
	key = hmacSHA256(key, region)
	key = hmacSHA256(key, sigService)
	return hmacSHA256(key, sigTerminal)
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

func hexSHA256(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// canonicalURI is the path as sent, already URI-encoded: S3, unlike
// other services, does not encode it a second time for the signature.
func canonicalURI(u *url.URL) string {
	if p := u.EscapedPath(); p != "" {
		return p
	}
	return "/"
}

// canonicalQuery is the query with each name and value URI-encoded
// (space as %20, never "+"), sorted by name and then value, joined by "&".
// A parameter without a value is "name=".
func canonicalQuery(u *url.URL) string {
	var pairs []string
	for name, values := range u.Query() {
		for _, v := range values {
			pairs = append(pairs, uriEncode(name, false)+"="+uriEncode(v, false))
		}
	}
	// Sorted by the encoded name, then the encoded value, as the
	// specification says.
	slices.SortFunc(pairs, func(a, b string) int {
		an, av, _ := strings.Cut(a, "=")
		bn, bv, _ := strings.Cut(b, "=")
		if c := strings.Compare(an, bn); c != 0 {
			return c
		}
		return strings.Compare(av, bv)
	})
	return strings.Join(pairs, "&")
}

// canonicalHeaders returns the signed header names, lower case, sorted and
// joined by ";", and the canonical headers: one "name:value\n" line each,
// the values trimmed, inner runs of spaces made one, and the values of a
// repeated header joined by ",".
func canonicalHeaders(req *http.Request) (names, lines string) {
	values := map[string][]string{"host": {req.Host}}
	for name, vs := range req.Header {
		lower := strings.ToLower(name)
		if lower == "host" || slices.Contains(unsignedHeaders, lower) {
			continue
		}
		values[lower] = append(values[lower], vs...)
	}
	sorted := make([]string, 0, len(values))
	for name := range values {
		sorted = append(sorted, name)
	}
	slices.Sort(sorted)

	var b strings.Builder
	for _, name := range sorted {
		b.WriteString(name)
		b.WriteByte(':')
		for i, v := range values[name] {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(trimSpaces(v))
		}
		b.WriteByte('\n')
	}
	return strings.Join(sorted, ";"), b.String()
}

// trimSpaces removes leading and trailing spaces and makes each inner run
// of spaces one.
func trimSpaces(v string) string {
	v = strings.Trim(v, " ")
	var b strings.Builder
	b.Grow(len(v))
	for i := 0; i < len(v); i++ {
		if v[i] == ' ' && v[i-1] == ' ' { // i > 0: v does not start with a space
			continue
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

// signedHost is the request's host without the port its scheme implies
// (80 for http, 443 for https).
func signedHost(req *http.Request) string {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	switch {
	case req.URL.Scheme == "http" && strings.HasSuffix(host, ":80"):
		return strings.TrimSuffix(host, ":80")
	case req.URL.Scheme == "https" && strings.HasSuffix(host, ":443"):
		return strings.TrimSuffix(host, ":443")
	}
	return host
}

// uriEncode percent-encodes s the way SigV4 wants: every byte but the
// unreserved characters A-Z, a-z, 0-9, "-", ".", "_" and "~" becomes %XX
// (upper-case hex), so a space is %20 and "+" is %2B; with keepSlash, "/"
// is kept, as in an object key's path.
func uriEncode(s string, keepSlash bool) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~', c == '/' && keepSlash:
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&0x0f])
		}
	}
	return b.String()
}
