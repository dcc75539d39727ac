// Package initproc is a container's init: the process the runtime starts in
// a container's new namespaces, which builds the container's root, takes
// away what the program must not have, starts the program and reaps.
// The runtime package is the parent's side: it starts init (the server's
// own binary, re-executed under the name Arg0), and talks to it over the
// sync socket in the messages of this package (Config, Message).
//
// Init is entered from this package's initialisation, not from main. Go
// initialises a program's packages one at a time, the first ready one by
// import path, and every package of the server's binary that is
// initialised before init is entered is work every container start pays
// for (page faults, most of it: 15 µs each on this project's test VM).
// The runtime package comes 116th of the server's 143 packages with work
// to do, after net, the metrics library's protobuf types and the image
// library's; this one, importing little, 74th. So this package imports
// only what is initialised early: not path/filepath, runtime/debug,
// os/exec (so not creack/pty, whose Start uses it), net or net/netip, each
// of which puts it 20 to 40 packages later (cmd/playground's
// TestInitEnteredEarly).
// Measured with `perf stat` of the server's binary made to exit at each
// point on that VM: 14 ms of CPU and 350 page faults a start where the
// runtime package's point cost 20 ms and 420.
package initproc

import "errors"

// Arg0 is init's argv[0]: a process of this name is a container's init.
const Arg0 = "playground-init"

// BuildStamp names the sources this binary was built from, set at link
// time (-X) by deploy/build.sh, which builds the server and the small
// init binary it embeds (runtime/cmd/playground-init) with the same stamp.
// A server built so executes the embedded init once at start and refuses
// one whose stamp is not its own: an init from other sources would set up
// containers with other code. Empty in an ordinary build, which embeds no
// init.
var BuildStamp string

// HostRootfs is the Config.Rootfs (and runtime.Spec.Rootfs) value that
// builds the root from the host's /usr, /bin, /lib, /lib64 and /sbin,
// read-only, with a synthesised /etc.
const HostRootfs = "host"

// A program that cannot be started is a setup error that Is one of these.
var (
	ErrProgramNotFound      = errors.New("program not found")
	ErrProgramNotExecutable = errors.New("program not executable")
)

// Sysctl is one sysctl of the container's own namespaces that init sets:
// its path below /proc/sys and its value.
type Sysctl struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Rlimit is one resource limit init sets on itself, and so on every
// process of the session, before the program starts. Name is the
// lower-case name of RLIMIT_*: "nproc", "nofile".
type Rlimit struct {
	Name string `json:"name"`
	Cur  uint64 `json:"cur"`
	Max  uint64 `json:"max"`
}

// SessionPolicy is the CPU scheduling policy of the same sessions, beside
// SessionNice: SCHED_BATCH (3), whose wake-ups do not preempt the process
// running, so a flooding session's writer, woken each time the server
// drains its terminal, cuts less into the server's turn or a typing
// session's. Measured with `go run ./cmd/playground-load --targets
// self,rlimits --measure echo`, builds with and without it in turn
// (2026-12-02, the 2-vCPU VM of BENCHMARKS.md): without cgroups, the echo
// p99 of a session typing while 8 others flood was lower with it in 7 of
// 8 runs (median 2.2 ms against 2.8). Where a cpu cgroup shares the CPU
// it is not set: there it was lower in 7 of 9 runs at 09:42 and in 2 of 8
// at 11:37, no steady gain. It is a hint, not a limit: a program may set
// SCHED_OTHER back, which takes no privilege and costs its neighbours
// only that much latency.
const SessionPolicy = 3

// OOMScoreAdj is the oom_score_adj of every process of a container: the
// most there is. When memory runs out above the containers (the machine's,
// or the server's cgroup's at its limit), the kernel then kills a
// container's process before any of the host's or the server's, and of
// the containers' the largest (a container with a cgroup of its own is
// killed whole there: its memory.oom.group on v2; the runtime's watcher
// ends it on v1). Init sets it on itself before the program starts; a
// runtime holding the host's CAP_SYS_RESOURCE (root) sets it from outside
// first, which makes it the floor, so no process of the container can
// lower it. An ordinary user's containers may lower theirs back to the
// server's own, as any process may: there it is a hint, as SessionPolicy
// is.
const OOMScoreAdj = 1000

// StartTimerSlack is the timer slack, in nanoseconds, that every init the
// spawner forks starts with (a thread's slack is its parent's, kept
// across execve): 10 ms, the longest sleep of Go's sysmon. Sysmon, the
// runtime's monitor thread, sleeps 20 µs at a time while a P is busy or
// waits in a system call, and init's start, Go's own on a loaded
// machine, kept it at that: in a burst of 300 starts with no warm
// container (2026-12-04, the 2-vCPU VM of BENCHMARKS.md) 216 of its
// sleeps per init, 65,000 of the burst's 200,000 context switches, each
// about 12 µs of CPU here; with this slack, 1,100. Init's start never
// waits on sysmon, and its later work (retaking the one P from a
// blocking system call) comes that much later, once. Nor does init's
// scheduler sleep to steal work, which a coarse slack would stretch: it
// has one P (GOMAXPROCS=1, the runtime's initEnv). The program gets the
// server's slack back (Config.TimerSlack): what a session runs never
// sleeps coarser.
const StartTimerSlack = 10_000_000

// DiskLayout is how Limits.Disk holds the writable layer, /tmp and /dev/shm
// together: one tmpfs of Disk bytes and DiskInodes inodes, mounted by init
// on the container's mount point, holding
//
//	upper/ work/   the overlay's writable layer
//	lower/         the id-mapped rootfs (root mode)
//	root/          the overlay, the new root
//	tmp/           bound onto /tmp     (mode 1777)
//	shm/           bound onto /dev/shm (mode 1777)
//	dev/           bound onto /dev, which holds the device binds
//	mask/          empty, bound read-only onto each masked directory
//
// Separate tmpfs mounts with a size each would let a session use the sum;
// binds of one tmpfs share its one size and inode count. And each file
// system costs every memory cgroup on the host: each file system holds a
// shrinker id, and a memory cgroup is made with a slot for every id up to
// the highest the host has used since boot (Linux 6.7 and later: a 1 KiB
// slab object for each 64; 8 bytes each before). On this project's test
// VM, after runs of 1,000 sessions, an empty memory cgroup took 254 KiB,
// nearly all of it these slots; the cost grows with sessions times file
// systems per session. So /dev and the masked directories, each a tmpfs
// of its own before, are binds of this one (TestOneFileSystemForTheSession).
// See mountSessionDisk and AttachSessionDir.
var DiskLayout = []string{"upper", "work", "lower", "root", "tmp", "shm", "dev", "mask"}
