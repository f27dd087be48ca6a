package commands

import (
	"strings"
	"testing"
)

func TestCompletionScripts(t *testing.T) {
	tests := []struct {
		shell string
		want  []string // what registers the completion for the command butler
	}{
		{"bash", []string{"complete -o bashdefault -o default -F __butler_bash_autocomplete butler", "--generate-shell-completion"}},
		{"zsh", []string{"#compdef butler", "compdef _butler butler", "--generate-shell-completion"}},
		{"fish", []string{"complete -c butler -f -a '(__butler_perform_completion)'", "--generate-shell-completion"}},
	}
	for _, tt := range tests {
		t.Run(tt.shell, func(t *testing.T) {
			code, stdout, stderr := runButler(t, "completion", tt.shell)
			if code != 0 || stderr != "" {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stdout, w) {
					t.Errorf("the %s script lacks %q:\n%s", tt.shell, w, stdout)
				}
			}
		})
	}
}

func TestCompletionUsage(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		stderr string
	}{
		{"no shell", []string{"completion"}, "name a shell"},
		{"unknown shell", []string{"completion", "tcsh"}, `unknown shell "tcsh"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runButler(t, tt.args...)
			if code != ExitConfig || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, ExitConfig, tt.stderr)
			}
		})
	}
}

// TestCompletionCandidates asks butler for candidates the way the scripts do.
// (The root command's candidates come from os.Args: help_test.go of
// package main asks the built binary for them.)
func TestCompletionCandidates(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    []string
		notWant []string
	}{
		{"a sync flag by prefix", []string{"sync", "--dr", "--generate-shell-completion"},
			[]string{"--dry-run:"}, []string{"--force"}},
		{"status flags by prefix", []string{"status", "--n", "--generate-shell-completion"},
			[]string{"--nagios:"}, []string{"--json"}},
		{"shells", []string{"completion", "--generate-shell-completion"},
			[]string{"bash:", "zsh:", "fish:"}, []string{"pwsh"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runButler(t, tt.args...)
			if code != 0 {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stdout, w) {
					t.Errorf("candidates lack %q:\n%s", w, stdout)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(stdout, w) {
					t.Errorf("candidates offer %q:\n%s", w, stdout)
				}
			}
		})
	}
}
