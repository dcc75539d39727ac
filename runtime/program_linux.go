package runtime

import (
	"errors"
	"fmt"
	goruntime "runtime"
	"syscall"
	"unsafe"

	"github.com/guntainer/playground/runtime/seccomp/filter"
	"golang.org/x/sys/unix"
)

// program is what the last step starts.
type program struct {
	path string
	args []string
	env  []string
	dir  string
	fds  progFds // stdin, stdout, stderr: the pty's slave side, or Spec.Stdio's files
	ctty bool    // fds[0] is the pty, to be the controlling terminal
	uid  int     // -1: root, no change
	gid  int
	// setgroups: the user namespace allows setgroups (a full id range is
	// mapped), so the program's supplementary groups are cleared.
	setgroups bool
	filter    filter.Program
	// nice is the program's nice value: SessionNice where no cgroup
	// shares the CPU fairly, 0 for none.
	nice int
}

// startProgram is init's last step. Capabilities, no_new_privs, the seccomp
// filter and the session keyring belong to a thread, not to a process, in
// Linux (and init is a Go program with many threads), so it all happens on
// one OS thread locked for the purpose, which then forks and executes the
// program: the program inherits that thread's state and nothing of init's
// other threads. The thread is never unlocked, so it ends with its
// goroutine and no Go code runs on it again. In order:
//
//  0. a lower CPU priority (nice), where no cgroup shares the CPU;
//  1. a new cgroup namespace, rooted at the cgroup init is in (where the
//     parent placed it before it released init);
//  2. a new, empty session keyring;
//  3. the capability sets cut to keptCaps;
//  4. no_new_privs;
//  5. the seccomp filter, the last act before the fork and execve, which
//     (with setsid, the controlling tty, dup and chdir of Go's child code,
//     and setgroups, setresgid and setresuid for Spec.User) run under it.
func startProgram(p program) (int, error) {
	type result struct {
		pid int
		err error
	}
	done := make(chan result, 1)
	go func() {
		goruntime.LockOSThread() // never unlocked: the thread exits with this goroutine
		pid, err := lastStep(p)
		done <- result{pid, err}
	}()
	r := <-done
	return r.pid, r.err
}

func lastStep(p program) (int, error) {
	// Priority is per thread, and a child inherits its forking thread's:
	// this one's becomes the program's, and RLIMIT_NICE (0) keeps it
	// from raising it back.
	if p.nice != 0 {
		if err := step("lower the CPU priority", unix.Setpriority(unix.PRIO_PROCESS, 0, p.nice)); err != nil {
			return 0, err
		}
	}
	if err := step("unshare cgroup namespace", unix.Unshare(unix.CLONE_NEWCGROUP)); err != nil {
		return 0, err
	}
	if err := step("new session keyring", joinSessionKeyring()); err != nil {
		return 0, err
	}
	mark("cgroup namespace, keyring")
	if err := step("drop capabilities", dropCapabilities()); err != nil {
		return 0, err
	}
	mark("capabilities")
	if err := step("set no_new_privs", unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)); err != nil {
		return 0, err
	}
	if err := step("install seccomp filter", p.filter.Install()); err != nil {
		return 0, err
	}
	mark("no_new_privs, seccomp")
	sys := &syscall.SysProcAttr{Setsid: true, Setctty: p.ctty, Ctty: 0}
	if p.uid >= 0 {
		// Leaving uid 0 clears the permitted and effective sets.
		sys.Credential = &syscall.Credential{Uid: uint32(p.uid), Gid: uint32(p.gid), NoSetGroups: !p.setgroups}
	}
	pid, err := syscall.ForkExec(p.path, p.args, &syscall.ProcAttr{
		Dir:   p.dir,
		Env:   p.env,
		Files: p.fds[:],
		Sys:   sys,
	})
	if err != nil {
		if p.uid >= 0 && errors.Is(err, unix.EINVAL) {
			err = fmt.Errorf("%w (user %d:%d is not mapped in this container: only root is, unless the server runs as root)", err, p.uid, p.gid)
		}
		return 0, step("exec "+p.path, err)
	}
	mark("fork and exec the program")
	return pid, nil
}

// sharedKeyring is the session keyring containers share when their user's
// key quota is spent.
var sharedKeyring = []byte("playground-sessions\x00")

// joinSessionKeyring gives the calling thread a new, empty, anonymous
// session keyring, so the program inherits none of the server's. Every
// keyring counts against its owner's key quota (kernel.keys.maxkeys, 200
// by default for users other than root), and as an ordinary user every
// container's root is that one user: when the quota is spent, the thread
// joins one keyring all such containers share instead, which is empty as
// well and stays so, since the program can neither add nor read a key
// (keyctl, add_key and request_key are refused by the seccomp filter).
func joinSessionKeyring() error {
	_, _, e := unix.RawSyscall(unix.SYS_KEYCTL, unix.KEYCTL_JOIN_SESSION_KEYRING, 0, 0) // NULL name: a new keyring
	if e == unix.EDQUOT {
		_, _, e = unix.RawSyscall(unix.SYS_KEYCTL, unix.KEYCTL_JOIN_SESSION_KEYRING, uintptr(unsafe.Pointer(&sharedKeyring[0])), 0)
	}
	if e != 0 {
		return e
	}
	return nil
}
