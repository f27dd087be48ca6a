package main

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"

	"github.com/butler-sre/butler/internal/program"
)

// TestManPageRenders formats the page of the built binary with groff, as man
// does, with every warning on: a roff mistake in what cli-docs and md2man make
// of the help texts shows here.
func TestManPageRenders(t *testing.T) {
	groff := program.Need(t, "groff")
	page := butlerOutput(t, "man")
	// -P-cbou: plain text, without bold or underline by overstriking.
	cmd := exec.Command(groff, "-man", "-ww", "-Tutf8", "-rLL=80n", "-P-cbou")
	cmd.Stdin = bytes.NewReader(page)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Fatalf("groff: %v\n%s", err, stderr.String())
	}
	text := stdout.String()
	for _, want := range []string{"BUTLER(1)", "EXIT STATUS", "ENVIRONMENT", "FILES", "EXAMPLES", "butler sync"} {
		if !strings.Contains(text, want) {
			t.Errorf("the formatted page lacks %q", want)
		}
	}
}
