package commands

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v3"
)

func checkCommand(d *Deps) *cli.Command {
	return subcommand("check", nil, func(ctx context.Context, cmd *cli.Command) error {
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
	})
}
