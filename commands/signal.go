package commands

import (
	"context"
	"os"
	"os/signal"
	"sync"
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

// Signals catches SIGTERM and SIGINT from the first moment of the process, so
// that a signal sent while butler starts is never the default death: until a
// sync takes them over, a signal ends the process at once with the shell's
// code (nothing has been started then).
type Signals struct {
	ch      chan os.Signal
	mu      sync.Mutex
	handler func(syscall.Signal) // nil: exit at once
	exit    func(code int)
}

// CatchSignals starts catching SIGTERM and SIGINT.
func CatchSignals() *Signals {
	s := &Signals{ch: make(chan os.Signal, 2), exit: os.Exit}
	signal.Notify(s.ch, syscall.SIGTERM, syscall.SIGINT)
	go s.loop()
	return s
}

func (s *Signals) loop() {
	for sig := range s.ch {
		s.mu.Lock()
		h := s.handler
		s.mu.Unlock()
		if h == nil {
			s.exit(signalError{sig.(syscall.Signal)}.exitCode())
			return
		}
		h(sig.(syscall.Signal))
	}
}

// handle makes h the receiver of the signals until the returned func is called.
func (s *Signals) handle(h func(syscall.Signal)) (restore func()) {
	s.mu.Lock()
	s.handler = h
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		s.handler = nil
		s.mu.Unlock()
	}
}

// withSignals returns a context cancelled, with a signalError cause, on the
// first SIGTERM or SIGINT. Later signals are swallowed until stop is called:
// the run is already winding down within its grace period. sigs is where the
// signals come from; nil catches them here (tests run Main without one).
func withSignals(ctx context.Context, sigs *Signals) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	if sigs != nil {
		restore := sigs.handle(func(sig syscall.Signal) { cancel(signalError{sig}) })
		return ctx, func() {
			restore()
			cancel(nil)
		}
	}
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
