package commands

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/butler-sre/butler/pipeline"
)

// signalError is the cause of a run cancelled by SIGTERM or SIGINT. It is
// pipeline.ErrInterrupted to the pipeline and 128+signal to the exit code.
type signalError struct{ sig syscall.Signal }

func (e signalError) Error() string        { return "interrupted by " + e.sig.String() }
func (e signalError) Is(target error) bool { return target == pipeline.ErrInterrupted }

// exitCode is the shell's code for a process ended by the signal: 143, 130.
func (e signalError) exitCode() int { return 128 + int(e.sig) }

// withSignals returns a context cancelled, with a signalError cause, on the
// first SIGTERM or SIGINT. Later signals are swallowed until stop is called:
// the run is already winding down within its grace period.
func withSignals(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-ch:
			cancel(signalError{sig.(syscall.Signal)})
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		close(done)
		cancel(nil)
	}
}
