package fetch

import (
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"hash"
	"net/url"
	"strings"
)

// Checksum is the "?checksum=TYPE:HEX" of a source (go-getter's syntax; a
// bare HEX takes its type from its length): the body actually used, fetched
// or kept from an earlier run, must have it.
type Checksum struct {
	typ  string
	want []byte
	new  func() hash.Hash
}

var checksumTypes = map[string]func() hash.Hash{
	"md5": md5.New, "sha1": sha1.New, "sha256": sha256.New, "sha512": sha512.New,
}

// byLength guesses the type of a bare checksum.
var byLength = map[int]string{md5.Size: "md5", sha1.Size: "sha1", sha256.Size: "sha256", sha512.Size: "sha512"}

// takeChecksum removes the checksum parameter from u and returns it; nil
// when there is none.
func takeChecksum(u *url.URL) (*Checksum, error) {
	q := u.Query()
	v := q.Get("checksum")
	if !q.Has("checksum") {
		return nil, nil
	}
	q.Del("checksum")
	u.RawQuery = q.Encode()
	return parseChecksum(v)
}

func parseChecksum(v string) (*Checksum, error) {
	typ, value, found := strings.Cut(v, ":")
	if !found {
		typ, value = "", v
	}
	if typ == "file" {
		return nil, errorf(nil, "checksum=file:... is not supported: give the checksum itself, like checksum=sha256:HEX")
	}
	want, err := hex.DecodeString(value)
	if err != nil || len(want) == 0 {
		return nil, errorf(nil, "checksum %q is not TYPE:HEX (md5, sha1, sha256 or sha512)", v)
	}
	if typ == "" {
		typ = byLength[len(want)]
	}
	h, ok := checksumTypes[typ]
	if !ok || h().Size() != len(want) {
		return nil, errorf(nil, "checksum %q is not TYPE:HEX (md5, sha1, sha256 or sha512)", v)
	}
	return &Checksum{typ: typ, want: want, new: h}, nil
}

// Check reports whether body has the checksum. A nil Checksum accepts any body.
func (c *Checksum) Check(body []byte) error {
	if c == nil {
		return nil
	}
	h := c.new()
	h.Write(body)
	if got := h.Sum(nil); !bytes.Equal(got, c.want) {
		return errorf(nil, "checksum mismatch: expected %x, got %x", c.want, got)
	}
	return nil
}
