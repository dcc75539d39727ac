package runtime

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// A program's standard fds: a fresh pty from the container's devpts (the
// default), or the caller's own files (Spec.Stdio), which go to init over
// the sync socket as the id-mapped rootfs does, in a message of their own
// right after the config.

// stdioMessage follows the config when initConfig.Stdio is set: which of
// stdin, stdout and stderr come with it, in that order, as SCM_RIGHTS.
type stdioMessage struct {
	Files [3]bool `json:"files"`
}

// What initMessage.Cause says of a program that could not be started.
const (
	causeNotFound      = "not found"
	causeNotExecutable = "not executable"
)

// Is lets errors.Is tell a program not found or not executable from other
// setup errors.
func (e *setupError) Is(target error) bool {
	switch target {
	case ErrProgramNotFound:
		return e.Cause == causeNotFound
	case ErrProgramNotExecutable:
		return e.Cause == causeNotExecutable
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
			return fmt.Errorf("%s: %w", stdioNames[i], err)
		}
	}
	return nil
}

var stdioNames = [3]string{"stdin", "stdout", "stderr"}

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
	var msg stdioMessage
	var fds []int
	defer func() { closeFds(fds) }()
	for i, f := range s.files() {
		if f == nil {
			continue
		}
		rc, err := f.SyscallConn()
		if err != nil {
			return fmt.Errorf("%s: %w", stdioNames[i], err)
		}
		var dup int
		var derr error
		if err := rc.Control(func(fd uintptr) { dup, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 3) }); err != nil {
			return fmt.Errorf("%s: %w", stdioNames[i], err)
		}
		if derr != nil {
			return fmt.Errorf("%s: dup: %w", stdioNames[i], derr)
		}
		fds = append(fds, dup)
		msg.Files[i] = true
	}
	if err := conn.send(msg, fds...); err != nil {
		return fmt.Errorf("send stdio to container init: %w", err)
	}
	return nil
}

// recvStdio is init's side of sendStdio: the program's 0, 1 and 2, -1
// for the ones the caller left nil; nil when the program gets a pty.
func recvStdio(cfg *initConfig) ([]int, error) {
	if !cfg.Stdio {
		return nil, nil
	}
	var msg stdioMessage
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
		closeFds(fds)
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
func openProgramFiles(cfg *initConfig, stdio []int) (*programFiles, error) {
	if stdio != nil {
		p := &programFiles{}
		for i, fd := range stdio {
			if fd < 0 {
				f, err := os.OpenFile("/dev/null", os.O_RDWR, 0)
				if err != nil {
					p.closeChild()
					closeFds(stdio[i:])
					return nil, step("open /dev/null for "+stdioNames[i], err)
				}
				p.files[i] = f
				continue
			}
			// O_NONBLOCK belongs to the open file, shared with the caller
			// (a Go caller's pipes have it): the program expects blocking
			// reads and writes.
			if err := unix.SetNonblock(fd, false); err != nil {
				p.closeChild()
				closeFds(stdio[i:])
				return nil, step("make "+stdioNames[i]+" blocking", err)
			}
			p.files[i] = os.NewFile(uintptr(fd), stdioNames[i])
		}
		return p, nil
	}
	master, tty, err := pty.Open()
	if err != nil {
		return nil, step("open pty", err)
	}
	p := &programFiles{master: master, files: [3]*os.File{tty, tty, tty}}
	if err := pty.Setsize(master, &pty.Winsize{Cols: cfg.Cols, Rows: cfg.Rows}); err != nil {
		p.closeAll()
		return nil, step("set terminal size", err)
	}
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

// withCause marks err as one of the sentinel errors while keeping its text.
type withCause struct {
	err   error
	cause error
}

func (e *withCause) Error() string   { return e.err.Error() }
func (e *withCause) Unwrap() []error { return []error{e.err, e.cause} }

func notFound(err error) error      { return &withCause{err, ErrProgramNotFound} }
func notExecutable(err error) error { return &withCause{err, ErrProgramNotExecutable} }

// programCause says whether a failed setup step was a program not found or
// not executable, for initMessage.Cause: lookPath's errors say so, and an
// execve that fails on a file lookPath found means it cannot be executed
// (ENOENT then is a script's missing interpreter, as bash reports it: 126).
func programCause(stepName string, err error) string {
	switch {
	case errors.Is(err, ErrProgramNotFound):
		return causeNotFound
	case errors.Is(err, ErrProgramNotExecutable):
		return causeNotExecutable
	case !strings.HasPrefix(stepName, "exec "):
		return ""
	}
	for _, errno := range []syscall.Errno{unix.ENOENT, unix.EACCES, unix.ENOEXEC, unix.EISDIR, unix.ETXTBSY, unix.ELIBBAD, unix.ENOTDIR, unix.ELOOP} {
		if errors.Is(err, errno) {
			return causeNotExecutable
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
