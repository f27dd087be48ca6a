package commands

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"
)

// TestSignalsBeforeSync: a signal caught before a sync takes the signals over
// ends the process at once with the shell's code; during a sync it cancels
// the run instead, with the signal as the cause.
func TestSignalsBeforeSync(t *testing.T) {
	exited := make(chan int, 1)
	s := &Signals{ch: make(chan os.Signal, 2), exit: func(code int) { exited <- code }}
	signal.Notify(s.ch, syscall.SIGTERM)
	defer signal.Stop(s.ch)
	go s.loop()

	ctx, stop := withSignals(context.Background(), s)
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the sync's context was not cancelled by SIGTERM")
	}
	var se signalError
	if cause := context.Cause(ctx); !errors.As(cause, &se) || se.exitCode() != 143 {
		t.Errorf("cause = %v, want SIGTERM (exit 143)", cause)
	}
	stop()

	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-exited:
		if code != 143 {
			t.Errorf("exit code %d, want 143", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a signal outside a sync did not end the process")
	}
}
