package commands

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v3"
)

func versionCommand(d *Deps) *cli.Command {
	return &cli.Command{
		Name:         "version",
		Usage:        "print version, revision and Go version",
		OnUsageError: usageError,
		Action: noArgs(func(_ context.Context, cmd *cli.Command) error {
			_, err := fmt.Fprintf(d.Stdout, "butler %s (revision %s, %s)\n", d.Build.Version, d.Build.Revision, d.Build.GoVersion)
			return err
		}),
	}
}
