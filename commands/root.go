package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/butler-sre/butler/pipeline"
	"github.com/butler-sre/butler/pipeline/config"
	"github.com/butler-sre/butler/pipeline/state"
)

// Deps is what the commands take from the outside world; tests build it by hand.
type Deps struct {
	Stdout, Stderr io.Writer
	LookupEnv      func(string) (string, bool)
	Environ        []string
	Now            func() time.Time
	Hostname       string
	HTTPClient     *http.Client // nil: the default clients of pipeline
	Build          pipeline.BuildInfo
	// Signals are caught from the start of the process; nil: sync catches
	// them itself (tests).
	Signals *Signals

	logger *slog.Logger // set from --log-level and --log-format
}

// SystemDeps returns the Deps of a real process.
func SystemDeps(build pipeline.BuildInfo) *Deps {
	host, _ := os.Hostname()
	return &Deps{
		Stdout:    os.Stdout,
		Stderr:    os.Stderr,
		LookupEnv: os.LookupEnv,
		Environ:   os.Environ(),
		Now:       time.Now,
		Hostname:  host,
		Build:     build,
	}
}

// Exit codes of butler sync, as its --help and the README list them.
const (
	ExitOK     = 0
	ExitFailed = 1
	ExitConfig = 2
	ExitLocked = 3
)

// errUsage marks command-line mistakes: exit 2.
var errUsage = errors.New("usage error")

// ExitCode maps an error returned by a command to the process exit code.
func ExitCode(err error) int {
	var se statusExit
	var sig signalError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &se):
		return se.code
	case errors.As(err, &sig):
		return sig.exitCode()
	case errors.Is(err, state.ErrLocked):
		return ExitLocked
	case errors.Is(err, config.ErrInvalid), errors.Is(err, errUsage), errors.Is(err, state.ErrNewer), errors.Is(err, pipeline.ErrStateOwned):
		return ExitConfig
	default:
		return ExitFailed
	}
}

// Main runs butler with args (program name first) and returns the exit code.
func Main(ctx context.Context, args []string, d *Deps) int {
	err := NewRoot(d).Run(ctx, args)
	if err != nil && !errors.Is(err, pipeline.ErrFailed) && !errors.As(err, new(statusExit)) {
		// Failures of a sync were logged as they happened, and status prints its
		// own; anything else is said here.
		fmt.Fprintf(d.Stderr, "butler: %v\n", err)
	}
	return ExitCode(err)
}

// NewRoot builds the root command.
func NewRoot(d *Deps) *cli.Command {
	return &cli.Command{
		Name:  "butler",
		Usage: "keep the configuration files of local programs in step with a remote store",
		Description: `butler is a one-shot command for cron or a systemd timer. For every manager in
butler.toml it fetches the files, renders and validates them, writes what changed
atomically, reloads the manager, and keeps a last-known-good copy that it puts back
when a reload is refused. It reports what it did in a node_exporter textfile.`,
		Version:         d.Build.Version,
		Writer:          d.Stdout,
		ErrWriter:       d.Stderr,
		ExitErrHandler:  func(context.Context, *cli.Command, error) {},
		OnUsageError:    usageError,
		HideHelpCommand: true,
		// butler completion bash|zsh|fish (completion.go)
		EnableShellCompletion:           true,
		ConfigureShellCompletionCommand: configureCompletion,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "butler.toml: a path or a source URL", Value: "/etc/butler/butler.toml", Sources: cli.EnvVars("BUTLER_CONFIG")},
			&cli.StringFlag{Name: "config-key", Usage: "minisign public key that must have signed a --config URL (its signature at URL.minisig)", Sources: cli.EnvVars("BUTLER_CONFIG_KEY")},
			&cli.StringFlag{Name: "state-dir", Usage: "override [butler] state_dir", Sources: cli.EnvVars("BUTLER_STATE_DIR")},
			&cli.StringFlag{Name: "textfile", Usage: "override [butler] textfile", Sources: cli.EnvVars("BUTLER_TEXTFILE")},
			&cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error", Value: "info"},
			&cli.StringFlag{Name: "log-format", Usage: "text or json", Value: "text"},
		},
		Before: func(ctx context.Context, cmd *cli.Command) (context.Context, error) {
			l, err := newLogger(d.Stderr, cmd.String("log-level"), cmd.String("log-format"))
			if err != nil {
				return ctx, err
			}
			d.logger = l
			return ctx, nil
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if cmd.NArg() > 0 {
				return fmt.Errorf("%w: unknown command %q (see butler --help)", errUsage, cmd.Args().First())
			}
			return fmt.Errorf("%w: no command given (see butler --help)", errUsage)
		},
		Commands: []*cli.Command{
			syncCommand(d),
			checkCommand(d),
			renderCommand(d),
			statusCommand(d),
			versionCommand(d),
			manCommand(d), // hidden: make man
		},
	}
}

// subcommand builds the command name, which takes no arguments (all but
// status, whose errors follow the Nagios convention): its help text, its
// flags and its action. A bad flag or any argument is a usage error (exit 2),
// and then action does not run.
func subcommand(name string, flags []cli.Flag, action cli.ActionFunc) *cli.Command {
	cmd := described(name)
	cmd.Flags = flags
	cmd.OnUsageError = usageError
	cmd.Action = func(ctx context.Context, cmd *cli.Command) error {
		if cmd.NArg() > 0 {
			return fmt.Errorf("%w: %s takes no arguments, got %q", errUsage, cmd.Name, cmd.Args().Slice())
		}
		return action(ctx, cmd)
	}
	return cmd
}

func usageError(_ context.Context, _ *cli.Command, err error, _ bool) error {
	return fmt.Errorf("%w: %w", errUsage, err)
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("%w: --log-level %q: want debug, info, warn or error", errUsage, level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("%w: --log-format %q: want text or json", errUsage, format)
	}
}

// loaded is a configuration as the commands get it.
type loaded struct {
	cfg     *config.Config
	fetched *bool  // nil for a local file; false when the kept copy is used
	keep    []byte // a remote configuration to keep once the lock is held
	keepSig []byte // and its signature
}

// loadConfig reads the configuration named by --config, a path or a source URL,
// and applies --state-dir and --textfile.
func loadConfig(ctx context.Context, cmd *cli.Command, d *Deps) (*config.Config, error) {
	l, err := loadConfigFallback(ctx, cmd, d, false)
	return l.cfg, err
}

// loadConfigFallback is loadConfig for sync (fallback set): a remote
// configuration that cannot be fetched or is invalid is replaced by the copy
// kept from an earlier run.
func loadConfigFallback(ctx context.Context, cmd *cli.Command, d *Deps, fallback bool) (l loaded, err error) {
	loc := cmd.String("config")
	src := pipeline.ConfigSource{URL: loc, LookupEnv: d.LookupEnv, Client: d.HTTPClient, Key: cmd.String("config-key")}
	switch {
	case isURL(loc) && fallback:
		var rc *pipeline.RemoteConfig
		rc, err = pipeline.LoadRemoteConfig(ctx, src, cmd.String("state-dir"))
		if rc != nil {
			l = loaded{cfg: rc.Config, fetched: &rc.Fetched, keep: rc.Keep, keepSig: rc.KeepSignature}
			if rc.Problem != nil {
				d.logger.Warn("running with the configuration kept from an earlier run", "phase", "config", "error", rc.Problem)
			}
		}
	case isURL(loc):
		var got *pipeline.Fetched
		if got, err = pipeline.FetchConfig(ctx, src); got != nil {
			l.cfg = got.Config
		}
	default:
		l.cfg, err = config.LoadFile(loc, d.LookupEnv)
	}
	if l.cfg != nil {
		var textfile *string
		if cmd.IsSet("textfile") {
			v := cmd.String("textfile")
			textfile = &v
		}
		if oerr := l.cfg.Override(cmd.String("state-dir"), textfile); oerr != nil {
			err = errors.Join(err, oerr)
		}
	}
	return l, err
}

func isURL(loc string) bool {
	return strings.Contains(loc, "://") || strings.Contains(loc, "::")
}
