package git

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// outputMax is how much of git's stderr is kept for its error message.
const outputMax = 64 << 10

// waitDelay bounds the wait for the output pipes once git has exited, in
// case a process that left its group holds them open.
const waitDelay = time.Second

// run runs git with args in dir, in a process group of its own, and
// returns its standard output. When ctx ends, the group is killed; when git
// exits, whatever is left of its group is killed too, before git is
// reaped: until then its process group id cannot name another group.
func (r *runner) run(ctx context.Context, dir string, args ...string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("git %s: %w", args[0], err)
	}
	cmd := exec.Command(r.git, append(r.config(), args...)...)
	cmd.Dir = dir
	cmd.Env = r.env
	// A group of its own, so that one kill reaches every process git
	// starts; and git killed too should butler die without a chance to
	// kill the group (SIGKILL, the OOM killer).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = waitDelay
	var stdout bytes.Buffer
	stderr := &limitedBuffer{max: outputMax}
	cmd.Stdout, cmd.Stderr = &stdout, stderr // stdin: /dev/null
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("git %s: %w", args[0], err)
	}
	pgid := cmd.Process.Pid
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		waitExited(pgid)
	}()
	select {
	case <-exited:
	case <-ctx.Done():
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-exited
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL) // an ssh or upload-pack git left behind
	err := cmd.Wait()
	if cerr := ctx.Err(); cerr != nil {
		return nil, fmt.Errorf("git %s: %w", args[0], cerr)
	}
	if err != nil && !(errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState.Success()) {
		return nil, &gitError{cmd: args[0], line: message(stderr.buf.Bytes(), err)}
	}
	return stdout.Bytes(), nil
}

// waitExited blocks until the process pid has exited, without reaping it.
func waitExited(pid int) {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, syscall.EINTR) {
			return
		}
	}
}
