// Package runtime starts and ends isolated containers.
//
// A container is the runtime's own binary, from a sealed in-memory copy,
// re-executed into new user, pid, mount, uts, ipc and net namespaces. Its
// init (PID 1 of the new pid namespace, not dumpable) builds a root from a
// read-only root file system and a per-container writable layer on a
// size-limited tmpfs, pivot_roots into it, opens a pty from the container's
// own devpts, hands the pty master to the parent and starts the program on
// the pty's slave side as its controlling terminal (or, with Spec.Stdio, on
// the caller's own files and no terminal), through a last step that
// gives it a cgroup namespace and a session keyring of its own, a short
// list of capabilities, no_new_privs and a seccomp filter. When the program
// exits, init exits and the kernel ends every other process of the pid
// namespace; every mount of the container lives in its own mount namespace
// and goes with it. When the process that started it dies, init sees its
// end of the sync socket close and ends the container too.
//
// A server prepares the host once, with NewHost: the sessions' parent
// cgroup (each container then gets its own below it, with the memory,
// process and CPU limits of Spec.Limits, and ends whole when it hits one:
// ExitStatus.Reason says which), or, where no cgroup can be had, rlimits
// and a lower CPU priority; subordinate ids from /etc/subuid for an
// ordinary user; the outbound network's helper. A container's writable
// layer, /tmp and /dev/shm are one tmpfs of Limits.Disk bytes.
//
// Programs that embed the runtime must call MaybeInit first thing in main
// (and in TestMain of tests that start containers): it marks inherited fds
// close-on-exec and runs the runtime's helpers. The re-executed init itself
// never gets to main: it is entered, and ends, while Go initialises this
// package's dependencies (package initproc).
package runtime

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"github.com/guntainer/playground/runtime/internal/initproc"
)

// ErrUnsupported is returned on systems where containers cannot be started.
var ErrUnsupported = errors.New("runtime: containers need Linux")

// HostRootfs is the Spec.Rootfs value that builds the root from the host's
// /usr, /bin, /lib, /lib64 and /sbin, read-only, with a synthesised /etc.
const HostRootfs = initproc.HostRootfs

// Spec says what container to start.
type Spec struct {
	// Rootfs is HostRootfs or the path of an unpacked root file system. It is
	// never written to: the container writes to its own layer.
	Rootfs string
	// Hostname of the container; "playground" when empty.
	Hostname string
	// Args is the program and its arguments. Empty means an interactive login
	// shell: /bin/bash -l, or /bin/sh -l when the rootfs has no bash.
	Args []string
	// Env is added to the container's base environment (TERM, HOME, PATH,
	// PS1 ...), overriding it by name.
	Env []string
	// Dir is the working directory inside the container; HOME when empty.
	Dir string
	// User is who the program runs as inside the container, "UID[:GID]"
	// in numbers (GID defaults to UID); empty means root. A user other
	// than root exists only where a full id range is mapped (the server
	// runs as root); the program then has no capabilities at all.
	User string
	// Cols and Rows are the terminal size; 80x24 when zero.
	Cols, Rows uint16
	// Stdio, when set, gives the program these files as its stdin, stdout
	// and stderr instead of a terminal: no pty, no echo, end of file as
	// the caller's. See Stdio for what is accepted.
	Stdio *Stdio
	// Limits bound what the container may use (zero fields: the
	// defaults): with the Host's cgroups for the whole container, else as
	// rlimits of each process. Limits.Disk is its writable layer, /tmp and
	// /dev/shm together.
	Limits Limits
	// WritableSize is the old name of Limits.Disk, used when that is zero.
	//
	// Deprecated: set Limits.Disk.
	WritableSize int64
	// Net is the container's network: loopback only by default; outbound
	// needs a Host made for it.
	Net Net
	// Host is what the server prepared once for all its containers
	// (NewHost): cgroups, subordinate ids, the network helper. Nil means a
	// default Host for StateDir, without cgroups, subordinate ids or
	// outbound network.
	Host *Host
	// StateDir is where the host keeps an empty mount point per container:
	// the Host's when it has one (a Spec may leave it empty or name the
	// same). Defaults to DefaultStateDir().
	StateDir string
	// ProgramIsInit makes the program the container's PID 1 in place of
	// init, as runc does (and docker without --init): init builds the
	// container, drops what the program must not have, and executes the
	// program itself instead of starting it as a child. No process of the
	// runtime then stays in the container, which saves a container the
	// resident init's memory (1.3 to 1.6 MiB of host memory per idle
	// session in the load command's figures) and a fork at its start.
	// What init did while it stayed, the program must do: reap the
	// orphans it inherits, and handle the signals it wants, since PID 1
	// of a pid namespace ignores every signal it has no handler for,
	// Signal's and the terminal's ^C included (SIGKILL from outside, as
	// Close sends, still ends it). An interactive shell does both: the
	// server's sessions run this way. A container still ends when the
	// server dies (the parent-death signal, set again after the last
	// change of user and checked against the parent's end of the sync
	// socket).
	ProgramIsInit bool

	check bool // set by Check: build the container, find the program, stop there
}

// ExitStatus is how a container's program ended.
type ExitStatus struct {
	// Code is the exit code, or -1 when a signal ended the program.
	Code int
	// Signal is the signal that ended the program, or 0.
	Signal syscall.Signal
	// Reason says why the runtime ended the program, when it did: a limit
	// it hit ("memory limit 512 MiB reached"). Empty when the program
	// ended on its own or was ended from outside (Close, a signal).
	Reason string
	// Limit names the limit of Reason, for counting: "memory", "pids" or
	// "host_memory" (HostMemoryReason). Empty when Reason is.
	Limit string
}

// parseUser parses Spec.User: "" is root (-1, -1), "UID" is UID:UID.
func parseUser(s string) (uid, gid int, err error) {
	if s == "" {
		return -1, -1, nil
	}
	u, g, hasGID := strings.Cut(s, ":")
	uid, err = parseID(u)
	if err == nil {
		gid = uid
		if hasGID {
			gid, err = parseID(g)
		}
	}
	if err != nil {
		return 0, 0, fmt.Errorf("user %q: want UID or UID:GID, in numbers", s)
	}
	if uid == 0 && gid == 0 {
		return -1, -1, nil
	}
	return uid, gid, nil
}

func parseID(s string) (int, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 1<<32-1 {
		return 0, errors.New("bad id")
	}
	return int(n), nil
}

// Signaled reports whether a signal ended the program.
func (s ExitStatus) Signaled() bool { return s.Signal != 0 }

// String is "exit code N" or "signal NAME".
func (s ExitStatus) String() string {
	if s.Signaled() {
		return "signal " + SignalName(s.Signal)
	}
	return fmt.Sprintf("exit code %d", s.Code)
}

// SignalName is the short upper-case name of sig, as in "KILL".
func SignalName(sig syscall.Signal) string {
	if n, ok := signalNames[sig]; ok {
		return n
	}
	return fmt.Sprintf("%d", int(sig))
}
