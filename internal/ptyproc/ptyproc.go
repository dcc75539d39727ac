//go:build unix

// Package ptyproc runs a program on a plain pty of the host, with no
// isolation at all: the baseline the playground's containers are measured
// against (in benchmarks, the load command and tests), never a way to serve
// visitors.
package ptyproc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sync"
	"syscall"

	"github.com/creack/pty"
	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"github.com/guntainer/playground/internal/ptyinput"
	"github.com/guntainer/playground/runtime"
)

// Terminal is a process on a pty of the host, unisolated, as a
// server.Terminal: the baselines that show what isolation costs.
// Read and Write may be used from one goroutine each; Resize, Wait and
// Close from any.
type Terminal struct {
	cmd  *exec.Cmd
	ptmx *os.File

	closeOnce sync.Once
	closeErr  error

	waitOnce sync.Once
	status   runtime.ExitStatus
	waitErr  error
}

// Start starts cmd on a new pty of the given size, in its own session
// with the pty as its controlling terminal, so that it gets job control and
// Close can kill its process groups.
func Start(cmd *exec.Cmd, cols, rows uint16) (*Terminal, error) {
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: cols, Rows: rows})
	if err != nil {
		return nil, fmt.Errorf("start %s on a pty: %w", cmd.Path, err)
	}
	t := &Terminal{cmd: cmd, ptmx: ptmx}
	// creack/pty's ioctls go through Fd(), which leaves the master in
	// blocking mode, where Close does not interrupt a Read. Back to
	// non-blocking, so the runtime poller waits instead, Close wakes it and
	// deadlines work.
	if err := t.Control(func(fd int) error { return unix.SetNonblock(fd, true) }); err != nil {
		_ = t.Close()
		_, _ = t.Wait()
		return nil, fmt.Errorf("pty non-blocking: %w", err)
	}
	return t, nil
}

// Control runs f on the master's descriptor without Fd()'s side effect.
func (t *Terminal) Control(f func(fd int) error) error { return ptyinput.Control(t.ptmx, f) }

// Master is the pty's master, for deadlines; its reads and writes are
// Read's and Write's.
func (t *Terminal) Master() *os.File { return t.ptmx }

// Pid is the pid of the program started on the pty.
func (t *Terminal) Pid() int { return t.cmd.Process.Pid }

func (t *Terminal) Read(p []byte) (int, error)  { return t.ptmx.Read(p) }
func (t *Terminal) Write(p []byte) (int, error) { return t.ptmx.Write(p) }

// ReadNow reads what output is there already, without waiting: 0 and no
// error when there is none.
func (t *Terminal) ReadNow(p []byte) (int, error) {
	var n int
	var rerr error
	err := t.Control(func(fd int) error {
		n, rerr = unix.Read(fd, p)
		return nil
	})
	switch {
	case err != nil:
		return 0, err
	case errors.Is(rerr, unix.EAGAIN) || errors.Is(rerr, unix.EINTR):
		return 0, nil
	case rerr != nil:
		return 0, rerr
	case n < 0:
		return 0, nil
	}
	return n, nil
}

// Resize sets the pty's window size.
func (t *Terminal) Resize(cols, rows uint16) error {
	return t.Control(func(fd int) error {
		return unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, &unix.Winsize{Col: cols, Row: rows})
	})
}

// Wait reaps the program and reports how it ended. Safe after Close, and
// from several goroutines.
func (t *Terminal) Wait() (runtime.ExitStatus, error) {
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

// Close kills every process of the program's session: its process group,
// the pty's foreground group (a pipeline the shell runs has its own), and
// the groups of the jobs it stopped or runs in the background, which the
// kernel's SIGHUP does not end when they ignore it (under nohup, say). It
// closes the master, which unblocks Read and Write. Idempotent; it does
// not reap: Wait does.
func (t *Terminal) Close() error {
	t.closeOnce.Do(func() {
		var fg int
		err := t.Control(func(fd int) error {
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
		if err := killSession(t.cmd.Process.Pid); err != nil {
			t.closeErr = errors.Join(t.closeErr, err)
		}
		if err := t.ptmx.Close(); err != nil {
			t.closeErr = errors.Join(t.closeErr, fmt.Errorf("close pty: %w", err))
		}
	})
	return t.closeErr
}

// killSession kills the process groups of session sid, found in /proc, until
// a pass finds no group it has not killed: a group's SIGKILL reaches a
// child forked while it is sent too (the kernel sees to that), but a
// process not yet killed may make a group of its own meanwhile. One that
// is dying may still be listed; its group is not new.
func killSession(sid int) error {
	var killed []int
	for range 10 {
		groups, err := sessionGroups(sid)
		if err != nil {
			return err
		}
		fresh := false
		for _, pg := range groups {
			if !slices.Contains(killed, pg) {
				fresh = true
				killed = append(killed, pg)
				_ = syscall.Kill(-pg, syscall.SIGKILL) // it may be gone already
			}
		}
		if !fresh {
			return nil
		}
	}
	return fmt.Errorf("processes of session %d still making process groups after ten passes", sid)
}

// sessionGroups lists the process groups of the live processes of session
// sid (its zombies need no signal).
func sessionGroups(sid int) ([]int, error) {
	ps, err := procfs.AllProcs()
	if err != nil {
		return nil, err
	}
	var groups []int
	for _, p := range ps {
		st, err := p.Stat()
		if err != nil || st.State == "Z" || st.Session != sid {
			continue // gone, a zombie, or another session's
		}
		if !slices.Contains(groups, st.PGRP) {
			groups = append(groups, st.PGRP)
		}
	}
	return groups, nil
}
