package commands

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v3"

	"github.com/butler-sre/butler/pipeline"
)

func renderCommand(d *Deps) *cli.Command {
	return subcommand("render", []cli.Flag{
		&cli.StringFlag{Name: "manager", Usage: "the manager whose files to print", Required: true},
		&cli.StringFlag{Name: "file", Usage: "only this file of it (its path)"},
	}, func(ctx context.Context, cmd *cli.Command) error {
		cfg, err := loadConfig(ctx, cmd, d)
		if err != nil {
			return err
		}
		files, err := pipeline.RenderManager(ctx, cfg, cmd.String("manager"), cmd.String("file"), pipeline.Options{
			Now: d.Now, Logger: d.logger, Environ: d.Environ, Hostname: d.Hostname, HTTPClient: d.HTTPClient,
		})
		if err != nil {
			return err
		}
		if cmd.IsSet("file") {
			_, err := d.Stdout.Write(files[0].Data)
			return err
		}
		for _, f := range files {
			if _, err := fmt.Fprintf(d.Stdout, "==> %s <==\n%s", f.Path, f.Data); err != nil {
				return err
			}
			if n := len(f.Data); n > 0 && f.Data[n-1] != '\n' {
				fmt.Fprintln(d.Stdout)
			}
		}
		return nil
	})
}
