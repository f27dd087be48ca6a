// Package minisigntest makes key pairs and signatures with the real
// minisign tool, for tests. Tests only.
package minisigntest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Tool returns the path of the minisign tool. Without it the test
// skips, except under CI (CI set), where it fails: scripts/test-deps.sh
// installs it.
func Tool(t testing.TB) string {
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

// Pair is a key pair made by the minisign tool.
type Pair struct {
	Pub    string // the base64 line, "RW..."
	PubTxt string // the whole minisign.pub file
	ID     string // the key ID: 16 upper-case hex digits
	Sec    string // path of the secret key, not encrypted
}

// NewPair makes a key pair with `minisign -G -W` in a temporary directory.
func NewPair(t testing.TB, tool string) Pair {
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
	// minisign prints the key ID without its leading zeros.
	id := strings.ToUpper(comment[len(comment)-1])
	id = strings.Repeat("0", max(0, 16-len(id))) + id
	return Pair{Pub: lines[1], PubTxt: string(text), ID: id, Sec: sec}
}

// Sign writes body to a file and signs it with `minisign -S`, with the
// trusted comment given (none: minisign's own, which has a timestamp), and
// returns the content of the .minisig file.
func Sign(t testing.TB, tool string, p Pair, body []byte, extra ...string) []byte {
	t.Helper()
	f := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(f, body, 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, tool, append([]string{"-S", "-s", p.Sec, "-m", f}, extra...)...)
	sig, err := os.ReadFile(f + ".minisig")
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func run(t testing.TB, tool string, args ...string) {
	t.Helper()
	cmd := exec.Command(tool, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("minisign %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}
