// Command butler keeps the configuration files of locally running programs in step
// with a remote store. See README.md and `butler --help`.
package main

import (
	"context"
	"math"
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
	d.ConfigLoaded = func(files int) { tuneGCForFiles(files) }
	os.Exit(commands.Main(context.Background(), os.Args, d))
}

// gcMemoryLimit is the heap size below which a small run never collects
// garbage; gcSmallRun the number of files up to which a run counts as small.
const (
	gcMemoryLimit = 20 << 20
	gcSmallRun    = 2000
)

// tuneGC fits the garbage collector to a one-shot command that usually
// stays small: a no-change run of a few hundred files exits before the
// default collector (which starts at 4 MiB) would have collected twice, so
// butler collects only once the heap nears gcMemoryLimit. GOGC or GOMEMLIMIT
// in the environment win.
func tuneGC() {
	if gcFromEnvironment() {
		return
	}
	debug.SetMemoryLimit(gcMemoryLimit)
	debug.SetGCPercent(-1)
}

// tuneGCForFiles goes back to the usual collector for a run of many files,
// whose heap would outgrow gcMemoryLimit and make the collector run without
// end: it collects in proportion to the heap again.
func tuneGCForFiles(files int) {
	if files > gcSmallRun && !gcFromEnvironment() {
		debug.SetGCPercent(100)
		debug.SetMemoryLimit(math.MaxInt64)
	}
}

func gcFromEnvironment() bool {
	_, gogc := os.LookupEnv("GOGC")
	_, limit := os.LookupEnv("GOMEMLIMIT")
	return gogc || limit
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
