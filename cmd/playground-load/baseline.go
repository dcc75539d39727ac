package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/guntainer/playground/runtime"
	"github.com/guntainer/playground/server"
)

// The baselines' terminals: a program on a plain pty of the host, either
// the shell itself (plain, raw) or bubblewrap running it (bwrap).

const shell = "/bin/sh"

// shellEnv is the environment of every baseline shell; the container's
// differs only by what its runtime sets (HOME=/root, USER, ...).
func shellEnv(home string) []string {
	return []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + home,
		"TERM=xterm-256color",
		"PS1=$ ",
		"LANG=C.UTF-8",
	}
}

// plainStarter starts an unisolated /bin/sh on a pty of the host for every
// session: the server's own cost, without isolation's.
func plainStarter(home string) server.StartFunc {
	return func(_ context.Context, cols, rows uint16) (server.Terminal, error) {
		cmd := exec.Command(shell)
		cmd.Dir = home
		cmd.Env = shellEnv(home)
		return startPTY(cmd, cols, rows)
	}
}

// bwrapArgs runs /bin/sh under bubblewrap in new user, pid, mount, net,
// uts, ipc and cgroup namespaces, with a root laid out as the runtime's
// host rootfs is: the host's /usr read-only (and /bin, /lib, /lib64, /sbin
// as the same symlinks into it that a merged-/usr host has), fresh /proc,
// a minimal /dev, tmpfs /tmp and /root, an /etc with only the dynamic
// linker's cache.
func bwrapArgs(bwrap string) []string {
	args := []string{bwrap, "--unshare-all", "--die-with-parent",
		"--ro-bind", "/usr", "/usr"}
	for _, d := range []string{"/bin", "/lib", "/lib64", "/sbin", "/lib32", "/libx32"} {
		fi, err := os.Lstat(d)
		switch {
		case err != nil:
			continue
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(d)
			if err != nil {
				continue
			}
			args = append(args, "--symlink", target, d)
		default:
			args = append(args, "--ro-bind", d, d)
		}
	}
	args = append(args,
		"--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/root",
		"--dir", "/etc", "--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache",
		"--hostname", "playground", "--chdir", "/root",
		shell)
	return args
}

// bwrapStarter starts bubblewrap running /bin/sh for every session: the
// nearest peer of a container for start time.
func bwrapStarter(bwrap string) server.StartFunc {
	args := bwrapArgs(bwrap)
	return func(_ context.Context, cols, rows uint16) (server.Terminal, error) {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = shellEnv("/root")
		return startPTY(cmd, cols, rows)
	}
}

// ptyTerminal is a process on a pty of the host, as a server.Terminal.
// Read and Write may be used from one goroutine each; Resize, Wait and
// Close from any.
type ptyTerminal struct {
	cmd  *exec.Cmd
	ptmx *os.File

	closeOnce sync.Once
	closeErr  error

	waitOnce sync.Once
	status   runtime.ExitStatus
	waitErr  error
}

// startPTY starts cmd on a new pty of the given size, in its own session
// with the pty as its controlling terminal, so that it gets job control and
// Close can kill its process groups.
func startPTY(cmd *exec.Cmd, cols, rows uint16) (*ptyTerminal, error) {
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: cols, Rows: rows})
	if err != nil {
		return nil, fmt.Errorf("start %s on a pty: %w", cmd.Path, err)
	}
	t := &ptyTerminal{cmd: cmd, ptmx: ptmx}
	// creack/pty's ioctls go through Fd(), which leaves the master in
	// blocking mode, where Close does not interrupt a Read. Back to
	// non-blocking, so the runtime poller waits instead, Close wakes it and
	// deadlines work.
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

// Pid is the pid of the program started on the pty.
func (t *ptyTerminal) Pid() int { return t.cmd.Process.Pid }

func (t *ptyTerminal) Read(p []byte) (int, error)  { return t.ptmx.Read(p) }
func (t *ptyTerminal) Write(p []byte) (int, error) { return t.ptmx.Write(p) }

// Resize sets the pty's window size.
func (t *ptyTerminal) Resize(cols, rows uint16) error {
	return t.control(func(fd int) error {
		return unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, &unix.Winsize{Col: cols, Row: rows})
	})
}

// Wait reaps the program and reports how it ended. Safe after Close, and
// from several goroutines.
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

// Close kills the program's process group and the pty's foreground group
// (a pipeline the shell runs has its own) and closes the master, which
// unblocks Read and Write. Idempotent; it does not reap: Wait does.
func (t *ptyTerminal) Close() error {
	t.closeOnce.Do(func() {
		var fg int
		err := t.control(func(fd int) error {
			var err error
			fg, err = unix.IoctlGetInt(fd, unix.TIOCGPGRP)
			return err
		})
		if err == nil && fg > 0 && fg != t.cmd.Process.Pid {
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

// rawSession is the raw baseline: /bin/sh on a pty, read and written by
// this process directly, with no server and no network in between.
type rawSession struct {
	term *ptyTerminal
	buf  []byte
}

func openRaw(home string) (*rawSession, error) {
	cmd := exec.Command(shell)
	cmd.Dir = home
	cmd.Env = shellEnv(home)
	t, err := startPTY(cmd, 80, 24)
	if err != nil {
		return nil, err
	}
	return &rawSession{term: t, buf: make([]byte, 32<<10)}, nil
}

func (r *rawSession) input(ctx context.Context, s string) error {
	_ = r.term.ptmx.SetWriteDeadline(deadline(ctx)) // fails only on a closed file: then Write does too
	_, err := r.term.Write([]byte(s))
	return err
}

func (r *rawSession) output(ctx context.Context) ([]byte, error) {
	_ = r.term.ptmx.SetReadDeadline(deadline(ctx)) // as above
	n, err := r.term.Read(r.buf)
	if n > 0 {
		return r.buf[:n], nil
	}
	if err == nil {
		err = errors.New("empty read")
	}
	return nil, err
}

// blocking switches the master to blocking reads, which on this kernel
// deliver a steadier 5 to 10% more than reads through Go's poller, until
// the returned func is called. Deadlines do not interrupt a blocking read,
// so ctx's end aborts the session instead.
func (r *rawSession) blocking(ctx context.Context) (undo func()) {
	_ = r.term.control(func(fd int) error { return unix.SetNonblock(fd, false) }) // on failure reads stay as they were
	stop := context.AfterFunc(ctx, r.abort)
	return func() {
		stop()
		_ = r.term.control(func(fd int) error { return unix.SetNonblock(fd, true) }) // fails only once aborted
	}
}

func (r *rawSession) abort() { _ = r.term.Close() } // killing a shell we started

func (r *rawSession) close() {
	_ = r.term.Close() // killing a shell we started; nothing to report
	_, _ = r.term.Wait()
}

// deadline is ctx's deadline, or 30 s from now when it has none.
func deadline(ctx context.Context) time.Time {
	if dl, ok := ctx.Deadline(); ok {
		return dl
	}
	return time.Now().Add(30 * time.Second)
}
