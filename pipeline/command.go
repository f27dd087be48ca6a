package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"time"
)

// commandResult is what running an external program gave.
type commandResult struct {
	StartErr error  // the program could not be started
	TimedOut bool   // it did not exit within its timeout or the run's deadline
	Reason   string // why it timed out
	OK       bool   // it exited 0
	Err      error  // how it failed otherwise (exit status, signal)
	Output   string // stdout and stderr together, trimmed, at most reloadDetailMax bytes
}

// runCommand runs argv in dir (the current directory when "") with a timeout, for
// reload and check commands. The program runs in its own process group with stdin
// from /dev/null; on a timeout the whole group is killed. A background process it
// leaves holding the output open holds up the run for at most reloadWaitDelay.
func runCommand(ctx context.Context, argv []string, dir string, timeout time.Duration) commandResult {
	if len(argv) == 0 || argv[0] == "" {
		return commandResult{StartErr: errors.New("empty command")}
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The negative pid names the process group: the command and
		// everything it started that did not leave the group.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = reloadWaitDelay
	out := &reloadOutput{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return commandResult{StartErr: reloadInnerExecError(err)}
	}
	err := cmd.Wait()
	res := commandResult{Output: reloadTrim(out.String())}
	switch {
	case err == nil || errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState.Success():
		res.OK = true
	case cctx.Err() != nil:
		res.TimedOut = true
		res.Reason = fmt.Sprintf("no exit within %s", timeout)
		if ctx.Err() != nil {
			res.Reason = reloadCtxReason(ctx)
		}
	default:
		res.Err = err
	}
	return res
}
