// Package verify checks minisign signatures over the raw bytes butler fetched
// (SPEC section 12), with the keys of a manager's [verify] table.
//
// Guarantees:
//   - A body passes only when a signature by one of the trusted keys covers
//     it exactly and the signature's trusted comment carries a valid
//     signature of its own; the decision is aead.dev/minisign's. Signatures
//     made by the minisign tool, prehashed (its default) or legacy (-l),
//     verify.
//   - Every refusal wraps one of ErrMalformed, ErrUnknownKey, ErrMismatch or
//     ErrTrustedComment, and says why in words an operator can act on: a
//     signature by a key that is not trusted names that key's ID.
//   - A "timestamp:UNIX" in the trusted comment is read into the Result;
//     CheckReplay refuses a body signed earlier than the one last applied.
//   - Nothing here touches the network or the disk, and no input makes it
//     panic (FuzzVerify).
package verify

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"aead.dev/minisign"
	"golang.org/x/crypto/blake2b"
)

// MaxSignatureSize is the largest signature file Verify reads: a minisign
// signature is about 300 bytes, and its trusted comment one line.
const MaxSignatureSize = 64 << 10

// The kinds of refusal; every error of Verify and CheckReplay wraps one.
var (
	// ErrMalformed: the signature file is empty, truncated or not a minisign signature.
	ErrMalformed = errors.New("malformed signature file")
	// ErrUnknownKey: the signature was made by a key that is not trusted.
	ErrUnknownKey = errors.New("signed by a key that is not trusted")
	// ErrMismatch: the body is not the one that was signed.
	ErrMismatch = errors.New("the file does not match its signature")
	// ErrTrustedComment: the trusted comment is not the one that was signed.
	ErrTrustedComment = errors.New("the trusted comment of the signature does not verify")
	// ErrReplay: the body was signed earlier than the one applied last.
	ErrReplay = errors.New("replay refused")
)

// Keys are the trusted public keys of one [verify] table. Any one of them may
// have signed a body (key rotation: list the new key beside the old one).
type Keys struct {
	keys []key
}

// key is one trusted public key.
type key struct {
	pub minisign.PublicKey
	raw ed25519.PublicKey // the Ed25519 key inside pub, to say which part of a bad signature fails
}

// ParseKeys reads trusted public keys, each in minisign's form: the base64
// line ("RWQ...", as `minisign -G` prints it and minisign -P takes it), or the
// content of a minisign.pub file (an untrusted comment line, then that line).
// A key that is not one, or two keys with one key ID, is an error naming the
// key by its index (#1 is the first).
func ParseKeys(texts []string) (Keys, error) {
	var ks Keys
	var errs []error
	seen := map[uint64]int{}
	for i, text := range texts {
		pub, err := parseKey(text)
		if err != nil {
			errs = append(errs, fmt.Errorf("key #%d: %w", i+1, err))
			continue
		}
		if j, dup := seen[pub.ID()]; dup {
			errs = append(errs, fmt.Errorf("key #%d: key ID %s is also the ID of key #%d: list each key once", i+1, FormatID(pub.ID()), j))
			continue
		}
		seen[pub.ID()] = i + 1
		raw, err := rawKey(pub)
		if err != nil {
			errs = append(errs, fmt.Errorf("key #%d: %w", i+1, err))
			continue
		}
		ks.keys = append(ks.keys, key{pub: pub, raw: raw})
	}
	if err := errors.Join(errs...); err != nil {
		return Keys{}, err
	}
	return ks, nil
}

// parseKey reads one public key, with reasons an operator can act on.
func parseKey(text string) (minisign.PublicKey, error) {
	var pub minisign.PublicKey
	text = strings.TrimSpace(text)
	if text == "" {
		return pub, errors.New("empty: give a minisign public key like \"RWQ...\"")
	}
	lines := strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
	switch {
	case len(lines) == 2 && strings.HasPrefix(lines[0], "untrusted comment:"):
		text = strings.TrimSpace(lines[1])
	case len(lines) == 1:
		text = lines[0]
	default:
		return pub, errors.New("not a minisign public key: give its base64 line (\"RWQ...\") or the two lines of a minisign.pub file")
	}
	if strings.HasPrefix(text, "untrusted comment:") {
		return pub, errors.New("only the comment line of a minisign.pub file: give the key line under it (\"RWQ...\")")
	}
	raw, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		return pub, fmt.Errorf("%s is not base64: give a minisign public key like \"RWQ...\"", abbrev(text))
	}
	const size = 2 + 8 + ed25519.PublicKeySize
	if len(raw) != size {
		return pub, fmt.Errorf("%s is %d bytes, not the %d of a minisign public key (is it a secret key or a signature?)", abbrev(text), len(raw), size)
	}
	if err := pub.UnmarshalText([]byte(text)); err != nil {
		// The algorithm is the only check left: "Ed", as "RW" starts the text.
		return pub, fmt.Errorf("%s is not an Ed25519 minisign public key (it should start \"RW\")", abbrev(text))
	}
	return pub, nil
}

// rawKey extracts the Ed25519 key from a minisign public key.
func rawKey(pub minisign.PublicKey) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(pub.String())
	if err != nil || len(b) != 2+8+ed25519.PublicKeySize {
		return nil, errors.New("cannot read the key back")
	}
	return ed25519.PublicKey(b[10:]), nil
}

// abbrev shortens a key for messages: its start is enough to find it.
func abbrev(s string) string {
	if len(s) > 16 {
		return strconv.Quote(s[:12] + "...")
	}
	return strconv.Quote(s)
}

// Len is the number of trusted keys.
func (k Keys) Len() int { return len(k.keys) }

// IDs are the trusted keys' IDs, as minisign prints them.
func (k Keys) IDs() []string {
	out := make([]string, len(k.keys))
	for i, key := range k.keys {
		out[i] = FormatID(key.pub.ID())
	}
	return out
}

// FormatID writes a key ID as minisign prints it: 16 upper-case hex digits.
func FormatID(id uint64) string { return fmt.Sprintf("%016X", id) }

// Result is what a good signature tells of the body it covers.
type Result struct {
	// KeyID is the ID of the trusted key that verified, as minisign prints it.
	KeyID string
	// TrustedComment is the signed comment line of the signature.
	TrustedComment string
	// Timestamp is the time in the trusted comment's "timestamp:UNIX" field;
	// HasTimestamp says whether there is one. minisign writes one unless
	// -t replaces the comment with one that has none.
	Timestamp    time.Time
	HasTimestamp bool
}

// Verify checks that sig, the content of a .minisig file, is a signature of
// body by one of the keys, trusted comment included. The error wraps
// ErrMalformed, ErrUnknownKey, ErrMismatch or ErrTrustedComment.
func (k Keys) Verify(body, sig []byte) (Result, error) {
	var s minisign.Signature
	if err := parseSignature(sig, &s); err != nil {
		return Result{}, err
	}
	var trusted *key
	for i := range k.keys {
		if k.keys[i].pub.ID() == s.KeyID {
			trusted = &k.keys[i]
			break
		}
	}
	if trusted == nil {
		return Result{}, fmt.Errorf("%w: key ID %s is not among the trusted keys (%s)", ErrUnknownKey, FormatID(s.KeyID), strings.Join(k.IDs(), ", "))
	}
	if !minisign.Verify(trusted.pub, body, sig) {
		return Result{}, explain(trusted, body, &s)
	}
	res := Result{KeyID: FormatID(s.KeyID), TrustedComment: s.TrustedComment}
	ts, ok, err := timestamp(s.TrustedComment)
	if err != nil {
		return Result{}, err
	}
	res.Timestamp, res.HasTimestamp = ts, ok
	return res, nil
}

// parseSignature reads a .minisig file into s, with a reason when it is none.
func parseSignature(sig []byte, s *minisign.Signature) error {
	if len(sig) > MaxSignatureSize {
		return fmt.Errorf("%w: larger than %d KiB", ErrMalformed, MaxSignatureSize>>10)
	}
	trimmed := bytes.TrimSpace(sig)
	if len(trimmed) == 0 {
		return fmt.Errorf("%w: it is empty", ErrMalformed)
	}
	if n := len(bytes.Split(trimmed, []byte("\n"))); n < 4 {
		return fmt.Errorf("%w: %d of its 4 lines (truncated?)", ErrMalformed, n)
	}
	if err := s.UnmarshalText(sig); err != nil {
		reason := strings.TrimPrefix(err.Error(), "minisign: ")
		reason = strings.TrimPrefix(reason, "invalid signature: ")
		return fmt.Errorf("%w: %s (truncated or not a minisign signature?)", ErrMalformed, reason)
	}
	return nil
}

// explain says which part of a signature that does not verify fails: the
// signature of the body, or that of the trusted comment.
func explain(k *key, body []byte, s *minisign.Signature) error {
	msg := body
	if s.Algorithm == minisign.HashEdDSA {
		h := blake2b.Sum512(body)
		msg = h[:]
	}
	if !ed25519.Verify(k.raw, msg, s.Signature[:]) {
		return fmt.Errorf("%w (changed after it was signed, or signed by another key with the same ID %s)", ErrMismatch, FormatID(s.KeyID))
	}
	global := append(bytes.Clone(s.Signature[:]), s.TrustedComment...)
	if !ed25519.Verify(k.raw, global, s.CommentSignature[:]) {
		return fmt.Errorf("%w: the comment %q was changed after signing", ErrTrustedComment, s.TrustedComment)
	}
	return fmt.Errorf("%w (key ID %s)", ErrMismatch, FormatID(s.KeyID))
}

// timestamp reads the "timestamp:UNIX" field of a trusted comment: fields
// are separated by tabs or spaces, as minisign writes them
// ("timestamp:1700000000\tfile:rules.yml\thashed"). A comment without such a
// field gives ok false; a field that is not a Unix time, or two of them, is
// an error, since a replay check would otherwise be skipped without a word.
func timestamp(comment string) (t time.Time, ok bool, err error) {
	for _, f := range strings.Fields(comment) {
		v, found := strings.CutPrefix(f, "timestamp:")
		if !found {
			continue
		}
		if ok {
			return time.Time{}, false, fmt.Errorf("%w: the trusted comment %q holds two timestamps", ErrMalformed, comment)
		}
		n, perr := strconv.ParseInt(v, 10, 64)
		if perr != nil || n < 0 || n > 1<<40 {
			return time.Time{}, false, fmt.Errorf("%w: the trusted comment's timestamp %q is not a Unix time (sign with -t \"timestamp:$(date +%%s)\")", ErrMalformed, v)
		}
		t, ok = time.Unix(n, 0).UTC(), true
	}
	return t, ok, nil
}

// CheckReplay refuses a body whose signature is older than the one of the
// version applied last (lastApplied; zero when none was, or it carried no
// timestamp): an attacker who can write to the store must not roll a host
// back to an old signed file. A signature without a timestamp passes when
// nothing is known of the last one, and is refused once one was timestamped,
// since it could be any old signature.
func CheckReplay(lastApplied time.Time, got Result) error {
	switch {
	case lastApplied.IsZero():
		return nil
	case !got.HasTimestamp:
		return fmt.Errorf("%w: the signature has no timestamp in its trusted comment, and the version applied was signed at %s (sign with -t \"timestamp:$(date +%%s)\")",
			ErrReplay, stamp(lastApplied))
	case got.Timestamp.Before(lastApplied):
		return fmt.Errorf("signed at %s, earlier than the version applied at %s: %w", stamp(got.Timestamp), stamp(lastApplied), ErrReplay)
	}
	return nil
}

// stamp writes a signing time for messages.
func stamp(t time.Time) string {
	return t.UTC().Format(time.RFC3339) + " (" + strconv.FormatInt(t.Unix(), 10) + ")"
}
