// Package command runs the external programs of a manager: its check command
// and its reload command.
//
// Guarantees:
//   - A program runs in its own process group with stdin from /dev/null; on
//     a timeout, or when the run's context ends, the whole group is killed,
//     so no child outlives butler.
//   - A background process holding the output open holds up the run for at
//     most a second after the program exits.
//   - At most DetailMax bytes of output are kept, so a chatty program neither
//     blocks nor fills memory.
package command

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"
)

const (
	// DetailMax is how much output (or response body) a detail keeps.
	DetailMax = 512
	// waitDelay bounds the wait for the output pipes once the program has
	// exited or been killed.
	waitDelay = time.Second
)

// Result is what running an external program gave.
type Result struct {
	StartErr error  // the program could not be started
	TimedOut bool   // it did not exit within its timeout or the run's deadline
	Reason   string // why it timed out
	OK       bool   // it exited 0
	Err      error  // how it failed otherwise (exit status, signal)
	Output   string // stdout and stderr together, trimmed, at most DetailMax bytes
}

// Run runs argv in dir (the current directory when "") with a timeout.
func Run(ctx context.Context, argv []string, dir string, timeout time.Duration) Result {
	if len(argv) == 0 || argv[0] == "" {
		return Result{StartErr: errors.New("empty command")}
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The negative pid names the process group: the program and
		// everything it started that did not leave the group.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = waitDelay
	out := &output{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		var ee *exec.Error
		if errors.As(err, &ee) {
			err = ee.Err // its text repeats the program's name
		}
		return Result{StartErr: err}
	}
	err := cmd.Wait()
	res := Result{Output: Trim(out.String())}
	switch {
	case err == nil || errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState.Success():
		res.OK = true
	case cctx.Err() != nil:
		res.TimedOut = true
		res.Reason = fmt.Sprintf("no exit within %s", timeout)
		if ctx.Err() != nil {
			res.Reason = EndReason(ctx)
		}
	default:
		res.Err = err
	}
	return res
}

// EndReason says why the run's context ended.
func EndReason(ctx context.Context) string {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return "run deadline reached"
	}
	return "run cancelled"
}

// Trim cuts s to at most DetailMax bytes without splitting a character,
// replaces invalid UTF-8 with U+FFFD and trims surrounding space.
func Trim(s string) string {
	s = strings.ToValidUTF8(cut(s), string(utf8.RuneError))
	// A replacement is longer than the invalid byte it stands for.
	return strings.TrimSpace(cut(s))
}

// cut shortens s to at most DetailMax bytes, dropping a character the
// limit falls inside.
func cut(s string) string {
	if len(s) <= DetailMax {
		return s
	}
	n := DetailMax
	for i := 0; i < utf8.UTFMax-1 && n > 0 && !utf8.RuneStart(s[n]); i++ {
		n--
	}
	return s[:n]
}

// Join joins the non-empty parts of a detail with ": ".
func Join(parts ...string) string {
	var kept []string
	for _, p := range parts {
		if p != "" {
			kept = append(kept, p)
		}
	}
	return strings.Join(kept, ": ")
}

// output keeps the first DetailMax bytes written to it and discards the rest.
type output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write keeps what fits and reports everything written.
func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if room := DetailMax - o.buf.Len(); room > 0 {
		o.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// String returns what was kept.
func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}
