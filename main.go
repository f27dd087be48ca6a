// Command butler keeps the configuration files of locally running programs in step
// with a remote store. See README.md and `butler --help`.
package main

import (
	"context"
	"os"
	"runtime"
	"runtime/debug"

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
	tuneGC()
	quietChildren()
	d := commands.SystemDeps(pipeline.BuildInfo{Version: version, Revision: revision, GoVersion: runtime.Version()})
	d.Signals = signals
	os.Exit(commands.Main(context.Background(), os.Args, d))
}

// gcPercent is the collector's target (GOGC) when the environment sets
// none. A run allocates several times what it keeps (every response, the
// state read and written whole): at Go's default of 100, whose smallest
// target is a heap of 4 MiB, a no-change run of 1,000 files collects seven
// times in a tenth of a second; at 150, four times, for about a tenth less
// CPU and a MiB more at the peak (README, Performance).
const gcPercent = 150

// tuneGC sets gcPercent, unless GOGC says otherwise.
func tuneGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(gcPercent)
	}
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
