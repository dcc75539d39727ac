package initproc

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// StdioMessage follows the config when Config.Stdio is set: which of
// stdin, stdout and stderr come with it, in that order, as SCM_RIGHTS.
type StdioMessage struct {
	Files [3]bool `json:"files"`
}

// StdioNames name a program's fds 0, 1 and 2.
var StdioNames = [3]string{"stdin", "stdout", "stderr"}

// recvStdio is init's side of sendStdio: the program's 0, 1 and 2, -1
// for the ones the caller left nil; nil when the program gets a pty.
func recvStdio(cfg *Config) ([]int, error) {
	if !cfg.Stdio {
		return nil, nil
	}
	var msg StdioMessage
	fds, err := recvMsg(syncFd, &msg)
	if err != nil {
		return nil, err
	}
	stdio := []int{-1, -1, -1}
	n := 0
	for i, ok := range msg.Files {
		if ok && n < len(fds) {
			stdio[i] = fds[n]
			n++
		}
	}
	if n != len(fds) {
		CloseFds(fds)
		return nil, fmt.Errorf("%d fds for %v", len(fds), msg.Files)
	}
	return stdio, nil
}

// programFiles are what the program gets as its fds 0, 1 and 2.
type programFiles struct {
	master *os.File    // the pty's master side, for the parent; nil with Spec.Stdio
	files  [3]*os.File // init's copies, closed once the program has its own
}

// progFds are the program's fds 0, 1 and 2, as init holds them.
type progFds [3]uintptr

func (p *programFiles) fds() progFds {
	return progFds{p.files[0].Fd(), p.files[1].Fd(), p.files[2].Fd()}
}

// closeChild closes init's copies of the program's files: init must hold
// neither the pty's slave (the program's end of file would wait for init)
// nor the caller's pipes.
func (p *programFiles) closeChild() {
	for i, f := range p.files {
		if f != nil && (i == 0 || f != p.files[i-1]) {
			_ = f.Close() // the program has its own copy
		}
	}
}

// openProgramFiles opens a fresh pty of the configured size, or, when the
// caller gave its own files (stdio, from recvStdio), takes those: in
// blocking mode, as exec.Cmd hands files to a child, and /dev/null for
// the ones not given.
func openProgramFiles(cfg *Config, stdio []int) (*programFiles, error) {
	if stdio != nil {
		p := &programFiles{}
		for i, fd := range stdio {
			if fd < 0 {
				f, err := os.OpenFile("/dev/null", os.O_RDWR, 0)
				if err != nil {
					p.closeChild()
					CloseFds(stdio[i:])
					return nil, step("open /dev/null for "+StdioNames[i], err)
				}
				p.files[i] = f
				continue
			}
			// O_NONBLOCK belongs to the open file, shared with the caller
			// (a Go caller's pipes have it): the program expects blocking
			// reads and writes.
			if err := unix.SetNonblock(fd, false); err != nil {
				p.closeChild()
				CloseFds(stdio[i:])
				return nil, step("make "+StdioNames[i]+" blocking", err)
			}
			p.files[i] = os.NewFile(uintptr(fd), StdioNames[i])
		}
		return p, nil
	}
	master, tty, err := openPty(cfg.Cols, cfg.Rows)
	if err != nil {
		return nil, err
	}
	p := &programFiles{master: master, files: [3]*os.File{tty, tty, tty}}
	if cfg.UID >= 0 {
		// The user's own terminal, as login makes it: programs that open
		// /dev/tty (less, ssh, sudo) need it.
		if err := step("chown terminal", tty.Chown(cfg.UID, cfg.GID)); err != nil {
			p.closeAll()
			return nil, err
		}
	}
	return p, nil
}

// openPty opens a new pty of the container's devpts, of cols by rows: its
// master, and its slave by the master (TIOCGPTPEER: no path to resolve),
// both blocking. It is creack/pty's Open and Setsize, whose package
// imports os/exec (see the package's comment).
func openPty(cols, rows uint16) (master, tty *os.File, err error) {
	m, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, step("open pty", err)
	}
	fail := func(name string, err error) (*os.File, *os.File, error) {
		_ = unix.Close(m) // failing already
		return nil, nil, step(name, err)
	}
	if err := unix.IoctlSetPointerInt(m, unix.TIOCSPTLCK, 0); err != nil { // unlockpt
		return fail("unlock pty", err)
	}
	if err := unix.IoctlSetWinsize(m, unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols}); err != nil {
		return fail("set terminal size", err)
	}
	s, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(m), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
	if e != 0 {
		return fail("open pty's terminal", e)
	}
	return os.NewFile(uintptr(m), "/dev/ptmx"), os.NewFile(s, "/dev/pts"), nil
}

func (p *programFiles) closeAll() {
	p.closeChild()
	if p.master != nil {
		_ = p.master.Close() // failing already
	}
}

// readyFds is what init's ready message carries: the pty master, or
// nothing when the program has the caller's files.
func readyFds(master *os.File) []int {
	if master == nil {
		return nil
	}
	return []int{int(master.Fd())}
}

// withCause marks err as one of the sentinel errors while keeping its text.
type withCause struct {
	err   error
	cause error
}

func (e *withCause) Error() string { return e.err.Error() }

func (e *withCause) Unwrap() []error { return []error{e.err, e.cause} }

func notFound(err error) error { return &withCause{err, ErrProgramNotFound} }

func notExecutable(err error) error { return &withCause{err, ErrProgramNotExecutable} }

// programCause says whether a failed setup step was a program not found or
// not executable, for Message.Cause: lookPath's errors say so, and an
// execve that fails on a file lookPath found means it cannot be executed
// (ENOENT then is a script's missing interpreter, as bash reports it: 126).
func programCause(stepName string, err error) string {
	switch {
	case errors.Is(err, ErrProgramNotFound):
		return CauseNotFound
	case errors.Is(err, ErrProgramNotExecutable):
		return CauseNotExecutable
	case !strings.HasPrefix(stepName, "exec "):
		return ""
	}
	for _, errno := range []syscall.Errno{unix.ENOENT, unix.EACCES, unix.ENOEXEC, unix.EISDIR, unix.ETXTBSY, unix.ELIBBAD, unix.ENOTDIR, unix.ELOOP} {
		if errors.Is(err, errno) {
			return CauseNotExecutable
		}
	}
	return ""
}

// checkDir fails for a working directory that is not there: the exec
// would fail with the chdir's ENOENT, which looks like the program's.
func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return errors.New("not a directory")
	}
	return nil
}

// What Message.Cause says of a program that could not be started.
const (
	CauseNotFound      = "not found"
	CauseNotExecutable = "not executable"
)
