package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The parent and the container's init talk over a SOCK_SEQPACKET socket
// pair: each message is one JSON object, optionally carrying file
// descriptors (the id-mapped rootfs going in, the pty master coming out).
// Message boundaries are kept by the socket, so no framing is needed, and
// the parent sees EOF the moment init dies.

const maxMessage = 64 << 10

// initConfig is what the parent sends to release init.
type initConfig struct {
	Rootfs      string   `json:"rootfs"` // a directory, or HostRootfs
	Hostname    string   `json:"hostname"`
	Args        []string `json:"args"`
	Env         []string `json:"env"`
	Dir         string   `json:"dir"`
	Cols        uint16   `json:"cols"`
	Rows        uint16   `json:"rows"`
	MountPoint  string   `json:"mountPoint"`  // empty host directory for the container's tmpfs
	ResolvConf  string   `json:"resolvConf"`  // contents for /etc/resolv.conf
	IDRange     bool     `json:"idRange"`     // a full 65536-id range is mapped, not just root
	MappedLower bool     `json:"mappedLower"` // an id-mapped mount of Rootfs (or HostLower) comes with this message
	LowerFD     bool     `json:"lowerFD"`     // an O_PATH fd of Rootfs comes with this message: a path init may not reach
	HostLower   string   `json:"hostLower"`   // for HostRootfs: the prepared lower layer (preparedHostRoot)
	Check       bool     `json:"check"`       // stop once the program is found; report "checked"
	Stdio       bool     `json:"stdio"`       // Spec.Stdio: a stdioMessage with the program's files follows
	// UID and GID are Spec.User's; UID -1 is root, as init is.
	UID     int    `json:"uid"`
	GID     int    `json:"gid"`
	Seccomp []byte `json:"seccomp"` // the program's seccomp filter, from the parent (filter.Program.Bytes)
	// Limits.Disk is the session's disk: the writable layer, /tmp and
	// /dev/shm in one tmpfs (DiskLayout).
	Limits Limits `json:"limits"`
	// Rlimits are set on init before the program starts, so that every
	// process of the session has them.
	Rlimits []Rlimit `json:"rlimits,omitempty"`
	// Nice is the program's nice value (SessionNice where no cgroup shares
	// the CPU), 0 for none.
	Nice int `json:"nice,omitempty"`
	// NetRules are installed in the container's net namespace (outbound
	// network).
	NetRules NetRules `json:"netRules"`
	// BecomeRoot: newuidmap wrote the maps after the start; init makes
	// itself container root first (subordinate ids).
	BecomeRoot bool `json:"becomeRoot,omitempty"`
	// ProgramIsInit: init executes the program in its own place (Spec's
	// field of that name) after its ready message; the parent learns
	// that the exec happened from the sync socket's end of file (init's
	// end is close-on-exec), or reads the error of a failed one.
	ProgramIsInit bool `json:"programIsInit,omitempty"`
	// EnterLater: the parent moves init into its v1 cgroups while init
	// builds the container (a move waits for the kernel's RCU, some
	// milliseconds), and then sends "entered", which init waits for
	// before anything of the program's starts.
	EnterLater bool `json:"enterLater,omitempty"`
}

// initMessage is what init sends back: one error, or ready (with the pty
// master), and at the end the program's exit status.
type initMessage struct {
	Kind   string  `json:"kind"` // "error", "ready", "checked", "exit"; to init: "entered"
	Step   string  `json:"step,omitempty"`
	Err    string  `json:"err,omitempty"`
	Cause  string  `json:"cause,omitempty"` // with "error": causeNotFound, causeNotExecutable or ""
	Code   int     `json:"code,omitempty"`
	Signal int     `json:"signal,omitempty"`
	Phases []phase `json:"phases,omitempty"` // with "ready": when init's phases ended
}

// setupError is a failed setup step inside the container, as reported by
// init: "mount overlay on /: permission denied".
type setupError struct {
	Step  string
	Err   string
	Cause string // see Is
}

func (e *setupError) Error() string { return e.Step + ": " + e.Err }

// setupError is what an "error" message of init's reports.
func (m initMessage) setupError() *setupError {
	return &setupError{Step: m.Step, Err: m.Err, Cause: m.Cause}
}

func sendMsg(fd int, v any, files ...int) error {
	b, oob, err := encodeMsg(v, files)
	if err != nil {
		return err
	}
	return unix.Sendmsg(fd, b, oob, nil, 0)
}

func encodeMsg(v any, files []int) (b, oob []byte, err error) {
	b, err = json.Marshal(v)
	if len(files) > 0 {
		oob = unix.UnixRights(files...)
	}
	return b, oob, err
}

// recvMsg reads one message into v and returns the descriptors that came
// with it; errEOF means the other side closed its end. It is init's: a
// blocking read of fd.
func recvMsg(fd int, v any) ([]int, error) {
	buf := make([]byte, maxMessage)
	oob := make([]byte, unix.CmsgSpace(4*4))
	for {
		n, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read sync socket: %w", err)
		}
		return decodeMsg(buf[:n], oob[:oobn], v)
	}
}

func decodeMsg(b, oob []byte, v any) ([]int, error) {
	var fds []int
	if len(oob) > 0 {
		msgs, err := unix.ParseSocketControlMessage(oob)
		if err != nil {
			return nil, fmt.Errorf("parse control message: %w", err)
		}
		for _, m := range msgs {
			got, err := unix.ParseUnixRights(&m)
			if err == nil {
				fds = append(fds, got...)
			}
		}
	}
	if len(b) == 0 && len(fds) == 0 {
		return nil, errEOF
	}
	if err := json.Unmarshal(b, v); err != nil {
		closeFds(fds)
		return nil, fmt.Errorf("decode sync message: %w", err)
	}
	return fds, nil
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
	b, oob, err := encodeMsg(v, files)
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
	if len(b) > 0 && b[0] != '{' {
		return nil, s.crash(b, size)
	}
	return decodeMsg(b, oob, v)
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

var errEOF = errors.New("sync socket closed")

func closeFds(fds []int) {
	for _, fd := range fds {
		_ = unix.Close(fd) // nothing to do about a failed close of an unused fd
	}
}

// socketPair returns the parent's end as an fd and the child's end as a file
// for exec.Cmd.ExtraFiles.
func socketPair() (int, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, nil, fmt.Errorf("socketpair: %w", err)
	}
	return fds[0], os.NewFile(uintptr(fds[1]), "sync"), nil
}
