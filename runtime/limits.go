package runtime

import (
	"errors"
	"fmt"
	"math"
	"os"
	goruntime "runtime"
	"strconv"
	"strings"

	"github.com/guntainer/playground/runtime/internal/initproc"
)

// Limits bound what one session may use. The zero value of a field means
// its default (DefaultLimits); NoLimit (-1) turns a limit off.
//
// Where the server owns a cgroup, Memory, Pids and CPUs are the session's
// cgroup limits: for the whole session, all its processes together. Without
// one they become rlimits of each process (see RlimitsFor), which bound a
// process, not a session, and CPUs has no equivalent at all: the server
// says so once at start (LimitsMode.Warning).
type Limits struct {
	// Memory in bytes: RAM for the whole session, swap off. In cgroup mode
	// the session's files (Disk) live in RAM and count here too.
	Memory int64
	// Pids is the most processes (tasks) the session may have at once.
	Pids int
	// CPUs is the CPU time the session may use, in CPUs (1.5 = one and a
	// half), enforced as a cgroup CPU quota. Between busy sessions CPU is
	// shared by equal weight, whatever CPUs is.
	CPUs float64
	// Disk in bytes is the session's writable storage: its writable layer,
	// /tmp and /dev/shm together, one tmpfs (see DiskLayout).
	Disk int64
	// NoFile is RLIMIT_NOFILE, soft and hard, of every process.
	NoFile int
	// Ptys is the most pseudo-terminals the session may hold at once, its
	// own terminal included: the max= of its /dev/pts. The kernel has one
	// pool of them for every container on the machine (kernel.pty.max
	// less kernel.pty.reserve, 3072 by default), which a session without
	// this bound could take whole: no new session would then get its
	// terminal. NoLimit leaves only the pool.
	Ptys int
}

// NoLimit turns one limit off.
const NoLimit = -1

// Defaults for a class of a few hundred sessions on one machine: each
// session gets enough for apt-get, a compiler and an editor, and a hostile
// one cannot take more than its share.
const (
	DefaultMemory = 512 << 20
	DefaultPids   = 256
	DefaultCPUs   = 1.0
	DefaultDisk   = 1 << 30
	DefaultNoFile = 4096
	DefaultPtys   = 16
)

// Smallest values Validate accepts: below them a shell cannot start. A
// resident init counts 9 threads against pids (initproc's startProgram
// makes those it needs after the program starts before it starts it), so
// 16 leave a shell room for a few children.
const (
	minMemory = 32 << 20
	minPids   = 16
	minCPUs   = 0.01
	minDisk   = 8 << 20
	minNoFile = 64
	minPtys   = 1
	// maxPtys is the most a devpts instance takes (NR_UNIX98_PTY_MAX).
	maxPtys = 1 << 20
)

// What each session's user namespace may hold of the kernel's inotify
// counts (user.max_inotify_instances and _watches, set by init). The
// kernel charges a count at every level up to the host's, so without them
// one session took the server's uid's whole fs.inotify.max_user_instances
// (128 by default), every session's and, for a server as root, every root
// process's on the host. tail -f takes one instance; a file watcher one
// and a watch per directory.
const (
	sessionInotifyInstances = 16
	sessionInotifyWatches   = 16384
)

// What each session's IPC namespace may hold of System V IPC, which the
// kernel makes with its own defaults for every new namespace: shared
// memory without bound (kernel.shmall), 32,000 semaphore sets of up to
// 32,000 each and 32,000 message queues of 16 KiB. Without a memory cgroup
// nothing counted them, and no process's size shows what a namespace
// holds, so the kernel's OOM killer cannot free it: one session of 256 MiB
// held 2 GiB of detached shared memory, and 5 GB of the kernel's own
// memory in semaphore sets (TestSysVIPCBounded). Shared memory is bounded
// by the session's memory (ipcSysctls); semaphores by the kernel's old
// defaults (250 a set, 32,000 in all, 128 sets: about 1.3 MB), which
// served for decades; queues by 256 (4 MiB at 16 KiB each).
const (
	sessionSemaphores = 32000
	sessionMsgQueues  = 256
)

// ipcSysctls are the sysctls init sets in the container's IPC namespace
// (paths below /proc/sys), in this order.
func ipcSysctls(l Limits) []initproc.Sysctl {
	l = l.WithDefaults()
	s := []initproc.Sysctl{
		{Name: "kernel/sem", Value: fmt.Sprintf("250 %d 32 %d", sessionSemaphores, sessionSemaphores/250)},
		{Name: "kernel/msgmni", Value: strconv.Itoa(sessionMsgQueues)},
	}
	if l.Memory > 0 {
		s = append(s, initproc.Sysctl{Name: "kernel/shmall", Value: strconv.FormatInt(l.Memory/int64(os.Getpagesize()), 10)},
			initproc.Sysctl{Name: "kernel/shmmax", Value: strconv.FormatInt(l.Memory, 10)})
	}
	return s
}

// What each user id of a session may hold of the counts the kernel keeps
// per user and charges up to the server's uid too (TestSharedCountsPerSession):
// real-time signals queued (RLIMIT_SIGPENDING; the kernel's default is
// about one per two possible threads, 96,369 here, which one session took
// whole) and POSIX message queue bytes (RLIMIT_MSGQUEUE; a queue of the
// kernel's default size, 10 messages of 8 KiB, takes about 82 KB, and the
// kernel's default limit, 800 KiB, was one session's).
const (
	sessionSigPending = 1024
	sessionMsgQueue   = 256 << 10
)

// DefaultLimits are the limits of a session when nothing is configured.
func DefaultLimits() Limits {
	return Limits{Memory: DefaultMemory, Pids: DefaultPids, CPUs: DefaultCPUs, Disk: DefaultDisk, NoFile: DefaultNoFile, Ptys: DefaultPtys}
}

// WithDefaults fills every zero field with its default.
func (l Limits) WithDefaults() Limits {
	d := DefaultLimits()
	if l.Memory == 0 {
		l.Memory = d.Memory
	}
	if l.Pids == 0 {
		l.Pids = d.Pids
	}
	if l.CPUs == 0 {
		l.CPUs = d.CPUs
	}
	if l.Disk == 0 {
		l.Disk = d.Disk
	}
	if l.NoFile == 0 {
		l.NoFile = d.NoFile
	}
	if l.Ptys == 0 {
		l.Ptys = d.Ptys
	}
	return l
}

// Validate reports every limit that cannot work, in one error. Zero fields
// are valid (they mean the default); NoLimit is valid for every field but
// Disk and NoFile, which always have a bound.
func (l Limits) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if l.Memory != 0 && l.Memory != NoLimit && l.Memory < minMemory {
		bad("memory %s: below the minimum of %s", FormatSize(l.Memory), FormatSize(minMemory))
	}
	if l.Memory < NoLimit {
		bad("memory %d: negative", l.Memory)
	}
	if l.Pids != 0 && l.Pids != NoLimit && l.Pids < minPids {
		bad("pids %d: below the minimum of %d", l.Pids, minPids)
	}
	if l.Pids < NoLimit {
		bad("pids %d: negative", l.Pids)
	}
	switch n := float64(goruntime.NumCPU()); {
	case math.IsNaN(l.CPUs) || math.IsInf(l.CPUs, 0):
		bad("cpus %v: not a number", l.CPUs)
	case l.CPUs == 0 || l.CPUs == NoLimit:
	case l.CPUs < minCPUs:
		bad("cpus %v: the range is %.2f to %.2f", l.CPUs, minCPUs, n)
	case l.CPUs > n:
		// As docker says: a quota above the machine never bites, and a
		// config that asks for it has probably mistaken the unit.
		bad("cpus %v: this machine has only %v CPUs (the range is %.2f to %.2f)", l.CPUs, n, minCPUs, n)
	}
	if l.Disk < 0 {
		v := fmt.Sprint(l.Disk)
		if l.Disk == NoLimit {
			v = "none"
		}
		bad("disk %s: the session's files live in memory, so disk always has a limit", v)
	} else if l.Disk != 0 && l.Disk < minDisk {
		bad("disk %s: below the minimum of %s", FormatSize(l.Disk), FormatSize(minDisk))
	}
	if l.NoFile < 0 {
		bad("nofile %d: open files always have a limit", l.NoFile)
	} else if l.NoFile != 0 && l.NoFile < minNoFile {
		bad("nofile %d: below the minimum of %d", l.NoFile, minNoFile)
	}
	switch {
	case l.Ptys < NoLimit:
		bad("ptys %d: negative", l.Ptys)
	case l.Ptys == 0 || l.Ptys == NoLimit:
	case l.Ptys < minPtys:
		bad("ptys %d: below the minimum of %d", l.Ptys, minPtys)
	case l.Ptys > maxPtys:
		bad("ptys %d: above the kernel's most, %d", l.Ptys, maxPtys)
	}
	return errors.Join(errs...)
}

// String is the limits as the server logs them: "memory 512 MiB, pids 256,
// cpus 1, disk 1 GiB, nofile 4096, ptys 16".
func (l Limits) String() string {
	l = l.WithDefaults()
	mem, pids, cpus, ptys := "none", "none", "none", "none"
	if l.Memory > 0 {
		mem = FormatSize(l.Memory)
	}
	if l.Pids > 0 {
		pids = strconv.Itoa(l.Pids)
	}
	if l.CPUs > 0 {
		cpus = strconv.FormatFloat(l.CPUs, 'f', -1, 64)
	}
	if l.Ptys > 0 {
		ptys = strconv.Itoa(l.Ptys)
	}
	return fmt.Sprintf("memory %s, pids %s, cpus %s, disk %s, nofile %d, ptys %s", mem, pids, cpus, FormatSize(l.Disk), l.NoFile, ptys)
}

// MemoryReason is ExitStatus.Reason for a session ended at its memory
// limit.
func (l Limits) MemoryReason() string {
	return "memory limit " + FormatSize(l.WithDefaults().Memory) + " reached"
}

// PidsReason is ExitStatus.Reason for a session ended at its process
// limit.
func (l Limits) PidsReason() string {
	return "process limit " + strconv.Itoa(l.WithDefaults().Pids) + " reached"
}

// HostMemoryReason is ExitStatus.Reason for a container whose processes
// the kernel killed when memory ran out above it, below its own limit:
// the server's cgroup at its limit (a pod's, a unit's MemoryMax=) or the
// machine out of memory. Its ExitStatus.Limit is "host_memory".
const HostMemoryReason = "the host's memory ran out"

// limitOf is ExitStatus.Limit for an ExitStatus.Reason of these limits.
func (l Limits) limitOf(reason string) string {
	switch reason {
	case "":
		return ""
	case l.MemoryReason():
		return "memory"
	case l.PidsReason():
		return "pids"
	case HostMemoryReason:
		return "host_memory"
	}
	return ""
}

// Rlimit is one resource limit init sets on itself, and so on every
// process of the session, before the program starts. Name is the
// lower-case name of RLIMIT_*: "nproc", "nofile".
type Rlimit = initproc.Rlimit

// ContainerOOMScoreAdj is the oom_score_adj of every process of a
// container (see initproc.OOMScoreAdj): the first the kernel kills when
// memory runs out above the containers.
const ContainerOOMScoreAdj = initproc.OOMScoreAdj

// SessionPolicy is the CPU scheduling policy of the sessions that get
// SessionNice: SCHED_BATCH (see initproc.SessionPolicy for why and what
// it measured).
const SessionPolicy = initproc.SessionPolicy

// DiskLayout is the session's disk, one tmpfs: see initproc.DiskLayout.
var DiskLayout = initproc.DiskLayout

// SessionNice is the nice value of every process of a session whose CPU
// no cgroup shares (LimitsMode without cpu): the server, at 0, then gets
// about ten times the CPU of any one session process (weights 1024 to
// 110), so it keeps pumping a typing session's echo while neighbours
// flood. RLIMIT_NICE pins it: no session process can raise its priority
// back.
const SessionNice = 10

// Stats is what a running session uses now.
type Stats struct {
	// Processes is the number of processes of the session (its network
	// helper included when it has one).
	Processes int
	// MemoryBytes is the session's memory: with a cgroup, all its memory
	// (files in its tmpfs included); without one, the sum of its
	// processes' resident sets (shared pages counted once per process).
	MemoryBytes int64
}

// DiskInodes is the inode limit (nr_inodes) of the session's tmpfs: one
// per 16 KiB of Disk, at least 4096. An inode costs the kernel about 1 KiB,
// so a million empty files cannot stand in for the bytes Disk allows.
func (l Limits) DiskInodes() int64 {
	n := l.WithDefaults().Disk / (16 << 10)
	if n < 4096 {
		n = 4096
	}
	return n
}

// ParseSize parses a size as the flags take it: a number of bytes with an
// optional unit K, M, G or T (powers of 1024; "KiB", "MB", "m" are the
// same), as in --memory 512M. "none" or "-1" is NoLimit.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "none" || t == "-1" {
		return NoLimit, nil
	}
	num := strings.TrimRight(t, "KMGTkmgtiIbB")
	unit := strings.ToUpper(strings.TrimSpace(t[len(num):]))
	num = strings.TrimSpace(num)
	shift := 0
	switch strings.TrimSuffix(strings.TrimSuffix(unit, "B"), "I") {
	case "":
		if unit != "" && unit != "B" {
			return 0, fmt.Errorf("size %q: unknown unit %q (use K, M, G or T)", s, t[len(num):])
		}
	case "K":
		shift = 10
	case "M":
		shift = 20
	case "G":
		shift = 30
	case "T":
		shift = 40
	default:
		return 0, fmt.Errorf("size %q: unknown unit %q (use K, M, G or T)", s, t[len(num):])
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("size %q: not a number of bytes with an optional unit K, M, G or T", s)
	}
	if f < 0 {
		return 0, fmt.Errorf("size %q: negative", s)
	}
	v := f * float64(int64(1)<<shift)
	if v >= math.MaxInt64 {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	return int64(v), nil
}

// FormatSize is n in the largest binary unit that keeps it readable:
// "512 MiB", "1.5 GiB", "100 bytes".
func FormatSize(n int64) string {
	units := []string{"KiB", "MiB", "GiB", "TiB"}
	if n < 1024 && n > -1024 {
		return strconv.FormatInt(n, 10) + " bytes"
	}
	v, u := float64(n), ""
	for _, u = range units {
		v /= 1024
		if math.Abs(v) < 1024 {
			break
		}
	}
	return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64) + " " + u
}
