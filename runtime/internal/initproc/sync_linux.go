package initproc

import (
	"encoding/json"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

const maxMessage = 64 << 10

// maxFds bounds the descriptors one message brings: the release's lower
// layer and four v1 tasks files are the most.
const maxFds = 8

// Config is what the parent sends to release init.
type Config struct {
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
	Stdio       bool     `json:"stdio"`       // Spec.Stdio: a StdioMessage with the program's files follows
	// UID and GID are Spec.User's; UID -1 is root, as init is.
	UID     int    `json:"uid"`
	GID     int    `json:"gid"`
	Seccomp []byte `json:"seccomp"` // the program's seccomp filter, from the parent (filter.Program.Bytes)
	// Disk and DiskInodes are the session's disk, in bytes and in inodes:
	// the writable layer, /tmp and /dev/shm in one tmpfs (DiskLayout).
	Disk       int64 `json:"disk"`
	DiskInodes int64 `json:"diskInodes"`
	// Ptys is the max= of the container's /dev/pts (Limits.Ptys), 0 for
	// none.
	Ptys int `json:"ptys,omitempty"`
	// InotifyInstances and InotifyWatches cap what the container's user
	// namespace may hold (its user.max_inotify_*), 0 for the kernel's.
	InotifyInstances int `json:"inotifyInstances,omitempty"`
	InotifyWatches   int `json:"inotifyWatches,omitempty"`
	// Sysctls are set in the container's IPC namespace (its System V
	// IPC bounds) once /proc is mounted, before /proc/sys is made
	// read-only.
	Sysctls []Sysctl `json:"sysctls,omitempty"`
	// Rlimits are set on init before the program starts, so that every
	// process of the session has them.
	Rlimits []Rlimit `json:"rlimits,omitempty"`
	// Nice is the program's nice value (SessionNice where no cgroup shares
	// the CPU), 0 for none.
	Nice int `json:"nice,omitempty"`
	// TimerSlack is the program's timer slack in nanoseconds: the
	// server's own. Init's start runs with the spawner's coarser one
	// (StartTimerSlack), which init's own threads keep; 0 leaves the
	// program init's.
	TimerSlack uint64 `json:"timerSlack,omitempty"`
	// NetRules are installed in the container's net namespace (outbound
	// network).
	NetRules NetRules `json:"netRules"`
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
	// CgroupTasks: the session's v1 tasks files, one per hierarchy, come
	// with this message (after the lower layer's fd, when one comes),
	// opened for writing by the parent; init moves itself in with them
	// as soon as it is released (enterCgroups).
	CgroupTasks int `json:"cgroupTasks,omitempty"`
}

// Message is what init sends back: one error, or ready (with the pty
// master), and at the end the program's exit status.
type Message struct {
	Kind   string  `json:"kind"` // "error", "ready", "checked", "exit"; to init: "entered"
	Step   string  `json:"step,omitempty"`
	Err    string  `json:"err,omitempty"`
	Cause  string  `json:"cause,omitempty"` // with "error": CauseNotFound, CauseNotExecutable or ""
	Code   int     `json:"code,omitempty"`
	Signal int     `json:"signal,omitempty"`
	Phases []Phase `json:"phases,omitempty"` // with "ready": when init's phases ended
}

func sendMsg(fd int, v any, files ...int) error {
	b, oob, err := EncodeMsg(v, files)
	if err != nil {
		return err
	}
	return unix.Sendmsg(fd, b, oob, nil, 0)
}

// EncodeMsg is v as a sync socket message, with files as its SCM_RIGHTS
// control message: a Config or a Message in their binary encoding
// (codec_linux.go), anything else JSON.
func EncodeMsg(v any, files []int) (b, oob []byte, err error) {
	var ok bool
	if b, ok = encodeBinary(v); !ok {
		b, err = json.Marshal(v)
	}
	if len(files) > 0 {
		oob = unix.UnixRights(files...)
	}
	return b, oob, err
}

// recvMsg reads one message into v and returns the descriptors that came
// with it; ErrEOF means the other side closed its end. It is init's: a
// blocking read of fd.
func recvMsg(fd int, v any) ([]int, error) {
	buf := make([]byte, maxMessage)
	oob := make([]byte, unix.CmsgSpace(maxFds*4))
	for {
		n, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read sync socket: %w", err)
		}
		return DecodeMsg(buf[:n], oob[:oobn], v)
	}
}

// DecodeMsg reads a message received as b and oob into v and returns the
// descriptors that came with it. An empty message with none is ErrEOF; a
// message that does not decode closes its descriptors.
func DecodeMsg(b, oob []byte, v any) ([]int, error) {
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
		return nil, ErrEOF
	}
	var err error
	if len(b) > 0 && b[0] == binaryTag {
		err = decodeBinary(b[1:], v)
	} else {
		err = json.Unmarshal(b, v)
	}
	if err != nil {
		CloseFds(fds)
		return nil, fmt.Errorf("decode sync message: %w", err)
	}
	return fds, nil
}

// ErrEOF is what reading a sync socket whose other end is closed returns.
var ErrEOF = errors.New("sync socket closed")

// CloseFds closes received descriptors that will not be used.
func CloseFds(fds []int) {
	for _, fd := range fds {
		_ = unix.Close(fd) // nothing to do about a failed close of an unused fd
	}
}
