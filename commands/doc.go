// Package commands wires butler's command line: flags become options, and each
// command makes one call into package pipeline. Exit codes are decided in one
// place, ExitCode.
package commands
