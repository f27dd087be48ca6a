package verify

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/butler-sre/butler/pipeline/minisigntest"
)

func mustKeys(t *testing.T, texts ...string) Keys {
	t.Helper()
	k, err := ParseKeys(texts)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestVerifyMinisignTool verifies signatures made by the minisign tool: the
// good ones pass with what their trusted comment says, and every kind of bad
// one is refused with the error of its kind.
func TestVerifyMinisignTool(t *testing.T) {
	tool := minisigntest.Tool(t)
	a, b := minisigntest.NewPair(t, tool), minisigntest.NewPair(t, tool)
	body := []byte("groups:\n  - name: node\n    rules: []\n")
	signedA := minisigntest.Sign(t, tool, a, body, "-t", "timestamp:1700000000\tfile:rules.yml")
	signedB := minisigntest.Sign(t, tool, b, body, "-t", "timestamp:1700000600")
	defaultComment := minisigntest.Sign(t, tool, a, body)
	legacy := minisigntest.Sign(t, tool, a, body, "-l", "-t", "timestamp:1700000000")
	noStamp := minisigntest.Sign(t, tool, a, body, "-t", "release 42")
	badStamp := minisigntest.Sign(t, tool, a, body, "-t", "timestamp:soon")
	otherBody := minisigntest.Sign(t, tool, a, []byte("groups: []\n"), "-t", "timestamp:1700000000")
	lines := strings.SplitAfter(string(signedA), "\n")

	tests := []struct {
		name    string
		keys    []string
		body    []byte
		sig     []byte
		want    Result // when no error
		wantErr error
		errPart []string
	}{
		{name: "good", keys: []string{a.Pub}, body: body, sig: signedA,
			want: Result{KeyID: a.ID, TrustedComment: "timestamp:1700000000\tfile:rules.yml", Timestamp: time.Unix(1700000000, 0).UTC(), HasTimestamp: true}},
		{name: "key given as minisign.Pub content", keys: []string{a.PubTxt}, body: body, sig: signedA,
			want: Result{KeyID: a.ID, TrustedComment: "timestamp:1700000000\tfile:rules.yml", Timestamp: time.Unix(1700000000, 0).UTC(), HasTimestamp: true}},
		{name: "rotation: the new key verifies", keys: []string{a.Pub, b.Pub}, body: body, sig: signedB,
			want: Result{KeyID: b.ID, TrustedComment: "timestamp:1700000600", Timestamp: time.Unix(1700000600, 0).UTC(), HasTimestamp: true}},
		{name: "rotation: the old key still verifies", keys: []string{b.Pub, a.Pub}, body: body, sig: signedA,
			want: Result{KeyID: a.ID, TrustedComment: "timestamp:1700000000\tfile:rules.yml", Timestamp: time.Unix(1700000000, 0).UTC(), HasTimestamp: true}},
		{name: "legacy signature (-l)", keys: []string{a.Pub}, body: body, sig: legacy,
			want: Result{KeyID: a.ID, TrustedComment: "timestamp:1700000000", Timestamp: time.Unix(1700000000, 0).UTC(), HasTimestamp: true}},
		{name: "no timestamp in the trusted comment", keys: []string{a.Pub}, body: body, sig: noStamp,
			want: Result{KeyID: a.ID, TrustedComment: "release 42"}},
		{name: "unknown key", keys: []string{a.Pub}, body: body, sig: signedB,
			wantErr: ErrUnknownKey, errPart: []string{"key ID " + b.ID, a.ID}},
		{name: "body altered after signing", keys: []string{a.Pub}, body: append(bytes.Clone(body), '#'), sig: signedA,
			wantErr: ErrMismatch, errPart: []string{"does not match its signature"}},
		{name: "signature of another file", keys: []string{a.Pub}, body: body, sig: otherBody,
			wantErr: ErrMismatch},
		{name: "trusted comment altered", keys: []string{a.Pub}, body: body,
			sig:     []byte(lines[0] + lines[1] + "trusted comment: timestamp:1900000000\n" + lines[3]),
			wantErr: ErrTrustedComment, errPart: []string{"timestamp:1900000000"}},
		{name: "truncated in the middle", keys: []string{a.Pub}, body: body, sig: signedA[:len(signedA)/2],
			wantErr: ErrMalformed, errPart: []string{"truncated"}},
		{name: "truncated to two lines", keys: []string{a.Pub}, body: body, sig: []byte(lines[0] + lines[1]),
			wantErr: ErrMalformed, errPart: []string{"2 of its 4 lines"}},
		{name: "last line cut short", keys: []string{a.Pub}, body: body, sig: signedA[:len(signedA)-10],
			wantErr: ErrMalformed},
		{name: "empty", keys: []string{a.Pub}, body: body, sig: nil,
			wantErr: ErrMalformed, errPart: []string{"empty"}},
		{name: "timestamp that is no Unix time", keys: []string{a.Pub}, body: body, sig: badStamp,
			wantErr: ErrMalformed, errPart: []string{`"soon"`, "not a Unix time"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := mustKeys(t, tt.keys...).Verify(tt.body, tt.sig)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				if got != tt.want {
					t.Errorf("Verify = %+v, want %+v", got, tt.want)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify = %+v, %v; want an error wrapping %q", got, err, tt.wantErr)
			}
			for _, w := range tt.errPart {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}

	t.Run("minisign's own trusted comment has a timestamp", func(t *testing.T) {
		got, err := mustKeys(t, a.Pub).Verify(body, defaultComment)
		if err != nil {
			t.Fatal(err)
		}
		if !got.HasTimestamp || time.Since(got.Timestamp) > time.Hour || time.Since(got.Timestamp) < -time.Minute {
			t.Errorf("Verify = %+v, want the time of signing", got)
		}
	})
}

// TestReplay: a body signed earlier than the version applied last is refused;
// the same or a later signature passes.
func TestReplay(t *testing.T) {
	tool := minisigntest.Tool(t)
	p := minisigntest.NewPair(t, tool)
	keys := mustKeys(t, p.Pub)
	applied := time.Unix(1700000600, 0)
	verifyAt := func(t *testing.T, comment string) Result {
		t.Helper()
		body := []byte("version: " + comment + "\n")
		r, err := keys.Verify(body, minisigntest.Sign(t, tool, p, body, "-t", comment))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	tests := []struct {
		name    string
		last    time.Time
		comment string
		errPart string // "" when accepted
	}{
		{name: "older signature", last: applied, comment: "timestamp:1700000000",
			errPart: "signed at 2023-11-14T22:13:20Z (1700000000), earlier than the version applied at 2023-11-14T22:23:20Z (1700000600): replay refused"},
		{name: "same signing time", last: applied, comment: "timestamp:1700000600"},
		{name: "newer signature", last: applied, comment: "timestamp:1700000601"},
		{name: "nothing applied before", comment: "timestamp:1"},
		{name: "no timestamp, nothing known before", comment: "release 42"},
		{name: "no timestamp after a timestamped version", last: applied, comment: "release 42",
			errPart: "no timestamp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckReplay(tt.last, verifyAt(t, tt.comment))
			if tt.errPart == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrReplay) || !strings.Contains(err.Error(), tt.errPart) {
				t.Fatalf("CheckReplay = %v, want ErrReplay saying %q", err, tt.errPart)
			}
		})
	}
}

// specKey is the key of SPEC section 12's example.
const specKey = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3"

func TestParseKeys(t *testing.T) {
	committed, err := os.ReadFile(filepath.Join("testdata", "minisign.pub"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		keys    []string
		ids     []string // when accepted
		errPart []string
	}{
		{name: "base64 line", keys: []string{specKey}, ids: []string{"E7620F1842B4E81F"}},
		{name: "surrounding space", keys: []string{"  " + specKey + "\n"}, ids: []string{"E7620F1842B4E81F"}},
		{name: "minisign.Pub content", keys: []string{string(committed)}, ids: []string{"32857AB256570A51"}},
		{name: "minisign.Pub with CRLF", keys: []string{strings.ReplaceAll(string(committed), "\n", "\r\n")}, ids: []string{"32857AB256570A51"}},
		{name: "two keys", keys: []string{specKey, string(committed)}, ids: []string{"E7620F1842B4E81F", "32857AB256570A51"}},
		{name: "empty", keys: []string{specKey, ""}, errPart: []string{"key #2", "empty"}},
		{name: "not base64", keys: []string{"RWQ not a key!"}, errPart: []string{"key #1", "not base64"}},
		{name: "too short", keys: []string{specKey[:40]}, errPart: []string{"key #1", "bytes, not the 42"}},
		{name: "a signature line", keys: []string{"RURRCldWsnqFMs9LbvqLRESBWLn3wluaxt9jP475i7W7xfSlAUlB+16EBytVPjVZBddV9bc448mTNmkIxiDKznTb8xbzmcpV8wg="},
			errPart: []string{"key #1", "not the 42"}},
		{name: "other algorithm", keys: []string{"RUQ" + specKey[3:]}, errPart: []string{"key #1", "Ed25519"}},
		{name: "only the comment line", keys: []string{"untrusted comment: minisign public key 32857AB256570A51"}, errPart: []string{"comment line"}},
		{name: "three lines", keys: []string{string(committed) + "extra\n"}, errPart: []string{"two lines of a minisign.pub"}},
		{name: "the same key twice", keys: []string{specKey, specKey}, errPart: []string{"key #2", "E7620F1842B4E81F", "key #1"}},
		{name: "every bad key named", keys: []string{"x", specKey, "y"}, errPart: []string{"key #1", "key #3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseKeys(tt.keys)
			if tt.errPart == nil {
				if err != nil {
					t.Fatal(err)
				}
				if got := strings.Join(k.IDs(), ","); got != strings.Join(tt.ids, ",") || k.Len() != len(tt.ids) {
					t.Errorf("IDs = %s, want %s", got, strings.Join(tt.ids, ","))
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseKeys(%q) accepted", tt.keys)
			}
			for _, w := range tt.errPart {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// committed returns the keys, body and signature under testdata: a minisigntest.Pair made
// with the minisign tool once, so that tests without the tool and the fuzz
// target have a real signature.
func committed(t testing.TB) (Keys, []byte, []byte) {
	t.Helper()
	read := func(name string) []byte {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	keys, err := ParseKeys([]string{string(read("minisign.pub"))})
	if err != nil {
		t.Fatal(err)
	}
	return keys, read("rules.yml"), read("rules.yml.minisig")
}

func TestCommittedSignature(t *testing.T) {
	keys, body, sig := committed(t)
	got, err := keys.Verify(body, sig)
	if err != nil {
		t.Fatal(err)
	}
	if got.KeyID != "32857AB256570A51" || !got.HasTimestamp || got.Timestamp.Unix() != 1700000000 {
		t.Errorf("Verify = %+v", got)
	}
	if _, err := keys.Verify(body[1:], sig); !errors.Is(err, ErrMismatch) {
		t.Errorf("Verify of an altered body = %v, want ErrMismatch", err)
	}
	if _, err := keys.Verify(body, bytes.Repeat([]byte("x"), MaxSignatureSize+1)); !errors.Is(err, ErrMalformed) {
		t.Errorf("Verify of a huge signature = %v, want ErrMalformed", err)
	}
}

func TestTimestampField(t *testing.T) {
	tests := []struct {
		comment string
		want    int64 // -1: none
		errPart string
	}{
		{comment: "timestamp:1700000000\tfile:rules.yml\thashed", want: 1700000000},
		{comment: "file:rules.yml timestamp:42", want: 42},
		{comment: "release 42", want: -1},
		{comment: "", want: -1},
		{comment: "timestamp:", errPart: "not a Unix time"},
		{comment: "timestamp:-5", errPart: "not a Unix time"},
		{comment: "timestamp:99999999999999999999", errPart: "not a Unix time"},
		{comment: "timestamp:1 timestamp:2", errPart: "two timestamps"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.comment), func(t *testing.T) {
			got, ok, err := timestamp(tt.comment)
			switch {
			case tt.errPart != "":
				if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.errPart) {
					t.Errorf("timestamp = %v, want ErrMalformed saying %q", err, tt.errPart)
				}
			case err != nil:
				t.Fatal(err)
			case tt.want < 0 && ok:
				t.Errorf("timestamp = %v, want none", got)
			case tt.want >= 0 && (!ok || got.Unix() != tt.want):
				t.Errorf("timestamp = %v %v, want %d", got, ok, tt.want)
			}
		})
	}
}

// FuzzVerify: no signature file and no body make Verify panic, and whatever
// passes is the committed body under its committed signature.
func FuzzVerify(f *testing.F) {
	keys, body, sig := committed(f)
	lines := strings.SplitAfter(string(sig), "\n")
	f.Add(body, sig)
	f.Add(body, []byte{})
	f.Add(body, sig[:len(sig)/2])
	f.Add(append(bytes.Clone(body), '\n'), sig)
	f.Add(body, []byte(lines[0]+lines[1]+"trusted comment: timestamp:1\n"+lines[3]))
	f.Add(body, []byte(strings.ReplaceAll(string(sig), "\n", "\r\n")))
	f.Add(body, []byte("untrusted comment: x\n\ntrusted comment: \n\n"))
	f.Add([]byte{}, []byte("untrusted comment: x\nRUQ=\ntrusted comment: timestamp:9\n=\n"))
	f.Fuzz(func(t *testing.T, b, s []byte) {
		r, err := keys.Verify(b, s)
		if err != nil {
			for _, kind := range []error{ErrMalformed, ErrUnknownKey, ErrMismatch, ErrTrustedComment} {
				if errors.Is(err, kind) {
					return
				}
			}
			t.Fatalf("error of no known kind: %v", err)
		}
		if !bytes.Equal(b, body) || r.KeyID != "32857AB256570A51" {
			t.Fatalf("Verify accepted %q with %+v", b, r)
		}
	})
}
