package commands

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/urfave/cli/v3"

	"github.com/butler-sre/butler/pipeline"
	"github.com/butler-sre/butler/pipeline/config"
)

func syncCommand(d *Deps) *cli.Command {
	return subcommand("sync", []cli.Flag{
		&cli.StringSliceFlag{Name: "manager", Usage: "only this manager (repeatable)"},
		&cli.BoolFlag{Name: "dry-run", Usage: "print a unified diff of what would change; write nothing, reload nothing"},
		&cli.BoolFlag{Name: "force", Usage: "write and reload even when nothing changed; re-apply content whose reload failed"},
		&cli.DurationFlag{Name: "splay", Usage: "first wait a random time in [0, DURATION)"},
		&cli.DurationFlag{Name: "timeout", Usage: "deadline for the whole run (overrides [butler] timeout)"},
	}, func(ctx context.Context, cmd *cli.Command) error {
		for _, f := range []string{"splay", "timeout"} {
			if cmd.Duration(f) < 0 {
				return fmt.Errorf("%w: --%s %s: must not be negative", errUsage, f, cmd.Duration(f))
			}
		}
		ctx, stop := withSignals(ctx, d.Signals)
		defer stop()
		l, err := loadConfigFallback(ctx, cmd, d, true)
		cfg := l.cfg
		if err != nil {
			recordConfigError(cmd, cfg, d)
			return err
		}
		opts := pipeline.Options{
			Managers:            cmd.StringSlice("manager"),
			DryRun:              cmd.Bool("dry-run"),
			Force:               cmd.Bool("force"),
			Splay:               cmd.Duration("splay"),
			Timeout:             cmd.Duration("timeout"),
			Now:                 d.Now,
			Logger:              d.logger,
			Stdout:              d.Stdout,
			Environ:             d.Environ,
			Hostname:            d.Hostname,
			Build:               d.Build,
			HTTPClient:          d.HTTPClient,
			ConfigFetched:       l.fetched,
			KeepConfig:          l.keep,
			KeepConfigSignature: l.keepSig,
		}
		res, err := pipeline.Run(ctx, cfg, opts)
		if errors.Is(err, config.ErrInvalid) && !opts.DryRun {
			recordConfigError(cmd, cfg, d)
		}
		if res != nil {
			summarize(d.logger, res, opts.DryRun, err)
		}
		return err
	})
}

// recordConfigError writes the metrics of a run stopped by a configuration error,
// when the textfile path is known.
func recordConfigError(cmd *cli.Command, cfg *config.Config, d *Deps) {
	if cmd.Bool("dry-run") {
		return
	}
	b := config.Butler{StateDir: config.DefaultStateDir, Textfile: config.DefaultTextfile}
	if cfg != nil {
		if !cfg.StateDirSafe() {
			return // the state directory is a manager's dest: touch nothing
		}
		b = cfg.Butler
	}
	if v := cmd.String("state-dir"); v != "" {
		b.StateDir = v
	}
	if cmd.IsSet("textfile") {
		b.Textfile = cmd.String("textfile")
	} else if cfg == nil {
		// The configuration could not be read, so its textfile is not known.
		return
	}
	if err := pipeline.RecordFailedRun(b, d.Build, d.Now); err != nil {
		d.logger.Warn("could not write the metrics of the failed run", "error", err.Error())
	}
}

// summarize logs one line for the whole run.
func summarize(log *slog.Logger, res *pipeline.Result, dryRun bool, err error) {
	counts := map[string]int{}
	for _, m := range res.Managers {
		counts[m.Outcome]++
	}
	attrs := []any{"managers", len(res.Managers), "duration", res.Duration.String()}
	for _, k := range []string{"unchanged", "applied", "diff", "failed"} {
		if counts[k] > 0 {
			attrs = append(attrs, k, counts[k])
		}
	}
	msg := "sync finished"
	if dryRun {
		msg = "dry run finished"
	}
	if counts["failed"] > 0 || err != nil {
		log.Error(msg, attrs...)
		return
	}
	log.Info(msg, attrs...)
}
