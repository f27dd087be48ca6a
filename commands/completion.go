package commands

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v3"
)

// completionShells are the shells whose completion scripts butler documents and
// its Debian package installs. urfave/cli also has one for PowerShell, which
// stays callable but is left out of the help.
var completionShells = []string{"bash", "zsh", "fish"}

// configureCompletion shapes the completion command that urfave/cli adds to the
// root command (EnableShellCompletion): listed in the help, with the install
// locations an operator needs. The scripts it prints ask butler itself for the
// candidates (butler ... --generate-shell-completion), so they follow the
// commands and flags of the installed binary and never need regenerating.
func configureCompletion(cmd *cli.Command) {
	cmd.Hidden = false
	cmd.Usage = "print a shell completion script for bash, zsh or fish"
	cmd.UsageText = "butler completion bash|zsh|fish"
	cmd.Description = `Prints a script that completes butler's commands and flags; the Debian package
installs all three. To try one in the current shell, or to install it by hand:

   bash:  source <(butler completion bash)
          butler completion bash > /usr/share/bash-completion/completions/butler
   zsh:   butler completion zsh > /usr/share/zsh/vendor-completions/_butler
   fish:  butler completion fish > /usr/share/fish/vendor_completions.d/butler.fish`
	cmd.OnUsageError = usageError
	// Runs only when no shell subcommand matched.
	cmd.Action = func(_ context.Context, cmd *cli.Command) error {
		if cmd.NArg() == 0 {
			return fmt.Errorf("%w: completion: name a shell: bash, zsh or fish", errUsage)
		}
		return fmt.Errorf("%w: completion: unknown shell %q: want bash, zsh or fish", errUsage, cmd.Args().First())
	}
	for _, sub := range cmd.Commands {
		sub.Hidden = true
		for _, sh := range completionShells {
			if sub.Name == sh {
				sub.Hidden = false
				sub.Usage = "print the " + sh + " completion script"
			}
		}
	}
}
