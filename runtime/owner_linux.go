package runtime

import (
	"fmt"
	goruntime "runtime"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A user namespace has an owner, the effective uid of the process that
// made it, and the kernel charges what it counts per user (inotify
// instances and watches, queued real-time signals, message queue bytes,
// locked shared memory, processes) to the user inside the namespace and
// again to its owner, at every level up to the host's (kernel/ucount.c).
// A server as root that made every session's namespace as root charged
// them all to host root: one session could take what every session and
// every root process of the host draws from (TestSharedCountsPerSession).
// spawnOwner makes the namespace as a uid of the session's own instead:
// for a server as root the host uid its container root runs as; for a
// spawner in a user namespace of its own (spawnerNS), root there, an id
// of that namespace no other live session's is. Then every user id of the
// session adds up there, apart from the other sessions' and the host's,
// and the kernel's per-user limits become per session.
//
// The switch is of the calling thread's credentials alone (a raw
// setresuid; the Go runtime's own switches every thread), with
// SECBIT_NO_SETUID_FIXUP so that it keeps its capabilities (a clone into a
// cgroup needs write access to it, and the switch back needs CAP_SETUID),
// and it is undone before the thread runs anything else: securebits,
// dumpable and the parent-death signal, which the kernel resets on a
// change of credentials, are put back too. (Until then the whole process
// is undumpable, and so is the exec of a child made meanwhile until it
// ends: writeIDMapsExecuted.) The child made meanwhile gets
// a fresh set of credentials in its new user namespace (full capabilities
// there, default securebits), its uids those of the session's root.
//
// The file system uid follows: not kept at 0, since the child's exec
// would then change it, and a change of credentials at an exec makes the
// process undumpable, its /proc files root's (its maps then unwritable by
// a spawner in a namespace of its own). What the clone opens, it opens
// with the capabilities kept: a v2 cgroup's cgroup.procs, owned by the
// spawner's 0 in a delegated subtree, with CAP_DAC_OVERRIDE. uid 0 or
// less: fn runs as it is (not root, or no range of its own).
func spawnOwner(uid int, fn func() error) error {
	if uid <= 0 || unix.Geteuid() != 0 {
		return fn()
	}
	goruntime.LockOSThread()
	bits, err := unix.PrctlRetInt(unix.PR_GET_SECUREBITS, 0, 0, 0, 0)
	if err != nil {
		goruntime.UnlockOSThread()
		return fmt.Errorf("securebits: %w", err)
	}
	dumpable := processDumpable()
	var pdeath int32
	_ = unix.Prctl(unix.PR_GET_PDEATHSIG, uintptr(unsafe.Pointer(&pdeath)), 0, 0, 0)
	if _, _, e := syscall.RawSyscall6(syscall.SYS_PRCTL, unix.PR_SET_SECUREBITS, uintptr(bits)|secbitNoSetuidFixup, 0, 0, 0, 0); e != 0 {
		goruntime.UnlockOSThread()
		return fmt.Errorf("securebits: %w", e)
	}
	if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, uintptr(uid), uintptr(uid), uintptr(uid)); e != 0 {
		_, _, _ = syscall.RawSyscall6(syscall.SYS_PRCTL, unix.PR_SET_SECUREBITS, uintptr(bits), 0, 0, 0, 0)
		goruntime.UnlockOSThread()
		return fmt.Errorf("become uid %d: %w", uid, e)
	}
	err = fn()
	if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, 0, 0, 0); e != 0 {
		// The thread stays locked, so that it ends with its goroutine
		// rather than run another as the session's uid.
		return fmt.Errorf("back to root from uid %d: %w", uid, e)
	}
	_, _, _ = syscall.RawSyscall6(syscall.SYS_PRCTL, unix.PR_SET_SECUREBITS, uintptr(bits), 0, 0, 0, 0)
	_ = unix.Prctl(unix.PR_SET_DUMPABLE, uintptr(dumpable), 0, 0, 0)
	_ = unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(pdeath), 0, 0, 0)
	goruntime.UnlockOSThread()
	return err
}

// processDumpable is the process's dumpable state before any spawnOwner
// changed it. Each switch makes the whole process undumpable until it is
// put back, so a state read at every switch would read another thread's
// switch: two at once, and the later put the earlier's undumpable back for
// good (TestSpawnOwnerKeepsDumpable).
var processDumpable = sync.OnceValue(func() int {
	d, _ := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	return d
})

// secbitNoSetuidFixup is SECBIT_NO_SETUID_FIXUP (linux/securebits.h):
// the kernel leaves the capability sets alone when the uids change.
const secbitNoSetuidFixup = 1 << 2
