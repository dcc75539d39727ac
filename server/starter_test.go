package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/guntainer/playground/internal/testenv"
	"github.com/guntainer/playground/runtime"
)

// testStart is the StartFunc every test goes through: a real container
// (all namespaces, the host rootfs, an overlay-free tmpfs root) running
// /bin/sh with a "$ " prompt. Where the machine cannot make containers the
// test skips, or fails under PLAYGROUND_TEST_STRICT=1.
func testStart(t testing.TB) StartFunc {
	t.Helper()
	state := testStateDir(t)
	spec := runtime.Spec{
		Args:     []string{"/bin/sh"},
		Env:      []string{"PS1=$ "},
		StateDir: state,
	}
	if err := runtime.Check(spec); err != nil {
		testenv.Skipf(t, "cannot start containers here: %v", err)
	}
	return ContainerStart(spec)
}

// testStateDir is a state dir for a test's containers that a root-mode pool
// uid can reach.
func testStateDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "playground-server-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(d) })
	if err := os.Chmod(d, 0o711); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(d, "state")
}

// plainStart starts an unisolated /bin/sh on a plain pty: the baseline that
// shows what isolation costs.
func plainStart(t testing.TB) StartFunc {
	t.Helper()
	const shell = "/bin/sh"
	if _, err := os.Stat(shell); err != nil {
		testenv.Skipf(t, "no %s: %v", shell, err)
	}
	home := t.TempDir()
	return func(_ context.Context, cols, rows uint16) (Terminal, error) {
		return startPTY(shell, home, cols, rows)
	}
}

// ptyTerminal is a process on a pty, as a Terminal.
type ptyTerminal struct {
	cmd  *exec.Cmd
	ptmx *os.File

	closeOnce sync.Once
	closeErr  error

	waitOnce sync.Once
	status   runtime.ExitStatus
	waitErr  error
}

// startPTY starts shell on a new pty of the given size, in its own session
// with the pty as its controlling terminal (so that it gets job control and
// SIGWINCH, and Close can kill its whole process group).
func startPTY(shell, home string, cols, rows uint16) (*ptyTerminal, error) {
	cmd := exec.Command(shell)
	cmd.Dir = home
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"TERM=xterm-256color",
		"PS1=$ ",
		"LANG=C.UTF-8",
	}
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: cols, Rows: rows})
	if err != nil {
		return nil, fmt.Errorf("start %s on a pty: %w", shell, err)
	}
	t := &ptyTerminal{cmd: cmd, ptmx: ptmx}
	// creack/pty's ioctls go through Fd(), which leaves the master in
	// blocking mode, where Close does not interrupt a Read. Back to
	// non-blocking, so the runtime poller waits instead and Close wakes it.
	if err := t.control(func(fd int) error { return unix.SetNonblock(fd, true) }); err != nil {
		_ = t.Close()
		_, _ = t.Wait()
		return nil, fmt.Errorf("pty non-blocking: %w", err)
	}
	return t, nil
}

// control runs f on the master's descriptor without Fd()'s side effect.
func (t *ptyTerminal) control(f func(fd int) error) error {
	rc, err := t.ptmx.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// foreground returns the pty's foreground process group.
func (t *ptyTerminal) foreground() (int, error) {
	var pgrp int
	err := t.control(func(fd int) error {
		var err error
		pgrp, err = unix.IoctlGetInt(fd, unix.TIOCGPGRP)
		return err
	})
	return pgrp, err
}

func (t *ptyTerminal) Read(p []byte) (int, error)  { return t.ptmx.Read(p) }
func (t *ptyTerminal) Write(p []byte) (int, error) { return t.ptmx.Write(p) }

func (t *ptyTerminal) Resize(cols, rows uint16) error {
	return t.control(func(fd int) error {
		return unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, &unix.Winsize{Col: cols, Row: rows})
	})
}

// Wait reaps the shell and reports how it ended. Safe after Close, and from
// several goroutines.
func (t *ptyTerminal) Wait() (runtime.ExitStatus, error) {
	t.waitOnce.Do(func() {
		err := t.cmd.Wait()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.waitErr = err
			return
		}
		ws, ok := t.cmd.ProcessState.Sys().(syscall.WaitStatus)
		switch {
		case !ok:
			t.waitErr = fmt.Errorf("unexpected process state %T", t.cmd.ProcessState.Sys())
		case ws.Signaled():
			t.status = runtime.ExitStatus{Code: -1, Signal: ws.Signal()}
		default:
			t.status = runtime.ExitStatus{Code: ws.ExitStatus()}
		}
	})
	return t.status, t.waitErr
}

// Close kills the shell's process group and closes the master, which
// unblocks Read and Write. Idempotent.
func (t *ptyTerminal) Close() error {
	t.closeOnce.Do(func() {
		// The shell leads its own session and process group; with job
		// control each pipeline it runs has a group of its own, the pty's
		// foreground group. Kill both; SIGHUP from the session leader's
		// death would reach the rest.
		if fg, err := t.foreground(); err == nil && fg > 0 && fg != t.cmd.Process.Pid {
			_ = syscall.Kill(-fg, syscall.SIGKILL) // it may be gone already
		}
		if err := syscall.Kill(-t.cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			t.closeErr = fmt.Errorf("kill process group: %w", err)
		}
		if err := t.ptmx.Close(); err != nil {
			t.closeErr = errors.Join(t.closeErr, fmt.Errorf("close pty: %w", err))
		}
	})
	return t.closeErr
}
