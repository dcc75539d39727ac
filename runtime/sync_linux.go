package runtime

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/guntainer/playground/runtime/internal/initproc"
	"golang.org/x/sys/unix"
)

// The parent and the container's init talk over a SOCK_SEQPACKET socket
// pair: each message is one JSON object, optionally carrying file
// descriptors (the id-mapped rootfs going in, the pty master coming out).
// Message boundaries are kept by the socket, so no framing is needed, and
// the parent sees EOF the moment init dies.

// setupError is a failed setup step inside the container, as reported by
// init: "mount overlay on /: permission denied".
type setupError struct {
	Step  string
	Err   string
	Cause string // see Is
}

func (e *setupError) Error() string { return e.Step + ": " + e.Err }

// setupErrorOf is what an "error" message of init's reports.
func setupErrorOf(m initproc.Message) *setupError {
	return &setupError{Step: m.Step, Err: m.Err, Cause: m.Cause}
}

// syncConn is the parent's end of the sync socket. It is non-blocking, so
// that a container's wait for its exit message parks a goroutine in Go's
// poller, not an OS thread in recvmsg, and its receive buffer exists only
// while a message is being read: a thousand idle containers hold neither.
// Close unblocks a waiting recv.
type syncConn struct {
	f  *os.File
	rc syscall.RawConn
}

func newSyncConn(fd int) (*syncConn, error) {
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd) // ours, unused
		return nil, fmt.Errorf("sync socket: %w", err)
	}
	f := os.NewFile(uintptr(fd), "sync")
	rc, err := f.SyscallConn()
	if err != nil {
		_ = f.Close() // ours, unused
		return nil, fmt.Errorf("sync socket: %w", err)
	}
	return &syncConn{f: f, rc: rc}, nil
}

func (s *syncConn) send(v any, files ...int) error {
	b, oob, err := initproc.EncodeMsg(v, files)
	if err != nil {
		return err
	}
	var serr error
	err = s.rc.Write(func(fd uintptr) bool {
		for {
			serr = unix.Sendmsg(int(fd), b, oob, nil, 0)
			if !errors.Is(serr, unix.EINTR) {
				return !errors.Is(serr, unix.EAGAIN)
			}
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// recv reads one message of at most size bytes into v. What init wrote
// as it crashed comes back as an *initCrash error.
func (s *syncConn) recv(v any, size int) ([]int, error) {
	b, oob, err := s.read(size)
	if err != nil {
		return nil, err
	}
	if len(b) > 0 && !initproc.IsMessage(b) {
		return nil, s.crash(b, size)
	}
	return initproc.DecodeMsg(b, oob, v)
}

// read reads one packet of at most size bytes.
func (s *syncConn) read(size int) (b, oob []byte, err error) {
	var (
		n, oobn int
		rerr    error
	)
	err = s.rc.Read(func(fd uintptr) bool {
		b, oob = make([]byte, size), make([]byte, unix.CmsgSpace(4*4))
		reset := false
		for {
			n, oobn, _, _, rerr = unix.Recvmsg(int(fd), b, oob, unix.MSG_CMSG_CLOEXEC)
			if errors.Is(rerr, unix.ECONNRESET) && !reset {
				// Init exited with a message of ours unread: the socket
				// reports that once, ahead of what init sent before it
				// exited (its error report), which the next read returns.
				reset = true
				continue
			}
			if !errors.Is(rerr, unix.EINTR) {
				return !errors.Is(rerr, unix.EAGAIN)
			}
		}
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read sync socket: %w", err)
	}
	return b[:n], oob[:oobn], nil
}

// initCrash is init's last words: Go's report of a fatal error, which
// init also writes to the sync socket (initMain), in place of a message.
type initCrash struct{ text string }

func (e *initCrash) Error() string { return "container init crashed: " + e.text }

// crash reads the rest of init's crash report, first its first packet,
// up to the end of file that follows (write(2) carries no fds). It reads
// all of it: init would block in a write the parent stopped reading, and
// never exit. What it keeps says where init crashed: Go's "panic: ..."
// line, the signal's or cgo's, and the functions of the first frames (a
// fatal error's own line, "fatal error: ...", comes before Go starts its
// crash output); or, where it holds none of those, the start of the text.
func (s *syncConn) crash(first []byte, size int) error {
	text := first
	for {
		b, _, err := s.read(size)
		if err != nil || len(b) == 0 {
			break
		}
		if len(text) < 4<<10 {
			text = append(text, b...)
		}
	}
	var said []string
	for _, l := range strings.Split(string(text), "\n") {
		switch {
		case len(said) == 5:
		case strings.HasPrefix(l, "panic: ") || strings.HasPrefix(l, "fatal error: ") || strings.HasPrefix(l, "runtime/cgo: "),
			strings.HasPrefix(l, "SIG") && strings.Contains(l, ": "): // a signal's: "SIGABRT: abort"
			said = append(said, l)
		case l == "" || strings.HasPrefix(l, "\t") || strings.HasSuffix(l, ":"):
			// a frame's file and line, or a header ("goroutine 1 [running]:")
		case strings.HasSuffix(l, ")") && strings.LastIndexByte(l, '(') > 0:
			said = append(said, l[:strings.LastIndexByte(l, '(')]) // a frame: its function
		}
	}
	if len(said) == 0 {
		// Nothing Go's crash output would hold: say what init wrote.
		said = append(said, fmt.Sprintf("%.200q", strings.TrimSpace(string(text))))
	}
	return &initCrash{text: strings.Join(said, "; ")}
}

func (s *syncConn) Close() error { return s.f.Close() }

// socketPair returns the parent's end as an fd and the child's end as a file
// for exec.Cmd.ExtraFiles.
func socketPair() (int, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, nil, fmt.Errorf("socketpair: %w", err)
	}
	return fds[0], os.NewFile(uintptr(fds[1]), "sync"), nil
}
