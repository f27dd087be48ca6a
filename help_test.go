package main

// What the built binary prints for other programs to read, read by them: its
// bash completion script, sourced by bash, and its man page, formatted by
// groff.

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCompletionBash sources the script of `butler completion bash` in a real
// bash and completes command lines with it, as a user pressing TAB would: the
// script asks the built binary (found on PATH) for the candidates.
// bash-completion's _get_comp_words_by_ref is replaced by a no-op, so the test
// needs bash only.
func TestCompletionBash(t *testing.T) {
	bash := needProgram(t, "bash")
	binDir := filepath.Dir(butlerBin)
	script := butlerOutput(t, "completion", "bash")
	scriptPath := filepath.Join(t.TempDir(), "butler.bash")
	if err := os.WriteFile(scriptPath, script, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		words string // the command line, the last word being completed
		want  []string
	}{
		{"butler s", []string{"status", "sync"}},
		{"butler c", []string{"check", "completion"}},
		{"butler m", nil}, // man is hidden
		{"butler --st", []string{"--state-dir"}},
		{"butler sync --dr", []string{"--dry-run"}},
		// Global flags may follow the command too.
		{"butler status --", []string{"--config", "--config-key", "--events", "--help", "--json", "--log-format", "--log-level", "--manager", "--nagios", "--state-dir", "--textfile"}},
		{"butler completion ", []string{"bash", "fish", "zsh"}},
	}
	for _, tt := range tests {
		t.Run(tt.words, func(t *testing.T) {
			words := strings.Fields(tt.words)
			if strings.HasSuffix(tt.words, " ") {
				words = append(words, "")
			}
			quoted := make([]string, len(words))
			for i, w := range words {
				quoted[i] = "'" + w + "'"
			}
			prog := `_get_comp_words_by_ref() { :; }
source "$1"
COMP_WORDS=(` + strings.Join(quoted, " ") + `)
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
__butler_bash_autocomplete
printf '%s\n' "${COMPREPLY[@]}" | sort
`
			cmd := exec.Command(bash, "-c", prog, "bash", scriptPath)
			cmd.Env = append(os.Environ(), "PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"))
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("bash: %v\n%s", err, out)
			}
			got := strings.Fields(string(out))
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("completions of %q = %q, want %q", tt.words, got, tt.want)
			}
		})
	}
}

// TestManPageRenders formats the page of the built binary with groff, as man
// does, with every warning on: a roff mistake in what cli-docs and md2man make
// of the help texts shows here.
func TestManPageRenders(t *testing.T) {
	groff := needProgram(t, "groff")
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
