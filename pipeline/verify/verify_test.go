package verify

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// needMinisign returns the path of the minisign tool. Without it the test
// skips, except under CI (CI set), where it fails: scripts/test-deps.sh
// installs it.
func needMinisign(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("minisign")
	if err == nil {
		return p
	}
	msg := "minisign is not installed (scripts/test-deps.sh installs it as root)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// pair is a key pair made by the minisign tool.
type pair struct {
	pub    string // the base64 line, "RW..."
	pubTxt string // the whole minisign.pub file
	id     string // the key ID, as minisign prints it
	sec    string // path of the secret key, not encrypted
}

// newPair makes a key pair with `minisign -G -W` in a temporary directory.
func newPair(t *testing.T, tool string) pair {
	t.Helper()
	dir := t.TempDir()
	pub, sec := filepath.Join(dir, "minisign.pub"), filepath.Join(dir, "minisign.key")
	run(t, tool, "-G", "-p", pub, "-s", sec, "-W")
	text, err := os.ReadFile(pub)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(text)), "\n")
	if len(lines) != 2 {
		t.Fatalf("minisign.pub: %q", text)
	}
	comment := strings.Fields(lines[0])
	return pair{pub: lines[1], pubTxt: string(text), id: comment[len(comment)-1], sec: sec}
}

// sign writes body to a file and signs it with `minisign -S`, with the
// trusted comment given (none: minisign's own, which has a timestamp), and
// returns the content of the .minisig file.
func sign(t *testing.T, tool string, p pair, body []byte, extra ...string) []byte {
	t.Helper()
	f := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(f, body, 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, tool, append([]string{"-S", "-s", p.sec, "-m", f}, extra...)...)
	sig, err := os.ReadFile(f + ".minisig")
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func run(t *testing.T, tool string, args ...string) {
	t.Helper()
	cmd := exec.Command(tool, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("minisign %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

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
	tool := needMinisign(t)
	a, b := newPair(t, tool), newPair(t, tool)
	body := []byte("groups:\n  - name: node\n    rules: []\n")
	signedA := sign(t, tool, a, body, "-t", "timestamp:1700000000\tfile:rules.yml")
	signedB := sign(t, tool, b, body, "-t", "timestamp:1700000600")
	defaultComment := sign(t, tool, a, body)
	legacy := sign(t, tool, a, body, "-l", "-t", "timestamp:1700000000")
	noStamp := sign(t, tool, a, body, "-t", "release 42")
	badStamp := sign(t, tool, a, body, "-t", "timestamp:soon")
	otherBody := sign(t, tool, a, []byte("groups: []\n"), "-t", "timestamp:1700000000")
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
		{name: "good", keys: []string{a.pub}, body: body, sig: signedA,
			want: Result{KeyID: a.id, TrustedComment: "timestamp:1700000000\tfile:rules.yml", Timestamp: time.Unix(1700000000, 0).UTC(), HasTimestamp: true}},
		{name: "key given as minisign.pub content", keys: []string{a.pubTxt}, body: body, sig: signedA,
			want: Result{KeyID: a.id, TrustedComment: "timestamp:1700000000\tfile:rules.yml", Timestamp: time.Unix(1700000000, 0).UTC(), HasTimestamp: true}},
		{name: "rotation: the new key verifies", keys: []string{a.pub, b.pub}, body: body, sig: signedB,
			want: Result{KeyID: b.id, TrustedComment: "timestamp:1700000600", Timestamp: time.Unix(1700000600, 0).UTC(), HasTimestamp: true}},
		{name: "rotation: the old key still verifies", keys: []string{b.pub, a.pub}, body: body, sig: signedA,
			want: Result{KeyID: a.id, TrustedComment: "timestamp:1700000000\tfile:rules.yml", Timestamp: time.Unix(1700000000, 0).UTC(), HasTimestamp: true}},
		{name: "legacy signature (-l)", keys: []string{a.pub}, body: body, sig: legacy,
			want: Result{KeyID: a.id, TrustedComment: "timestamp:1700000000", Timestamp: time.Unix(1700000000, 0).UTC(), HasTimestamp: true}},
		{name: "no timestamp in the trusted comment", keys: []string{a.pub}, body: body, sig: noStamp,
			want: Result{KeyID: a.id, TrustedComment: "release 42"}},
		{name: "unknown key", keys: []string{a.pub}, body: body, sig: signedB,
			wantErr: ErrUnknownKey, errPart: []string{"key ID " + b.id, a.id}},
		{name: "body altered after signing", keys: []string{a.pub}, body: append(bytes.Clone(body), '#'), sig: signedA,
			wantErr: ErrMismatch, errPart: []string{"does not match its signature"}},
		{name: "signature of another file", keys: []string{a.pub}, body: body, sig: otherBody,
			wantErr: ErrMismatch},
		{name: "trusted comment altered", keys: []string{a.pub}, body: body,
			sig:     []byte(lines[0] + lines[1] + "trusted comment: timestamp:1900000000\n" + lines[3]),
			wantErr: ErrTrustedComment, errPart: []string{"timestamp:1900000000"}},
		{name: "truncated in the middle", keys: []string{a.pub}, body: body, sig: signedA[:len(signedA)/2],
			wantErr: ErrMalformed, errPart: []string{"truncated"}},
		{name: "truncated to two lines", keys: []string{a.pub}, body: body, sig: []byte(lines[0] + lines[1]),
			wantErr: ErrMalformed, errPart: []string{"2 of its 4 lines"}},
		{name: "last line cut short", keys: []string{a.pub}, body: body, sig: signedA[:len(signedA)-10],
			wantErr: ErrMalformed},
		{name: "empty", keys: []string{a.pub}, body: body, sig: nil,
			wantErr: ErrMalformed, errPart: []string{"empty"}},
		{name: "timestamp that is no Unix time", keys: []string{a.pub}, body: body, sig: badStamp,
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
		got, err := mustKeys(t, a.pub).Verify(body, defaultComment)
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
	tool := needMinisign(t)
	p := newPair(t, tool)
	keys := mustKeys(t, p.pub)
	applied := time.Unix(1700000600, 0)
	verifyAt := func(t *testing.T, comment string) Result {
		t.Helper()
		body := []byte("version: " + comment + "\n")
		r, err := keys.Verify(body, sign(t, tool, p, body, "-t", comment))
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
		{name: "minisign.pub content", keys: []string{string(committed)}, ids: []string{"32857AB256570A51"}},
		{name: "minisign.pub with CRLF", keys: []string{strings.ReplaceAll(string(committed), "\n", "\r\n")}, ids: []string{"32857AB256570A51"}},
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

// committed returns the keys, body and signature under testdata: a pair made
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
