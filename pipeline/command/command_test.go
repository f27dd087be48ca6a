package command

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/butler-sre/butler/internal/envtest"
)

// needPrograms skips the test when one of the programs it runs is missing.
func needPrograms(t *testing.T, names ...string) {
	t.Helper()
	for _, name := range names {
		envtest.Program(t, name, "coreutils")
	}
}

func TestRun(t *testing.T) {
	needPrograms(t, "true", "false", "sh", "sleep", "pwd")
	dir := t.TempDir()
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		argv       []string
		dir        string
		timeout    time.Duration
		ok         bool
		timedOut   bool
		wantReason string
		wantErr    string // in Err
		wantStart  string // in StartErr
		wantOutput string
	}{
		{name: "exit 0", argv: []string{"true"}, ok: true},
		{name: "exit 1", argv: []string{"false"}, wantErr: "exit status 1"},
		{name: "stdout and stderr together", argv: []string{"sh", "-c", "echo reloading; echo 'bad config line 3' >&2; exit 3"},
			wantErr: "exit status 3", wantOutput: "reloading\nbad config line 3"},
		{name: "output trimmed", argv: []string{"sh", "-c", "printf '\\n  done  \\n\\n'"}, ok: true, wantOutput: "done"},
		{name: "killed by a signal", argv: []string{"sh", "-c", "kill -9 $$"}, wantErr: "killed"},
		{name: "runs in dir", argv: []string{"sh", "-c", "pwd -P"}, dir: dir, ok: true, wantOutput: realDir},
		{name: "stdin is empty", argv: []string{"sh", "-c", "cat; echo end of input"}, ok: true, wantOutput: "end of input"},
		{name: "timeout", argv: []string{"sleep", "10"}, timeout: 300 * time.Millisecond, timedOut: true, wantReason: "no exit within 300ms"},
		{name: "timeout keeps the output", argv: []string{"sh", "-c", "echo started; sleep 10"}, timeout: 300 * time.Millisecond,
			timedOut: true, wantReason: "no exit within 300ms", wantOutput: "started"},
		{name: "missing binary", argv: []string{"/nonexistent/check-me"}, wantStart: "no such file or directory"},
		{name: "not in PATH", argv: []string{"no-such-check-command-here"}, wantStart: "executable file not found"},
		{name: "empty argv", argv: nil, wantStart: "empty command"},
		{name: "empty program", argv: []string{""}, wantStart: "empty command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			timeout := tt.timeout
			if timeout == 0 {
				timeout = 10 * time.Second
			}
			start := time.Now()
			res := Run(context.Background(), tt.argv, tt.dir, timeout)
			if elapsed := time.Since(start); elapsed > 5*time.Second {
				t.Errorf("took %s, want a prompt return", elapsed)
			}
			if res.OK != tt.ok || res.TimedOut != tt.timedOut {
				t.Errorf("OK %v, TimedOut %v; want %v, %v (%+v)", res.OK, res.TimedOut, tt.ok, tt.timedOut, res)
			}
			if res.Reason != tt.wantReason {
				t.Errorf("Reason %q, want %q", res.Reason, tt.wantReason)
			}
			if res.Output != tt.wantOutput {
				t.Errorf("Output %q, want %q", res.Output, tt.wantOutput)
			}
			checkErr(t, "Err", res.Err, tt.wantErr)
			checkErr(t, "StartErr", res.StartErr, tt.wantStart)
		})
	}
}

// checkErr fails unless err is nil when want is "", or contains want.
func checkErr(t *testing.T, what string, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("%s %v, want none", what, err)
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		t.Errorf("%s %v, want one containing %q", what, err, want)
	}
}

func TestRunContext(t *testing.T) {
	needPrograms(t, "sh", "sleep")
	t.Run("run deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		res := Run(ctx, []string{"sleep", "10"}, "", time.Minute)
		if elapsed := time.Since(start); elapsed > 5*time.Second {
			t.Errorf("took %s, want it to end with the run's deadline", elapsed)
		}
		if !res.TimedOut || res.OK || res.Reason != "run deadline reached" {
			t.Errorf("got %+v, want a timeout naming the run deadline", res)
		}
	})
	t.Run("run cancelled while the program runs", func(t *testing.T) {
		fifo, r := holdPipe(t)
		// A writer of the test's own, so that reading waits for the
		// program's line instead of ending before the program opened the
		// pipe.
		w, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = w.Close() }()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan Result, 1)
		go func() {
			done <- Run(ctx, []string{"sh", "-c", `exec 3>"$1"; echo started >&3; sleep 30`, "sh", fifo}, "", time.Minute)
		}()
		// Cancel once the program has started: when it writes to the pipe.
		if err := r.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Read(make([]byte, 16)); err != nil {
			t.Fatalf("the program did not start: %v", err)
		}
		cancel()
		res := <-done
		if !res.TimedOut || res.OK || res.Reason != "run cancelled" {
			t.Errorf("got %+v, want a timeout naming the cancel", res)
		}
	})
	t.Run("run cancelled before the start", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		res := Run(ctx, []string{"sleep", "10"}, "", time.Minute)
		if !errors.Is(res.StartErr, context.Canceled) || res.OK {
			t.Errorf("got %+v, want a start error of the cancel", res)
		}
	})
}

// holdPipe makes a named pipe in a test directory and opens its reading
// end. A program given the pipe's path holds its writing end, and so do its
// children: reading from the pipe ends (EOF) once every one of them exited.
func holdPipe(t *testing.T) (path string, r *os.File) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "held")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("no named pipes here: %v", err)
	}
	// Non-blocking, so that opening does not wait for a writer.
	r, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return path, r
}

// writerOpen reports, without waiting, whether some process still holds the
// writing end of the pipe r reads; data waiting in the pipe is discarded.
func writerOpen(t *testing.T, r *os.File) bool {
	t.Helper()
	rc, err := r.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 512)
	for {
		var n int
		var rerr error
		if err := rc.Read(func(fd uintptr) bool {
			n, rerr = syscall.Read(int(fd), buf)
			return true // one attempt: never wait for the poller
		}); err != nil {
			t.Fatal(err)
		}
		switch {
		case errors.Is(rerr, syscall.EAGAIN):
			return true // no data, but a writer
		case rerr != nil:
			t.Fatalf("read the pipe: %v", rerr)
		case n == 0:
			return false // end of file: no writer left
		}
	}
}

// lastPid is the pid a script printed on the last line of its output.
func lastPid(t *testing.T, output string) int {
	t.Helper()
	lines := strings.Split(output, "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(lines[len(lines)-1]))
	if err != nil || pid <= 0 {
		t.Fatalf("no pid at the end of the output %q", output)
	}
	return pid
}

func TestRunTimeoutKillsGroup(t *testing.T) {
	needPrograms(t, "sh", "sleep")
	fifo, r := holdPipe(t)
	// The shell opens the pipe, starts a background child that inherits it,
	// names the child on stdout and in the pipe, and waits.
	const script = `exec 3>"$1"; sleep 30 & echo $!; echo $! >&3; sleep 30`
	res := Run(context.Background(), []string{"sh", "-c", script, "sh", fifo}, "", time.Second)
	if !res.TimedOut || res.Reason != "no exit within 1s" {
		t.Fatalf("got %+v, want a timeout", res)
	}
	pid := lastPid(t, res.Output)
	// The group kill must end the background child too: the pipe then
	// reaches its end. A survivor would hold it open for 30s.
	if err := r.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("background child %d survived the timeout: %v", pid, err)
	}
	if strings.TrimSpace(string(got)) != strconv.Itoa(pid) {
		t.Errorf("pipe held %q, want the background child's pid %d", got, pid)
	}
}

func TestRunBackgroundChildHoldingOutput(t *testing.T) {
	needPrograms(t, "sh", "sleep")
	fifo, r := holdPipe(t)
	// The child keeps stdout and stderr open after the shell exits 0.
	const script = `exec 3>"$1"; sleep 30 & echo $!`
	start := time.Now()
	res := Run(context.Background(), []string{"sh", "-c", script, "sh", fifo}, "", time.Minute)
	elapsed := time.Since(start)
	pid := lastPid(t, res.Output)
	alive := writerOpen(t, r)
	_ = syscall.Kill(pid, syscall.SIGKILL)
	if elapsed < waitDelay || elapsed > waitDelay+4*time.Second {
		t.Errorf("took %s, want about the wait delay %s, not the child's 30s", elapsed, waitDelay)
	}
	if !alive {
		t.Fatalf("background child %d is gone; the test proves nothing", pid)
	}
	if !res.OK || res.TimedOut || res.Err != nil {
		t.Errorf("got %+v, want success: the program itself exited 0", res)
	}
}

func TestRunOutputLimit(t *testing.T) {
	needPrograms(t, "sh", "yes", "head")
	res := Run(context.Background(), []string{"sh", "-c", "yes butler | head -c 1000000; yes error | head -c 1000000 >&2"}, "", 30*time.Second)
	if !res.OK {
		t.Fatalf("got %+v, want success", res)
	}
	// 73 lines of "butler\n" are 511 bytes; the 512th is the next "b".
	if want := strings.Repeat("butler\n", 73) + "b"; res.Output != want {
		t.Errorf("output of %d bytes %q..., want the first %d bytes", len(res.Output), res.Output[:min(len(res.Output), 20)], DetailMax)
	}
}

func TestOutputKeepsTheStart(t *testing.T) {
	o := &output{}
	chunk := []byte(strings.Repeat("0123456789", 100))
	for i := range 1000 {
		n, err := o.Write(chunk)
		if n != len(chunk) || err != nil {
			t.Fatalf("write %d = %d, %v; want %d, nil: a program must never block on its output", i, n, err, len(chunk))
		}
	}
	if got := o.String(); got != string(chunk[:DetailMax]) {
		t.Errorf("kept %d bytes, want the first %d", len(got), DetailMax)
	}
}

func TestTrim(t *testing.T) {
	ascii := strings.Repeat("a", DetailMax)
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "short", in: "  done \n", want: "done"},
		{name: "exactly max", in: ascii, want: ascii},
		{name: "longer than max", in: ascii + "tail", want: ascii},
		{name: "space at the cut trimmed", in: strings.Repeat("a", DetailMax-1) + " tail", want: strings.Repeat("a", DetailMax-1)},
		{name: "character at the cut dropped whole", in: strings.Repeat("a", DetailMax-1) + "é", want: strings.Repeat("a", DetailMax-1)},
		{name: "four-byte character at the cut", in: strings.Repeat("a", DetailMax-2) + "😀", want: strings.Repeat("a", DetailMax-2)},
		{name: "one byte of a character past the cut", in: strings.Repeat("a", DetailMax-3) + "😀tail", want: strings.Repeat("a", DetailMax-3)},
		{name: "character before the cut kept", in: strings.Repeat("a", DetailMax-2) + "é" + "tail", want: strings.Repeat("a", DetailMax-2) + "é"},
		{name: "invalid bytes replaced", in: "bad \xff\xfe byte", want: "bad \uFFFD byte"},
		{name: "replacements do not pass max", in: strings.Repeat("a\xff", DetailMax), want: strings.Repeat("a\uFFFD", DetailMax/4)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Trim(tt.in)
			if got != tt.want {
				t.Errorf("Trim = %q (%d bytes), want %q (%d bytes)", got, len(got), tt.want, len(tt.want))
			}
			if len(got) > DetailMax || !utf8.ValidString(got) {
				t.Errorf("Trim gave %d bytes, valid UTF-8 %v; want at most %d valid bytes", len(got), utf8.ValidString(got), DetailMax)
			}
		})
	}
}

func TestJoin(t *testing.T) {
	tests := []struct {
		name  string
		parts []string
		want  string
	}{
		{name: "none", want: ""},
		{name: "all empty", parts: []string{"", ""}, want: ""},
		{name: "empty parts skipped", parts: []string{"no exit within 1s; killed", "", "waiting"}, want: "no exit within 1s; killed: waiting"},
		{name: "one", parts: []string{"exit status 1"}, want: "exit status 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Join(tt.parts...); got != tt.want {
				t.Errorf("Join(%q) = %q, want %q", tt.parts, got, tt.want)
			}
		})
	}
}
