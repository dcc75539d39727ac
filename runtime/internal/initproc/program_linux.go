package initproc

import (
	"errors"
	"fmt"
	"os"
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
	// timerSlack is the program's timer slack (Config.TimerSlack), 0 to
	// leave it the thread's.
	timerSlack uint64
	// rlimits are set last, just before the program starts
	// (lastRlimits).
	rlimits []Rlimit
}

// startProgram is init's last step. Capabilities, no_new_privs, the seccomp
// filter and the session keyring belong to a thread, not to a process, in
// Linux (and init is a Go program with many threads), so it all happens on
// one OS thread locked for the purpose, which then forks and executes the
// program: the program inherits that thread's state and nothing of init's
// other threads. The thread is never unlocked, so it ends with its
// goroutine and no Go code runs on it again. In order:
//
//  0. the server's timer slack, not the coarser one init started with
//     (StartTimerSlack), and a lower CPU priority (nice, and the batch
//     policy) where no cgroup shares the CPU;
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
	// The session's process limit binds init as soon as the program
	// runs, the pids cgroup's as well as NPROC: a fork bomb fills it in
	// milliseconds, and init then could make no thread. So the threads
	// it will need (the locked one below, which ends with its goroutine
	// and leaves the rest of init to another; its waits in wait4 and
	// recvfrom block one each) are made first, while nothing can refuse
	// them: TestForkBomb's cgroup start once crashed without ("runtime/cgo:
	// pthread_create failed"), where only rlimits had them made.
	reserveThreads(4)
	// DATA and NPROC, which the program inherits at the fork, bind init
	// from here on; its memory limit leaves it room to map more
	// (checkResidentMemory). At 100 MiB, below its own address space,
	// init died of refused memory (Go's fatal error in persistentalloc,
	// exit status 2): TestInitUnderTheSmallestLimits.
	if len(p.rlimits) > 0 {
		if err := step("set rlimits", ApplyRlimits(p.rlimits)); err != nil {
			return 0, err
		}
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
	if err := restrict(p); err != nil {
		return 0, err
	}
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
		return 0, step("exec "+p.path, credentialHint(err, p))
	}
	Mark("fork and exec the program")
	return pid, nil
}

// credentialHint explains the EINVAL of a user the container does not map.
func credentialHint(err error, p program) error {
	if p.uid >= 0 && errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("%w (user %d:%d is not mapped in this container: only root is, unless the server runs as root)", err, p.uid, p.gid)
	}
	return err
}

// restrict takes from the calling thread, steps 0 to 5 above, what the
// program must not have.
func restrict(p program) error {
	// Timer slack, priority and policy are per thread, and a child
	// inherits its forking thread's: this one's become the program's.
	// RLIMIT_NICE (0) keeps it from raising its priority back; the batch
	// policy is a hint it may undo (SessionPolicy).
	if p.timerSlack != 0 {
		if err := step("set the timer slack", unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(p.timerSlack), 0, 0, 0)); err != nil {
			return err
		}
	}
	if p.nice != 0 {
		attr := unix.SchedAttr{Policy: SessionPolicy, Nice: int32(p.nice)}
		if err := step("lower the CPU priority (nice, SCHED_BATCH)", unix.SchedSetAttr(0, &attr, 0)); err != nil {
			return err
		}
	}
	if err := step("unshare cgroup namespace", unix.Unshare(unix.CLONE_NEWCGROUP)); err != nil {
		return err
	}
	if err := step("new session keyring", joinSessionKeyring()); err != nil {
		return err
	}
	Mark("cgroup namespace, keyring")
	if err := step("drop capabilities", dropCapabilities()); err != nil {
		return err
	}
	Mark("capabilities")
	if err := step("set no_new_privs", unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)); err != nil {
		return err
	}
	if err := step("install seccomp filter", p.filter.Install()); err != nil {
		return err
	}
	Mark("no_new_privs, seccomp")
	return nil
}

// execProgram is init's last step with Spec.ProgramIsInit: on init's
// first thread, it takes away what the program must not have (as
// startProgram does on a thread of its own); it sends the parent its
// ready message with the pty master, and then executes the program in its
// own place, so that the program is PID 1 and no process of the runtime
// stays in the container. Go's ForkExec does in the child what this does
// in place: setsid, the user (setgroups, setresgid, setresuid, on this
// thread alone, which the exec makes the process's), chdir, the
// parent-death signal, fds 0 to 2 and the controlling terminal. It
// returns init's exit code when a step or the exec failed (reported to
// the parent first).
//
// It runs on the goroutine that runs init, in this package's
// initialisation: Go runs every init function on the process's first
// thread, with that goroutine locked to it (runtime.LockOSThread's
// documentation), so no step can land on another thread. A goroutine of
// its own, locked with LockOSThread as before, cost a start two more
// threads (the runtime's template thread, which the first LockOSThread
// makes, and one to run the goroutine while the locked first thread
// waited for it), each a clone, a handoff of init's one P, and a thread
// for the exec to end: 3 to 4 threads made by every init before, 2 now,
// sysmon and the one Go's start makes while its first thread waits in
// gcenable (sched_process_fork, 30 starts each). The thread is checked, before
// the first step and before the exec, as the steps would be unsafe on any
// other.
func execProgram(p program, master *os.File) int {
	if err := onFirstThread(); err != nil {
		reportError(err)
		return 1
	}
	err := execInPlace(p, master)
	if errors.Is(err, errParentGone) {
		return 1
	}
	reportError(err)
	return 1
}

// onFirstThread fails unless the caller runs on the process's first
// thread, whose thread id is the process id.
func onFirstThread() error {
	if tid, pid := unix.Gettid(), unix.Getpid(); tid != pid {
		return step("exec the program", fmt.Errorf("init runs on thread %d, not its first (%d): its steps would not reach the program", tid, pid))
	}
	return nil
}

var errParentGone = errors.New("the parent has gone")

func execInPlace(p program, master *os.File) error {
	if err := restrict(p); err != nil {
		_ = master.Close()
		return err
	}
	if err := sendMsg(syncFd, Message{Kind: "ready", Phases: takePhases()}, readyFds(master)...); err != nil {
		return errParentGone
	}
	if master != nil {
		_ = master.Close() // the parent holds it now
	}
	if _, err := unix.Setsid(); err != nil {
		return step("setsid", err)
	}
	if p.uid >= 0 {
		if p.setgroups {
			if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, 0, 0, 0); e != 0 {
				return step("setgroups", e)
			}
		}
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(p.gid), uintptr(p.gid), uintptr(p.gid)); e != 0 {
			return step("exec "+p.path, credentialHint(e, p))
		}
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(p.uid), uintptr(p.uid), uintptr(p.uid)); e != 0 {
			return step("exec "+p.path, credentialHint(e, p))
		}
	}
	if err := step("working directory "+p.dir, unix.Chdir(p.dir)); err != nil {
		return err
	}
	// A change of user clears the parent-death signal set at the clone:
	// set it again, and then make sure the parent did not die before.
	// The parent never closes its end of the sync socket while init
	// lives, so end of file there means it has gone.
	if err := step("set the parent-death signal", unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0)); err != nil {
		return err
	}
	if n, _, err := unix.Recvfrom(syncFd, make([]byte, 1), unix.MSG_PEEK|unix.MSG_DONTWAIT); err == nil && n == 0 {
		return errParentGone
	}
	if err := dupStdio(p.fds); err != nil {
		return step("program's fds 0 to 2", err)
	}
	if p.ctty {
		if err := step("controlling terminal", unix.IoctlSetInt(0, unix.TIOCSCTTY, 0)); err != nil {
			return err
		}
	}
	// Go's threads block no signal; the program starts with none blocked.
	var none unix.Sigset_t
	if err := step("signal mask", unix.PthreadSigmask(unix.SIG_SETMASK, &none, nil)); err != nil {
		return err
	}
	// Last, as nothing of init's runs under them afterwards: DATA, below
	// what init has mapped already, and NPROC. From the limits to the exec
	// init must neither grow its heap nor make a thread, or Go ends it
	// ("container init crashed": runtime.sysMap refused, or a cgo thread's
	// pthread_create aborting), which TestInitUnderTheSmallestLimits saw
	// about once in twenty runs while syscall.Exec, which allocates, came
	// after them (an allocation could also start a collection, whose
	// workers want a thread). So the exec's arguments are made first, no
	// collection runs (init has none: GOGC=off, initEnv), and nothing between
	// the limits and the exec allocates or enters a blocking system call
	// (TestExecAfterTheLimitsAllocatesNothing): this goroutine holds
	// init's one P (initEnv) throughout, and nothing wakes another thread.
	// Making idle threads first as startProgram does (reserveThreads) was
	// not needed (none of 300 runs crashed without) and costs 2 ms a
	// start here.
	ex, err := prepareExec(p.path, p.args, p.env)
	if err != nil {
		return step("exec "+p.path, err)
	}
	if err := onFirstThread(); err != nil {
		return err
	}
	err = limitAndExec(ex, p.rlimits)
	return step("exec "+p.path, err)
}

// limitAndExec sets the last rlimits and replaces init with the program.
// Unless it fails, it allocates nothing.
func limitAndExec(ex execArgs, rl []Rlimit) error {
	if err := ApplyRlimits(rl); err != nil {
		return err
	}
	return ex.exec()
}

// execArgs is what execve takes, made before the limits that would refuse
// the memory for it.
type execArgs struct {
	path *byte
	argv []*byte
	envv []*byte
}

func prepareExec(path string, args, env []string) (execArgs, error) {
	var (
		a   execArgs
		err error
	)
	if a.path, err = syscall.BytePtrFromString(path); err != nil {
		return a, err
	}
	if a.argv, err = syscall.SlicePtrFromStrings(args); err != nil {
		return a, err
	}
	if a.envv, err = syscall.SlicePtrFromStrings(env); err != nil {
		return a, err
	}
	return a, nil
}

// exec replaces init with the program, allocating nothing. It is
// syscall.Exec without two things: the runtime's exec lock, which keeps
// a thread from being made during the exec so that a set-user-ID program
// gets its new ids (go.dev/issue/19546; no_new_privs ignores those bits
// here anyway), and putting back the soft RLIMIT_NOFILE Go raised at its
// start, which init has set itself (RlimitsFor).
func (a execArgs) exec() error {
	_, _, e := unix.RawSyscall(unix.SYS_EXECVE, uintptr(unsafe.Pointer(a.path)), uintptr(unsafe.Pointer(&a.argv[0])), uintptr(unsafe.Pointer(&a.envv[0])))
	return e
}

// dupStdio makes fds 0, 1 and 2 the program's, without close-on-exec.
// The files are init's own fds (3 and above: 0 to 2 are taken when
// they are opened), but a lower one is moved out of the way first.
func dupStdio(fds progFds) error {
	var from [3]int
	for i, fd := range fds {
		from[i] = int(fd)
		if from[i] < 3 && from[i] != i {
			nfd, err := unix.FcntlInt(fds[i], unix.F_DUPFD_CLOEXEC, 3)
			if err != nil {
				return err
			}
			from[i] = nfd
		}
	}
	for i, fd := range from {
		if fd == i {
			if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
				return err
			}
			continue
		}
		if err := unix.Dup3(fd, i, 0); err != nil {
			return err
		}
	}
	return nil
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
