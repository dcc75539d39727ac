package runtime

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/guntainer/playground/runtime/internal/initproc"
	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// RlimitsFor is what init sets for l. Always: no core dumps (they would
// land in the session's small disk, or worse, be piped to the host's
// core_pattern helper), NOFILE, FSIZE at Disk (no single file larger than
// the whole disk), no real-time priority, no raising of the nice value,
// and SIGPENDING and MSGQUEUE at a session's share (sessionSigPending). Without a cgroup that bounds the session's memory and processes
// (cgroup false) also NPROC at Pids and DATA at Memory: per process, so a
// session of N processes may hold N times as much; DATA rather than AS,
// since AS counts reservations that are never touched and breaks Go, Java
// and V8 programs at a few hundred MiB. With the cgroup, NPROC is left to
// pids.max, so that a fork bomb meets the cgroup's limit, which says so
// (pids.events), rather than the rlimit, which says nothing.
//
// NPROC counts the processes of one uid inside the session's user
// namespace, and also (Linux 5.14 on, ucounts) charges every one of them
// to the uid that created the namespace, the server's, whatever the id map
// is (kernel/ucount.c, inc_rlimit_ucounts: processes running as host uid
// 100000 in a namespace made by uid 1001 stop uid 1001's own forks at its
// limit; TestNprocChargedToTheServer). So with N sessions the server's own
// RLIMIT_NPROC must exceed N × Pids plus its own threads, or a fork bomb
// stops the server from starting containers: see CheckNproc.
func RlimitsFor(l Limits, cgroup bool) []Rlimit {
	l = l.WithDefaults()
	rl := []Rlimit{
		{Name: "core", Cur: 0, Max: 0},
		{Name: "nofile", Cur: uint64(l.NoFile), Max: uint64(l.NoFile)},
		{Name: "fsize", Cur: uint64(l.Disk), Max: uint64(l.Disk)},
		{Name: "rtprio", Cur: 0, Max: 0},
		// RLIMIT_NICE n allows lowering one's nice value down to 20-n:
		// 0 allows no lowering at all (a session at SessionNice stays
		// there), and is what most hosts give anyway.
		{Name: "nice", Cur: 0, Max: 0},
		// Counted per user id of the session, and charged to its user
		// namespace's owner too: see sessionSigPending. Not set by the
		// flags; below the server's own hard limit, that is what init gets.
		{Name: "sigpending", Cur: sessionSigPending, Max: sessionSigPending},
		{Name: "msgqueue", Cur: sessionMsgQueue, Max: sessionMsgQueue},
	}
	if !cgroup && l.Pids > 0 {
		rl = append(rl, Rlimit{Name: "nproc", Cur: uint64(l.Pids), Max: uint64(l.Pids)})
	}
	if !cgroup && l.Memory > 0 {
		data := uint64(l.Memory) + raceDataOverhead
		rl = append(rl, Rlimit{Name: "data", Cur: data, Max: data})
	}
	return rl
}

// CheckRlimits fails, at server start, for limits that the container's
// init could not set because they exceed the server's own hard limits.
func CheckRlimits(l Limits) error {
	var errs []error
	for _, r := range RlimitsFor(l, false) {
		if r.Name == "sigpending" || r.Name == "msgqueue" {
			continue // no flag sets them: init takes the server's hard limit if lower
		}
		var cur unix.Rlimit
		if err := unix.Getrlimit(initproc.RlimitResources[r.Name], &cur); err != nil {
			return err
		}
		if r.Max > cur.Max {
			errs = append(errs, fmt.Errorf("rlimit %s %d is above the server's own hard limit %d (raise it: ulimit, or LimitNOFILE= in the systemd unit)", r.Name, r.Max, cur.Max))
		}
	}
	return errors.Join(errs...)
}

// CheckNproc says whether sessions sessions of Limits l can all reach
// their process limit while the server still forks: it returns an error
// naming the numbers when they cannot. As root it always passes
// (RLIMIT_NPROC does not bind root); a pids cgroup does not lift it for
// an ordinary user, whose containers' processes all count against its
// RLIMIT_NPROC. It raises the server's soft limit to the hard one first.
func CheckNproc(sessions int, l Limits) error {
	if os.Geteuid() == 0 && initialUserNS() {
		return nil
	}
	l = l.WithDefaults()
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NPROC, &r); err != nil {
		return err
	}
	if r.Cur < r.Max {
		r.Cur = r.Max
		_ = unix.Setrlimit(unix.RLIMIT_NPROC, &r) // best effort: the check below says what holds
	}
	const headroom = 256 // the server's own threads and helpers
	need := uint64(sessions)*uint64(max(l.Pids, 0)) + headroom
	if l.Pids > 0 && r.Cur != unix.RLIM_INFINITY && need > r.Cur {
		return fmt.Errorf("%d sessions of up to %d processes need RLIMIT_NPROC of at least %d for uid %d, which has %d: a fork bomb in full sessions could stop the server from starting containers (raise it: ulimit -u, LimitNPROC= in the systemd unit; or lower --pids or --max-sessions)",
			sessions, l.Pids, need, os.Getuid(), r.Cur)
	}
	return nil
}

// LimitsModeLine is the one line the server logs at start about how it
// enforces limits, saying what is not enforced: "limits: cgroup v1
// (memory, pids, cpu)", or "limits: rlimits only: memory and process
// counts are per process, CPU is not shared fairly (no cgroup: ...)".
func LimitsModeLine(cg *Cgroups, why error) string {
	if cg != nil {
		line := fmt.Sprintf("limits: cgroup v%d (%s)", cg.Version(), strings.Join(cg.Controllers(), ", "))
		if !cg.has("cpu") {
			line += "; no cpu controller: CPU is shared by nice level, not fairly per session, and --cpus is not enforced"
		}
		return line
	}
	line := "limits: rlimits only: memory and process counts are per process, CPU is not shared fairly, and --cpus is not enforced"
	if why != nil {
		reason := strings.TrimPrefix(why.Error(), ErrNoCgroup.Error()+": ")
		line += " (" + strings.ReplaceAll(reason, "\n", "; ") + ")"
	}
	return line
}

// ProcStats is Stats without a cgroup: it counts pid (a host pid, the
// container's init) and its descendants, and adds up their resident sets,
// walking /proc. Every process of a container's pid namespace descends
// from its init (orphans are reparented to it), and /proc/PID/stat and
// statm are readable whoever runs the process, subordinate ids included.
// It costs a read of every process on the host: for the admin API, not
// for a hot path.
func ProcStats(pid int) (Stats, error) {
	children := map[int][]int{}
	err := eachProcess(func(st procfs.ProcStat) {
		children[st.PPID] = append(children[st.PPID], st.PID)
	})
	if err != nil {
		return Stats{}, err
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err != nil {
		return Stats{}, err
	}
	page := int64(os.Getpagesize())
	var st Stats
	// Parent links are read one process at a time while processes come
	// and go: a reused pid can make a loop, so each is counted once.
	seen := map[int]bool{}
	for todo := []int{pid}; len(todo) > 0; {
		p := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if seen[p] {
			continue
		}
		seen[p] = true
		todo = append(todo, children[p]...)
		st.Processes++
		b, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/statm")
		if f := strings.Fields(string(b)); err == nil && len(f) > 1 {
			rss, _ := strconv.ParseInt(f[1], 10, 64)
			st.MemoryBytes += rss * page
		}
	}
	return st, nil
}

// eachProcess calls fn with the /proc/PID/stat of each process on the
// host. A process gone meanwhile is passed over.
func eachProcess(fn func(procfs.ProcStat)) error {
	ps, err := procfs.AllProcs()
	if err != nil {
		return err
	}
	for _, p := range ps {
		if st, err := p.Stat(); err == nil {
			fn(st)
		}
	}
	return nil
}

// procStat reads the /proc/PID/stat of process pid.
func procStat(pid int) (procfs.ProcStat, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return procfs.ProcStat{}, err
	}
	return p.Stat()
}

// residentMinMemory is the smallest memory limit without a cgroup where
// init stays resident (no Spec.ProgramIsInit): RLIMIT_DATA binds init too,
// which holds about 160 MiB of address space, and must leave it room for
// more (a thread's stack is 8 MiB where the binary uses cgo).
const residentMinMemory = 256 << 20

// checkResidentMemory refuses a memory limit that a resident init could
// not live under (residentMinMemory).
func checkResidentMemory(l Limits, cgroup, programIsInit bool) error {
	if cgroup || programIsInit || l.Memory <= 0 || l.Memory == NoLimit || l.Memory >= residentMinMemory {
		return nil
	}
	return fmt.Errorf("limits: memory %s: without a cgroup, below the minimum of %s for a container whose init stays, as run's does (RLIMIT_DATA binds the init too, a Go program of about 160 MiB of address space); a server's sessions, whose shell runs in init's place, may have down to %s",
		FormatSize(l.Memory), FormatSize(residentMinMemory), FormatSize(minMemory))
}

// SharedPoolNotes says which of the kernel's counts that all sessions
// draw from together, beyond any one session's limit, sessions sessions at
// their limits could exhaust here: the machine's ptys (kernel.pty.max less
// kernel.pty.reserve, shared by every container; Limits.Ptys each), the
// counts the kernel keeps per user and charges to the owner of a
// session's user namespace (inotify instances, queued signals, message
// queue bytes: see spawnOwner) where that is the server's uid and,
// where no cgroup caps the sessions together (sessionsPidsMax), the
// machine's pids (kernel.pid_max; Limits.Pids each). Once one is gone no
// new session gets its terminal, no session an inotify instance, or the
// host a process. Each note says what to raise.
func (h *Host) SharedPoolNotes(sessions int, l Limits) []string {
	capped := h.cgroups != nil && h.cgroups.has("pids")
	owner := ownerSingleID
	switch {
	case h.pool != nil:
		owner = ownerSession
	case h.subIDs != nil && !h.opts.NoSpawner && spawnerHasNS():
		owner = ownerSpawnerNS
	case h.subIDs != nil:
		owner = ownerServerSubIDs
	}
	notes := sharedPoolNotes(sessions, l, owner, capped, hostLimit)
	if p := spawnerNSErr.Load(); owner == ownerServerSubIDs && p != nil {
		notes = append(notes, fmt.Sprintf("spawner: no user namespace of its own: %v", *p))
	}
	if owner == ownerSingleID {
		notes = append(notes, singleIDNote)
	}
	return notes
}

// hostLimit reads a sysctl by its name ("kernel.pty.max"), or, for
// "ulimit -i" and "ulimit -q", the server's soft RLIMIT_SIGPENDING and
// RLIMIT_MSGQUEUE, which the spawner and so the sessions' namespaces
// inherit: -1 when unknown or unlimited.
func hostLimit(name string) int {
	res, ok := map[string]int{"ulimit -i": unix.RLIMIT_SIGPENDING, "ulimit -q": unix.RLIMIT_MSGQUEUE}[name]
	if !ok {
		return sysctlInt(name)
	}
	var r unix.Rlimit
	if err := unix.Getrlimit(res, &r); err != nil || r.Cur == unix.RLIM_INFINITY || r.Cur > math.MaxInt32 {
		return -1
	}
	return int(r.Cur)
}

// spawnerHasNS says whether the spawner runs in a user namespace of its
// own (spawnerNS), starting it if it has not started: the first session
// would.
func spawnerHasNS() bool {
	s, err := theSpawner()
	return err == nil && s.ns != nil
}

// nsOwner is who owns the sessions' user namespaces, to whom the kernel
// charges their counts per user (spawnOwner, spawnerNS).
type nsOwner int

const (
	// ownerSession: each session's own host uid (a server as root).
	ownerSession nsOwner = iota
	// ownerSpawnerNS: each session's own id of the spawner's namespace
	// (spawnerNS), whose owner, the server's uid, is charged all of them
	// together.
	ownerSpawnerNS
	// ownerServerSubIDs: the server's uid, and each session has 65536
	// user ids of its own (subordinate ids), each counted apart below it:
	// the spawner could not start in a namespace of its own.
	ownerServerSubIDs
	// ownerSingleID: the server's uid, and each session has one user id.
	ownerSingleID
)

// subIDsOwnerNote: with subordinate ids as an ordinary user and a spawner
// without a namespace of its own, a session that switches among its user
// ids has a per-user limit for each, and the server's uid, the
// namespaces' owner, is charged them all (TestSharedCountsPerSession).
const subIDsOwnerNote = "subordinate ids: the spawner could not start in a user namespace of its own (below), so every session's user namespace is the server's uid's, and the kernel charges that uid what each user id of every session holds of its counts per user; a session that switches among its user ids (su, setpriv) can take all the server's uid has of inotify instances (fs.inotify.max_user_instances), queued signals (ulimit -i), message queue bytes (ulimit -q) and, without a pids cgroup, processes, and then no other session gets one (and with processes, the server no thread)"

// singleIDNote: the kernel keeps some counts per host uid, whatever the
// user namespace (epoll watches, pipe buffers, POSIX message queue bytes),
// and with the single-id map every session's processes are the server's
// own uid.
const singleIDNote = "single-id map: every session's processes run as the server's own uid, so the kernel's counts per uid (epoll watches, fs.epoll.max_user_watches; pipe buffers, fs.pipe-user-pages-soft; message queue bytes) are the server's and every session's together, and one session can use up the server's; subordinate ids (/etc/subuid and /etc/subgid, with newuidmap) give each session a uid of its own"

// sharedPoolNotes is SharedPoolNotes with the sysctls read by sysctl (-1:
// unknown).
func sharedPoolNotes(sessions int, l Limits, owner nsOwner, pidsCapped bool, sysctl func(string) int) []string {
	l = l.WithDefaults()
	var notes []string
	if ptyMax, reserve := sysctl("kernel.pty.max"), sysctl("kernel.pty.reserve"); l.Ptys > 0 && ptyMax >= 0 && reserve >= 0 && sessions*l.Ptys > ptyMax-reserve {
		want := sessions*l.Ptys + reserve
		notes = append(notes, fmt.Sprintf("ptys: %d sessions with --ptys %d each could hold more than the %d ptys the kernel has for every container on this machine (kernel.pty.max %d less kernel.pty.reserve %d), and then no new session gets its terminal; raise it (sysctl kernel.pty.max=%d) or lower --ptys",
			sessions, l.Ptys, ptyMax-reserve, ptyMax, reserve, want))
	}
	if n := sysctl("kernel.pid_max"); !pidsCapped && l.Pids > 0 && n > 0 && sessions*l.Pids > n-hostPids(n) {
		notes = append(notes, fmt.Sprintf("pids: %d sessions with --pids %d each could take every pid of the machine (kernel.pid_max %d) but what the host keeps, with no cgroup to cap them together; raise it (sysctl kernel.pid_max=%d) or lower --pids",
			sessions, l.Pids, n, sessions*l.Pids+hostPids(n)))
	}
	// Open files: each process of a session may hold NoFile, and the
	// kernel counts every open file of the machine against fs.file-max
	// (struct files are small: 100,000 of them took a session's memory
	// cgroup a few tens of MB here). Beyond it every process without
	// CAP_SYS_ADMIN, an ordinary user's server included, gets ENFILE.
	// systemd sets it to the most there is (then no note).
	if n := sysctl("fs.file-max"); l.Pids > 0 && n > 0 && int64(sessions)*int64(l.Pids)*int64(l.NoFile) > int64(n) {
		notes = append(notes, fmt.Sprintf("files: %d sessions of %d processes with %d open files each could open more than the %d files the kernel allows the whole machine (fs.file-max), and then no process without CAP_SYS_ADMIN opens one (ENFILE), the server's accepts included; raise it (sysctl fs.file-max=%d, which systemd sets by default)",
			sessions, l.Pids, l.NoFile, n, int64(math.MaxInt64)))
	}
	// Queued signals and message queue bytes: where the server's uid owns
	// the sessions' namespaces (or their spawner's), each session's share
	// adds up to it, below the server's own limit, which the kernel
	// applies to them all together.
	if owner == ownerSingleID || owner == ownerSpawnerNS {
		for _, c := range []struct {
			limit, what, unit, raise string
			each                     int
		}{
			{"ulimit -i", "queued signals", "", "LimitSIGPENDING=", sessionSigPending},
			{"ulimit -q", "message queue bytes", " bytes", "LimitMSGQUEUE=", sessionMsgQueue},
		} {
			if n := sysctl(c.limit); n >= 0 && sessions*c.each > n {
				notes = append(notes, fmt.Sprintf("%s: each session may hold %d%s, and the kernel counts them all against the server's uid too, whose %s allows %d: %d sessions at their limit take them all; for %d sessions raise it to %d (%s in the systemd unit)",
					c.what, c.each, c.unit, c.limit, n, (n+c.each-1)/c.each, sessions, sessions*c.each, c.raise))
			}
		}
	}
	switch n := sysctl("fs.inotify.max_user_instances"); {
	case owner == ownerServerSubIDs:
		notes = append(notes, subIDsOwnerNote)
	case (owner == ownerSingleID || owner == ownerSpawnerNS) && n >= 0 && sessions*sessionInotifyInstances > n:
		want := sessions*sessionInotifyInstances + n
		notes = append(notes, fmt.Sprintf("inotify: each session may hold %d inotify instances, and the kernel counts every one against the server's uid too, which fs.inotify.max_user_instances allows %d: %d sessions at their limit take them all; for %d sessions raise it (sysctl fs.inotify.max_user_instances=%d)",
			sessionInotifyInstances, n, (n+sessionInotifyInstances-1)/sessionInotifyInstances, sessions, want))
	}
	return notes
}
