package commands

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v3"
)

func versionCommand(d *Deps) *cli.Command {
	return subcommand("version", nil, func(_ context.Context, cmd *cli.Command) error {
		_, err := fmt.Fprintf(d.Stdout, "butler %s (revision %s, %s)\n", d.Build.Version, d.Build.Revision, d.Build.GoVersion)
		return err
	})
}
