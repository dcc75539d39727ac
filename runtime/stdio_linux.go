package runtime

import (
	"errors"
	"fmt"
	"os"

	"github.com/guntainer/playground/runtime/internal/initproc"
	"golang.org/x/sys/unix"
)

// A program's standard fds: a fresh pty from the container's devpts (the
// default), or the caller's own files (Spec.Stdio), which go to init over
// the sync socket as the id-mapped rootfs does, in a message of their own
// right after the config.

// Is lets errors.Is tell a program not found or not executable from other
// setup errors.
func (e *setupError) Is(target error) bool {
	switch target {
	case ErrProgramNotFound:
		return e.Cause == initproc.CauseNotFound
	case ErrProgramNotExecutable:
		return e.Cause == initproc.CauseNotExecutable
	}
	return false
}

// checkStdio refuses, before anything starts, a file the program must not
// get: see Stdio.
func checkStdio(s *Stdio) error {
	if s == nil {
		return nil
	}
	for i, f := range s.files() {
		if f == nil {
			continue
		}
		if err := checkStdioFile(f); err != nil {
			return fmt.Errorf("%s: %w", initproc.StdioNames[i], err)
		}
	}
	return nil
}

func (s *Stdio) files() [3]*os.File { return [3]*os.File{s.Stdin, s.Stdout, s.Stderr} }

func checkStdioFile(f *os.File) error {
	rc, err := f.SyscallConn() // not Fd, which would make a pollable file blocking here
	if err != nil {
		return err
	}
	var (
		st         unix.Stat_t
		flags      int
		serr, ferr error
		isTerminal bool
	)
	err = rc.Control(func(fd uintptr) {
		serr = unix.Fstat(int(fd), &st)
		flags, ferr = unix.FcntlInt(fd, unix.F_GETFL, 0)
		_, terr := unix.IoctlGetTermios(int(fd), unix.TCGETS)
		isTerminal = terr == nil
	})
	switch {
	case err != nil:
		return err
	case serr != nil:
		return serr
	case ferr != nil:
		return ferr
	case flags&unix.O_PATH != 0:
		return errors.New("an O_PATH fd is not accepted: it would lead out of the container")
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFIFO, unix.S_IFSOCK, unix.S_IFREG:
		return nil
	case unix.S_IFCHR:
		if isTerminal {
			return errors.New("a terminal is not accepted: the program could type into it (TIOCSTI) or change it; put a pipe between")
		}
		return nil
	case unix.S_IFDIR:
		return errors.New("a directory is not accepted: it would lead out of the container")
	}
	return fmt.Errorf("file type %#o is not accepted: want a pipe, a socket, a regular file or a character device", st.Mode&unix.S_IFMT)
}

// sendStdio sends the Spec.Stdio files to init: duplicates, so that the
// caller may do what it likes with its own, and closed again once sent.
func sendStdio(conn *syncConn, s *Stdio) error {
	if s == nil {
		return nil
	}
	var msg initproc.StdioMessage
	var fds []int
	defer func() { initproc.CloseFds(fds) }()
	for i, f := range s.files() {
		if f == nil {
			continue
		}
		rc, err := f.SyscallConn()
		if err != nil {
			return fmt.Errorf("%s: %w", initproc.StdioNames[i], err)
		}
		var dup int
		var derr error
		if err := rc.Control(func(fd uintptr) { dup, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 3) }); err != nil {
			return fmt.Errorf("%s: %w", initproc.StdioNames[i], err)
		}
		if derr != nil {
			return fmt.Errorf("%s: dup: %w", initproc.StdioNames[i], derr)
		}
		fds = append(fds, dup)
		msg.Files[i] = true
	}
	if err := conn.send(msg, fds...); err != nil {
		return fmt.Errorf("send stdio to container init: %w", err)
	}
	return nil
}

// readyFdCount is how many fds the parent expects with "ready".
func readyFdCount(spec Spec) int {
	if spec.Stdio != nil {
		return 0
	}
	return 1
}

// ptyMaster is the parent's pty master from the ready message's fds, made
// non-blocking so that Close interrupts a Read; nil without a pty.
func ptyMaster(fds []int) (*os.File, error) {
	if len(fds) == 0 {
		return nil, nil
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		_ = unix.Close(fds[0]) // already failing
		return nil, fmt.Errorf("pty master: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "ptmx"), nil
}
