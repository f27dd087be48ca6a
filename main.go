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
	tuneGC()
	quietChildren()
	d := commands.SystemDeps(pipeline.BuildInfo{Version: version, Revision: revision, GoVersion: runtime.Version()})
	d.Signals = signals
	os.Exit(commands.Main(context.Background(), os.Args, d))
}

// gcBallast is heap that a run never touches: the collector counts it, so a
// run whose own heap stays well below it does not collect at all, while a
// large one collects in proportion to its heap as usual (a memory limit
// instead makes the collector run without end once the live heap passes
// it: a 10 MiB file, 10,000 files). Never written to, its pages are not made
// resident: it costs address space, not memory.
const gcBallast = 16 << 20

// ballast keeps gcBallast alive for the whole run: it is never read.
//
//lint:ignore U1000 held, never read, on purpose
var ballast []byte

// tuneGC fits the garbage collector to a one-shot command that usually
// stays small: a no-change run of a few hundred files exits before the
// default collector (which starts at 4 MiB) would have collected twice.
// GOGC or GOMEMLIMIT in the environment win.
func tuneGC() {
	_, gogc := os.LookupEnv("GOGC")
	_, limit := os.LookupEnv("GOMEMLIMIT")
	if !gogc && !limit {
		ballast = make([]byte, gcBallast)
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
