package commands

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v3"
)

func checkCommand(d *Deps) *cli.Command {
	return &cli.Command{
		Name:  "check",
		Usage: "validate the configuration offline; exit 0 when valid, 2 when not",
		Description: `Checks every rule of the configuration without fetching anything.

EXIT STATUS
   0  the configuration is valid
   2  it is not; every problem is printed, one per line`,
		OnUsageError: usageError,
		Action: noArgs(func(ctx context.Context, cmd *cli.Command) error {
			cfg, err := loadConfig(ctx, cmd, d)
			if err != nil {
				return err
			}
			files := 0
			for _, m := range cfg.Managers {
				files += len(m.Files)
			}
			fmt.Fprintf(d.Stdout, "%s: configuration OK: %d managers, %d files\n", cfg.Source, len(cfg.Managers), files)
			return nil
		}),
	}
}
