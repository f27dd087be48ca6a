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

func main() {
	d := commands.SystemDeps(pipeline.BuildInfo{Version: version, Revision: revision, GoVersion: runtime.Version()})
	os.Exit(commands.Main(context.Background(), os.Args, d))
}
