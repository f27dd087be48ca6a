package source

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/url"
	"path"
	"strings"
)

// Checksum is the expected digest of a source's content, from
// ?checksum=TYPE:HEX, a bare ?checksum=HEX (the type told by its length), or
// ?checksum=file:URL (a checksum file, in the GNU "HEX  NAME" or the BSD
// "TYPE (NAME) = HEX" style, that lists the source).
type Checksum struct {
	// Type is md5, sha1, sha256 or sha512; "file" while the digest is in a
	// checksum file not yet read (see FromFile).
	Type string
	// Value is the digest; nil for Type "file".
	Value []byte
	// File is, for Type "file", the source of the checksum file as written
	// after "file:".
	File string
}

// checksumTypes are the digests a checksum may name, with their sizes.
var checksumTypes = map[string]struct {
	size int
	new  func() hash.Hash
}{
	"md5":    {md5.Size, md5.New},
	"sha1":   {sha1.Size, sha1.New},
	"sha256": {sha256.Size, sha256.New},
	"sha512": {sha512.Size, sha512.New},
}

// MismatchError is a content whose digest is not the expected one.
type MismatchError struct {
	Type             string
	Expected, Actual []byte
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("checksum mismatch: expected %x, got %x", e.Expected, e.Actual)
}

// parseChecksum parses the value of ?checksum=.
// ParseChecksum reads the value of a ?checksum= parameter: TYPE:HEX, a bare
// HEX (its type from its length), or file:URL.
func ParseChecksum(v string) (*Checksum, error) {
	return parseChecksum(v)
}

func parseChecksum(v string) (*Checksum, error) {
	typ, value, typed := strings.Cut(v, ":")
	switch {
	case !typed:
		return checksumOfValue(v)
	case typ == "file":
		if value == "" {
			return nil, errors.New("checksum=file: names no checksum file")
		}
		return &Checksum{Type: "file", File: value}, nil
	default:
		return checksumOfType(typ, value)
	}
}

// checksumOfType is a digest of a named type.
func checksumOfType(typ, value string) (*Checksum, error) {
	t, ok := checksumTypes[strings.ToLower(typ)]
	if !ok {
		return nil, fmt.Errorf("unsupported checksum type %q (md5, sha1, sha256 or sha512)", typ)
	}
	b, err := hex.DecodeString(value)
	if err != nil {
		return nil, fmt.Errorf("checksum is not hexadecimal: %w", err)
	}
	if len(b) != t.size {
		return nil, fmt.Errorf("a %s checksum has %d hexadecimal digits, not %d", strings.ToLower(typ), 2*t.size, len(value))
	}
	return &Checksum{Type: strings.ToLower(typ), Value: b}, nil
}

// checksumOfValue is a digest whose type its length tells.
func checksumOfValue(value string) (*Checksum, error) {
	b, err := hex.DecodeString(value)
	if err != nil {
		return nil, fmt.Errorf("checksum is not hexadecimal: %w", err)
	}
	for name, t := range checksumTypes {
		if t.size == len(b) {
			return &Checksum{Type: name, Value: b}, nil
		}
	}
	return nil, fmt.Errorf("checksum of %d hexadecimal digits is of no known type: write TYPE:HEX", len(value))
}

// Verify checks data against the digest. A nil Checksum accepts any data.
func (c *Checksum) Verify(data []byte) error {
	if c == nil {
		return nil
	}
	t, ok := checksumTypes[c.Type]
	if !ok {
		return fmt.Errorf("checksum of type %q cannot be verified", c.Type)
	}
	h := t.new()
	h.Write(data)
	if sum := h.Sum(nil); !bytes.Equal(sum, c.Value) {
		return &MismatchError{Type: c.Type, Expected: c.Value, Actual: sum}
	}
	return nil
}

// FromFile reads the digest of target from content, the checksum file c
// names: the first line for the target's file name ("NAME", "*NAME",
// "?NAME", its path relative to the checksum file's directory, "./" and that
// path, or its absolute path), or a line that names no file at all.
func (c *Checksum) FromFile(content []byte, target *Source) (*Checksum, error) {
	if c.Type != "file" {
		return c, nil
	}
	p := target.URL.Path
	if target.Subdir != "" {
		p = path.Join(p, target.Subdir)
	}
	name := path.Base(p)
	names := []string{name, "*" + name, "?" + name, p}
	sumsPath := c.File
	if u, err := url.Parse(c.File); err == nil {
		sumsPath = u.Path
	}
	if rel, ok := strings.CutPrefix(p, path.Dir(sumsPath)+"/"); ok && path.IsAbs(sumsPath) {
		names = append(names, rel, "./"+rel)
	}
	sc := bufio.NewScanner(bytes.NewReader(content))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		sum, file := checksumLine(sc.Text())
		if sum == nil {
			continue
		}
		if file == "" {
			return sum, nil
		}
		for _, n := range names {
			if file == n {
				return sum, nil
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read checksum file: %w", err)
	}
	return nil, fmt.Errorf("the checksum file lists no checksum for %s", name)
}

// checksumLine parses one line of a checksum file: "TYPE (NAME) = HEX"
// (BSD), "HEX NAME" or "HEX *NAME" (GNU), or a digest alone. It returns nil
// for a line that is none of these.
func checksumLine(line string) (*Checksum, string) {
	f := strings.Fields(line)
	switch len(f) {
	case 0:
		return nil, ""
	case 4:
		if len(f[1]) <= 2 || f[1][0] != '(' || f[1][len(f[1])-1] != ')' || f[2] != "=" {
			return nil, ""
		}
		c, err := checksumOfType(f[0], f[3])
		if err != nil {
			return nil, ""
		}
		return c, f[1][1 : len(f[1])-1]
	case 2:
		c, err := checksumOfValue(f[0])
		if err != nil {
			return nil, ""
		}
		return c, f[1]
	default:
		c, err := checksumOfValue(f[0])
		if err != nil {
			return nil, ""
		}
		return c, ""
	}
}
