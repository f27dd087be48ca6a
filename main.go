// Command butler keeps the configuration files of locally running programs in step
// with a remote store. See README.md and `butler --help`.
package main

import (
	"context"
	"os"
	"runtime"

	"github.com/butler-sre/butler/commands"
	"github.com/butler-sre/butler/pipeline"
)

// Set at build time with -ldflags "-X main.version=... -X main.revision=...".
var (
	version  = "dev"
	revision = "unknown"
)

// signals are caught as early as user code can: before main, so that a
// SIGTERM sent while butler starts never kills it mid-way.
var signals = commands.CatchSignals()

func main() {
	quietChildren()
	d := commands.SystemDeps(pipeline.BuildInfo{Version: version, Revision: revision, GoVersion: runtime.Version()})
	d.Signals = signals
	os.Exit(commands.Main(context.Background(), os.Args, d))
}

// quietChildren keeps libraries from talking or asking where a cron job has
// nobody to answer: the AWS SDK logs "Response has no supported checksum" for
// S3-compatible servers, and git may prompt for a password until the deadline.
func quietChildren() {
	for k, v := range map[string]string{
		"AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
		"GIT_TERMINAL_PROMPT":              "0",
	} {
		if _, set := os.LookupEnv(k); !set {
			os.Setenv(k, v)
		}
	}
}
