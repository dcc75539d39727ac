package runtime

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/guntainer/playground/runtime/internal/initproc"
	"golang.org/x/sys/unix"
)

// Cgroups for sessions, written as plain cgroupfs files.
//
// Not github.com/opencontainers/cgroups: its root package pulls in
// godbus/dbus, coreos/go-systemd and logrus (the Cgroup type carries systemd
// properties) into a binary that has none of them, logs through logrus,
// and has no call for what sessions need most: cgroup.kill, pids.events,
// a directory fd for CLONE_INTO_CGROUP, moving the server out of its own
// cgroup for v2 delegation, and the two-level layout below. What it would
// do for us is write a dozen files, which is what this file does.
//
// The layout, measured to keep typing crisp while neighbours flood (issue
// 7): one parent cgroup for all sessions, each session in its own child of
// equal weight, and the server outside, the parent at twice the server's
// weight (sessionsCPUShares):
//
//	OWN/                      the server's own cgroup (/proc/self/cgroup)
//	  playground-PID/         all sessions of the server with pid PID:
//	                          together at most an eighth short of the
//	                          machine's pids and memory (sessionsPidsMax,
//	                          sessionsMemoryMax)
//	    ID/                   one session: memory, pids, cpu limits
//	  playground-PID-server/  v2 only: the server itself, when it had to
//	                          leave OWN to let OWN delegate controllers
//
// Nothing is ever created outside OWN. A server that starts removes the
// playground-PID cgroups of servers no longer running, killing what is
// still in them.

const cgroupPrefix = "playground-"

// The weight of the sessions' parent, twice a process's default (v1
// cpu.shares 1024, v2 cpu.weight 100) and so twice the server's. The
// typing session's program competes for the CPU in two places: inside the
// parent, where it has slept while the flooders ran and is served first,
// and at the top, where the parent is one entity that the floods keep
// busy and that gets no such credit, so a keystroke waits for the parent's
// next turn there. Its weight sets how often that turn comes. Measured
// here (playground-load, echo p99 under 8 floods, the median of 3 rounds,
// three runs alternated, 2026-12-04): at equal weight 2.82, 3.21 and 1.63
// ms; at twice 0.83, 1.00 and 1.00; at 8 times 1.49, 1.25 and 2.11 (the
// server then waits); at a quarter 5.3 to 6.0. Bursts and a lone
// session's throughput did not move.
const (
	sessionsCPUShares = "2048" // v1
	sessionsCPUWeight = "200"  // v2
)

// sessionsPidsMax is the pids.max of the sessions' parent: all sessions
// together, whatever each one's --pids, leave an eighth of the machine's
// pids (kernel.pid_max, at least 1024 of them) to the host and the server.
// Every session at its own limit could otherwise take them all (128
// sessions of 256 are 32768, the whole of a small machine's pid_max), and
// the host could then fork nothing. A fork refused there fails as one
// refused by the session's own limit does, with EAGAIN. "" where pid_max
// cannot be read: no cap.
func sessionsPidsMax() string {
	n := sysctlInt("kernel.pid_max")
	if n <= 0 {
		return ""
	}
	return strconv.Itoa(max(n-hostPids(n), 1))
}

// sessionsMemoryMax is the memory limit of the sessions' parent: all
// sessions together, whatever each one's --memory, leave an eighth of the
// machine's memory (at least 512 MiB) to the host and the server, as their
// pids.max leaves pids. Every session at its own limit could otherwise
// take it all (the default --max-sessions at 512 MiB each is up to four
// times the machine's memory): the host's page cache and services would be
// pressed out before the kernel chose what to kill. When the sessions
// together reach it, the kernel kills in one of them, the largest, which
// ends with HostMemoryReason, and the host goes on as before. In whole
// MiB; "" where the machine's memory cannot be read or leaves none.
func sessionsMemoryMax() string {
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) != nil {
		return ""
	}
	total := int64(si.Totalram) * int64(si.Unit)
	n := (total - max(total/8, 512<<20)) &^ (1<<20 - 1)
	if n <= 0 {
		return ""
	}
	return strconv.FormatInt(n, 10)
}

// hostPids is what of pidMax pids the sessions together leave to the host
// and the server: an eighth, at least 1024.
func hostPids(pidMax int) int { return max(pidMax/8, 1024) }

// sysctlInt is the sysctl name's integer value ("kernel.pid_max"), -1
// where it cannot be read.
func sysctlInt(name string) int {
	n, err := strconv.Atoi(readString("/proc/sys/" + strings.ReplaceAll(name, ".", "/")))
	if err != nil {
		return -1
	}
	return n
}

// cgroupV1Controllers are the v1 hierarchies used, when mounted: memory
// and pids are required, cpu and freezer are used when there.
var cgroupV1Controllers = []string{"memory", "pids", "cpu", "freezer"}

// Cgroups is the parent cgroup of all sessions of this server. Its methods
// are safe for concurrent use. Close removes it.
type Cgroups struct {
	version int
	// v2: the parent's directory; v1: per controller.
	dir  string
	dirs map[string]string
	// ctrls are the controllers limits are set with: memory, pids, cpu.
	ctrls     []string
	serverDir string // v2: the leaf the server moved itself into, or ""
	watch     *cgroupWatcher
	pidNS     bool // sessions are pid namespaces: no v1 freezer cgroup for them
}

// CgroupOptions tune NewCgroups; the zero value is what a server wants.
type CgroupOptions struct {
	// Version forces cgroup v1 or v2; 0 picks v2 when it has the
	// controllers, else v1.
	Version int
	// Name of the parent cgroup; "playground-PID" when empty. Tests use
	// their own.
	Name string
	// NoControllers accepts a hierarchy without memory and pids (a v2
	// mount without controllers): only tests, to exercise what works
	// without them (entering, killing, removing).
	NoControllers bool
	// PidNamespaces says every session is a pid namespace whose init's
	// end ends all its processes (a container): on v1 its cgroup then
	// needs no freezer hierarchy to be killed whole, and a start makes,
	// enters and removes one cgroup fewer.
	PidNamespaces bool
}

// ErrNoCgroup wraps why sessions cannot have cgroups here; the server then
// uses rlimits (RlimitsFor) and says so at start.
var ErrNoCgroup = errors.New("no cgroup for sessions")

// NewCgroups makes the parent cgroup of the sessions below the server's
// own cgroup, after removing what crashed predecessors left there. It
// returns an error wrapping ErrNoCgroup, with the reason, where this
// process does not own a cgroup it can use (an ordinary user without a
// delegated v2 subtree).
func NewCgroups(opts CgroupOptions) (*Cgroups, error) {
	own, err := parseProcCgroup("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoCgroup, err)
	}
	mounts, err := cgroupMounts("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoCgroup, err)
	}
	name := opts.Name
	if name == "" {
		name = cgroupPrefix + strconv.Itoa(os.Getpid())
	}
	var errs []error
	for _, v := range []int{2, 1} {
		if opts.Version != 0 && opts.Version != v {
			continue
		}
		var cg *Cgroups
		if v == 2 {
			cg, err = openCgroupsV2(own, mounts, name, opts.NoControllers)
		} else {
			cg, err = openCgroupsV1(own, mounts, name)
		}
		if err == nil {
			cg.pidNS = opts.PidNamespaces
			cg.watch, err = newCgroupWatcher(cg.dirs["memory"]) // v1's; "" on v2
			if err != nil {
				_ = cg.removeParent() // just made, empty
				return nil, err
			}
			return cg, nil
		}
		errs = append(errs, fmt.Errorf("cgroup v%d: %w", v, err))
	}
	return nil, fmt.Errorf("%w: %w", ErrNoCgroup, errors.Join(errs...))
}

// Version is 1 or 2.
func (m *Cgroups) Version() int { return m.version }

// Controllers are the controllers that limit sessions: memory, pids and,
// where available, cpu.
func (m *Cgroups) Controllers() []string { return slices.Clone(m.ctrls) }

// Dir is the sessions' parent cgroup directory (v1: of the memory
// hierarchy).
func (m *Cgroups) Dir() string {
	if m.version == 2 {
		return m.dir
	}
	return m.dirs["memory"]
}

// Close removes the parent cgroup, killing any session still in it, and
// moves the server back where it was (v2). It is idempotent.
func (m *Cgroups) Close() error {
	if m.watch != nil {
		m.watch.close()
	}
	err := removeCgroupTree(m.version, m.parentDirs())
	if m.serverDir != "" {
		// Back to the cgroup we came from, so it can be removed.
		_ = moveServer(filepath.Dir(m.serverDir))
		if rmdirCgroup(m.serverDir) == nil {
			m.serverDir = ""
		}
	}
	return err
}

func (m *Cgroups) parentDirs() []string {
	if m.version == 2 {
		return []string{m.dir}
	}
	var ds []string
	for _, c := range cgroupV1Controllers {
		if d, ok := m.dirs[c]; ok {
			ds = append(ds, d)
		}
	}
	return ds
}

func (m *Cgroups) removeParent() error {
	var errs []error
	for _, d := range m.parentDirs() {
		errs = append(errs, rmdirCgroup(d))
	}
	return errors.Join(errs...)
}

// Cgroup is one session's cgroup. Its methods are safe for concurrent use;
// Remove ends it.
type Cgroup struct {
	m      *Cgroups
	id     string
	limits Limits
	dir    string            // v2
	dirs   map[string]string // v1: per controller

	mu      sync.Mutex
	removed bool
	reason  string // the first limit hit, as ExitStatus.Reason says it
}

// Compiled on first use, not at package initialisation, which every
// container's init goes through (early_linux.go).
var cgroupIDPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`) })

// New makes the cgroup of session id with limits l. onLimit, when not
// nil, is called once, from the watcher's goroutine, when the session hits
// its memory limit (an OOM kill) or its process limit (a fork refused),
// with the reason ("memory limit 512 MiB reached"); the caller ends the
// session (Kill) and reports the reason. It must not block.
func (m *Cgroups) New(id string, l Limits, onLimit func(reason string)) (*Cgroup, error) {
	if !cgroupIDPattern().MatchString(id) || strings.HasPrefix(id, ".") {
		return nil, fmt.Errorf("cgroup: bad session id %q", id)
	}
	l = l.WithDefaults()
	c := &Cgroup{m: m, id: id, limits: l}
	var err error
	if m.version == 2 {
		c.dir = filepath.Join(m.dir, id)
		err = c.createV2()
	} else {
		c.dirs = map[string]string{}
		err = c.createV1()
	}
	if err != nil {
		_ = c.rmdirs() // whatever was made, empty
		return nil, fmt.Errorf("cgroup for session %s: %w", id, err)
	}
	if err := m.watch.add(c, onLimit); err != nil {
		_ = c.rmdirs()
		return nil, fmt.Errorf("cgroup for session %s: %w", id, err)
	}
	return c, nil
}

func (c *Cgroup) createV2() error {
	if err := os.Mkdir(c.dir, 0o755); err != nil {
		return err
	}
	l, set := c.limits, c.m.has
	var files [][2]string
	if set("memory") {
		files = append(files, [2]string{"memory.max", maxOr(l.Memory)}, [2]string{"memory.swap.max", "0"}, [2]string{"memory.oom.group", "1"})
	}
	if set("pids") {
		files = append(files, [2]string{"pids.max", maxOr(int64(l.Pids))})
	}
	if set("cpu") {
		files = append(files, [2]string{"cpu.weight", "100"}, [2]string{"cpu.max", cpuMax(l.CPUs)})
	}
	for _, f := range files {
		err := writeCgroupFile(filepath.Join(c.dir, f[0]), f[1])
		if errors.Is(err, os.ErrNotExist) && f[0] == "memory.swap.max" {
			continue // no swap accounting in this kernel: no swap to turn off
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (c *Cgroup) createV1() error {
	l := c.limits
	for ctrl, parent := range c.m.dirs {
		if ctrl == "freezer" && c.m.pidNS {
			continue
		}
		d := filepath.Join(parent, c.id)
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
		c.dirs[ctrl] = d
	}
	type kv = [2]string
	var files []kv
	if l.Memory > 0 {
		files = append(files, kv{"memory/memory.limit_in_bytes", strconv.FormatInt(l.Memory, 10)},
			kv{"memory/memory.memsw.limit_in_bytes", strconv.FormatInt(l.Memory, 10)},
			kv{"memory/memory.kmem.tcp.limit_in_bytes", strconv.FormatInt(tcpMemoryV1(l.Memory), 10)})
	}
	files = append(files, kv{"pids/pids.max", maxOr(int64(l.Pids))})
	if c.m.has("cpu") && l.CPUs > 0 {
		// cpu.shares 1024 and cpu.cfs_period_us 100000 are a new cgroup's
		// own: only the quota is written.
		files = append(files, kv{"cpu/cpu.cfs_quota_us", cpuQuotaV1(l.CPUs)})
	}
	for _, f := range files {
		ctrl, name, _ := strings.Cut(f[0], "/")
		err := writeCgroupFile(filepath.Join(c.dirs[ctrl], name), f[1])
		if errors.Is(err, os.ErrNotExist) && name == "memory.memsw.limit_in_bytes" {
			continue // no swap accounting (swapaccount=0): no swap to turn off
		}
		if errors.Is(err, os.ErrNotExist) && name == "memory.kmem.tcp.limit_in_bytes" {
			continue // a kernel that has dropped it (deprecated since 6.x)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (m *Cgroups) has(ctrl string) bool { return slices.Contains(m.ctrls, ctrl) }

// tcpMemoryV1 is a v1 session's memory.kmem.tcp.limit_in_bytes: a quarter
// of its memory limit (at least 16 MiB) for its TCP sockets' buffers. A v1
// memory cgroup counts them only once that file is written, and apart
// from memory.limit_in_bytes: without it one session of 512 MiB queued 2.3
// GB in sockets to itself over its loopback, past the kernel's limit for
// every socket of the machine (net.ipv4.tcp_mem), and one of 64 MiB 1.1 GB
// in 300 connections; with it 33 MB (TestSocketMemory: beyond the limit
// TCP still lets each socket queue a segment or so). v2 counts socket
// memory in memory.max. The kernel warns once that the file is
// deprecated.
func tcpMemoryV1(memory int64) int64 { return max(memory/4, 16<<20) }

func maxOr(n int64) string {
	if n <= 0 {
		return "max"
	}
	return strconv.FormatInt(n, 10)
}

const cpuPeriod = 100000 // µs, the kernel's default

func cpuMax(cpus float64) string {
	if cpus <= 0 {
		return "max " + strconv.Itoa(cpuPeriod)
	}
	return strconv.FormatInt(int64(math.Ceil(cpus*cpuPeriod)), 10) + " " + strconv.Itoa(cpuPeriod)
}

func cpuQuotaV1(cpus float64) string {
	if cpus <= 0 {
		return "-1"
	}
	return strconv.FormatInt(int64(math.Ceil(cpus*cpuPeriod)), 10)
}

// ID is the session id the cgroup is named for.
func (c *Cgroup) ID() string { return c.id }

// Dir is the session's cgroup directory (v1: of the memory hierarchy).
func (c *Cgroup) Dir() string {
	if c.m.version == 2 {
		return c.dir
	}
	return c.dirs["memory"]
}

// CloneInto opens the session's v2 cgroup for CLONE_INTO_CGROUP and sets
// attr to start the child there: it is in its cgroup from its first
// instruction, before it can fork. The caller closes the returned fd once
// the child has started (or failed to). On v1 it returns -1 and leaves
// attr alone: the parent calls Enter(pid) before it releases the child.
func (c *Cgroup) CloneInto(attr *syscall.SysProcAttr) (fd int, err error) {
	if c.m.version != 2 {
		return -1, nil
	}
	fd, err = unix.Open(c.dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open cgroup %s: %w", c.dir, err)
	}
	attr.UseCgroupFD = true
	attr.CgroupFD = fd
	return fd, nil
}

// Enter moves process pid (all its threads) into the session's cgroup, in
// every hierarchy. On v1 the parent calls it for a resident init (a
// server's session's init moves itself in: OpenTasks) before init starts
// anything of the program's, and for the network helper. On v2 it is the
// fallback where clone3 with CLONE_INTO_CGROUP is refused (Linux < 5.7).
//
// The v1 hierarchies are entered at once, each on a thread of its own: a
// move takes the kernel's cgroup_threadgroup_rwsem for writing, which
// waits for an RCU grace period (milliseconds) unless another writer has
// just waited for one, so moves that overlap wait for one grace period
// between them rather than one each.
func (c *Cgroup) Enter(pid int) error {
	dirs := c.dirList()
	errs := make(chan error, len(dirs))
	for _, d := range dirs {
		go func() {
			err := writeCgroupFile(filepath.Join(d, "cgroup.procs"), strconv.Itoa(pid))
			if err != nil {
				err = fmt.Errorf("enter cgroup %s: %w", d, err)
			}
			errs <- err
		}()
	}
	var all []error
	for range dirs {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}

// OpenTasks opens, on v1, the session's tasks file in every hierarchy,
// write-only and close-on-exec, for the container's init to move itself
// in with (initproc's enterCgroups): the thread that writes "0" there
// moves alone, and a move of one thread by itself does not take the
// kernel's cgroup_threadgroup_rwsem, so it waits for no RCU grace period
// (measured here: three hierarchies in 0.16 ms, against 10.5 ms for
// Enter's three writes of a pid to cgroup.procs, one at a time). The
// kernel checks a write against the credentials the file was opened with,
// this process's, so init may use it as whatever uid it is by then. The
// caller closes the fds once sent. On v2 it returns none: the child starts
// in its cgroup (CloneInto).
func (c *Cgroup) OpenTasks() ([]int, error) {
	if c.m.version != 1 {
		return nil, nil
	}
	var fds []int
	for _, d := range c.dirList() {
		fd, err := unix.Open(filepath.Join(d, "tasks"), unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			initproc.CloseFds(fds)
			return nil, fmt.Errorf("open cgroup %s: %w", d, err)
		}
		fds = append(fds, fd)
	}
	return fds, nil
}

func (c *Cgroup) dirList() []string {
	if c.m.version == 2 {
		return []string{c.dir}
	}
	var ds []string
	for _, ctrl := range cgroupV1Controllers {
		if d, ok := c.dirs[ctrl]; ok {
			ds = append(ds, d)
		}
	}
	return ds
}

// Reason says which limit ended the session, or "" when none was hit: the
// first one the watcher saw, else what the cgroup's event counters say now
// (an OOM kill, a fork refused at the process limit).
func (c *Cgroup) Reason() string {
	c.mu.Lock()
	r := c.reason
	c.mu.Unlock()
	if r != "" {
		return r
	}
	return c.limitHit()
}

// limitHit reads the cgroup's counters: memory first, since running out of
// memory also makes forks fail. A kill in a session that never reached its
// own memory limit was the kernel's when memory ran out above it
// (HostMemoryReason).
func (c *Cgroup) limitHit() string {
	if c.m.version == 2 {
		if c.m.has("memory") {
			ev := readKeyed(filepath.Join(c.dir, "memory.events"))
			if ev["oom_kill"] > 0 || ev["oom_group_kill"] > 0 {
				if ev["oom"] == 0 {
					return HostMemoryReason
				}
				return c.limits.MemoryReason()
			}
		}
		if c.m.has("pids") && readKeyed(filepath.Join(c.dir, "pids.events"))["max"] > 0 {
			return c.limits.PidsReason()
		}
		return ""
	}
	if d, ok := c.dirs["memory"]; ok {
		// v1 counts a limit reached in failcnt, of memsw's counter where
		// swap is accounted (it is charged first); under_oom is set all
		// the way down from the cgroup out of memory.
		own := readInt(filepath.Join(d, "memory.failcnt")) > 0 || readInt(filepath.Join(d, "memory.memsw.failcnt")) > 0
		oc := readKeyed(filepath.Join(d, "memory.oom_control"))
		switch {
		case own && (oc["oom_kill"] > 0 || oc["under_oom"] > 0):
			return c.limits.MemoryReason()
		case oc["oom_kill"] > 0:
			return HostMemoryReason
		}
	}
	if d, ok := c.dirs["pids"]; ok && readKeyed(filepath.Join(d, "pids.events"))["max"] > 0 {
		return c.limits.PidsReason()
	}
	return ""
}

// Stats reads how many processes the session has and how much memory it
// uses, its files in tmpfs included.
func (c *Cgroup) Stats() (Stats, error) {
	var st Stats
	procsDir, memFile := c.dir, filepath.Join(c.dir, "memory.current")
	if c.m.version == 1 {
		procsDir = c.dirs["memory"]
		memFile = filepath.Join(procsDir, "memory.usage_in_bytes")
	}
	pids, err := readPids(filepath.Join(procsDir, "cgroup.procs"))
	if err != nil {
		return st, err
	}
	st.Processes = len(pids)
	if c.m.version == 1 || c.m.has("memory") {
		b, err := os.ReadFile(memFile)
		if err != nil {
			return st, err
		}
		st.MemoryBytes, _ = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	}
	return st, nil
}

// Kill kills every process of the session at once: cgroup.kill on v2
// (Linux 5.14), else freeze, kill each process, thaw; v1 the same with the
// freezer hierarchy where there is one. A process forked while the list
// was read is frozen too, so nothing escapes.
func (c *Cgroup) Kill() error {
	return killCgroup(c.m.version, c.dirList())
}

// Remove kills what is left in the session's cgroup and removes it. It is
// idempotent; the cgroup is gone when it returns nil.
func (c *Cgroup) Remove() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.removed {
		return nil
	}
	c.m.watch.remove(c)
	err := removeCgroupTree(c.m.version, c.dirList())
	if err == nil {
		c.removed = true
	}
	return err
}

func (c *Cgroup) rmdirs() error {
	var errs []error
	for _, d := range c.dirList() {
		errs = append(errs, rmdirCgroup(d))
	}
	return errors.Join(errs...)
}

// limitReached records the first limit the watcher saw and tells whether
// it is new.
func (c *Cgroup) limitReached(reason string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reason != "" || c.removed {
		return false
	}
	c.reason = reason
	return true
}

// killCgroup kills every process in the cgroup dirs (one per hierarchy).
func killCgroup(version int, dirs []string) error {
	if len(dirs) == 0 {
		return nil
	}
	if version == 2 {
		err := writeCgroupFile(filepath.Join(dirs[0], "cgroup.kill"), "1")
		if err == nil || errors.Is(err, os.ErrNotExist) && !exists(dirs[0]) {
			return nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("kill cgroup %s: %w", dirs[0], err)
		}
		// Before Linux 5.14: freeze, kill, thaw.
		return freezeKill(dirs[0], filepath.Join(dirs[0], "cgroup.freeze"), "1", "0", dirs[0])
	}
	var freezer string
	for _, d := range dirs {
		if exists(filepath.Join(d, "freezer.state")) {
			freezer = d
		}
	}
	if freezer == "" {
		return killLoop(dirs[0])
	}
	return freezeKill(freezer, filepath.Join(freezer, "freezer.state"), "FROZEN", "THAWED", freezer)
}

// freezeKill freezes the cgroup, SIGKILLs every process in it, thaws it (a
// frozen process cannot die), and repeats until it is empty.
func freezeKill(dir, stateFile, frozen, thawed, procsDir string) error {
	for range 50 {
		pids, err := readPids(filepath.Join(procsDir, "cgroup.procs"))
		if errors.Is(err, os.ErrNotExist) || err == nil && len(pids) == 0 {
			return nil
		}
		if err != nil {
			return err
		}
		if err := writeCgroupFile(stateFile, frozen); err != nil {
			return fmt.Errorf("freeze %s: %w", dir, err)
		}
		waitFrozen(dir, stateFile, frozen)
		pids, _ = readPids(filepath.Join(procsDir, "cgroup.procs")) // the complete list, now that none can fork
		for _, p := range pids {
			_ = unix.Kill(p, unix.SIGKILL) // gone already is fine
		}
		if err := writeCgroupFile(stateFile, thawed); err != nil {
			return fmt.Errorf("thaw %s: %w", dir, err)
		}
		if waitEmpty(procsDir) {
			return nil
		}
	}
	return fmt.Errorf("kill cgroup %s: processes keep appearing", dir)
}

// waitFrozen waits (boundedly) for the freeze to complete: v1's
// freezer.state reads FREEZING until every task stopped, v2's cgroup.events
// says "frozen 1".
func waitFrozen(dir, stateFile, frozen string) {
	for i := range 200 {
		if strings.HasSuffix(stateFile, "freezer.state") {
			b, err := os.ReadFile(stateFile)
			if err != nil || strings.TrimSpace(string(b)) == frozen {
				return
			}
		} else if readKeyed(filepath.Join(dir, "cgroup.events"))["frozen"] == 1 {
			return
		}
		time.Sleep(time.Duration(i+1) * 100 * time.Microsecond)
	}
}

// killLoop kills what cgroup.procs lists until it lists nothing (no
// freezer: a fork bomb may take a few rounds).
func killLoop(dir string) error {
	for range 1000 {
		pids, err := readPids(filepath.Join(dir, "cgroup.procs"))
		if errors.Is(err, os.ErrNotExist) || err == nil && len(pids) == 0 {
			return nil
		}
		if err != nil {
			return err
		}
		for _, p := range pids {
			_ = unix.Kill(p, unix.SIGKILL) // gone already is fine
		}
		if waitEmpty(dir) {
			return nil
		}
	}
	return fmt.Errorf("kill cgroup %s: processes keep appearing", dir)
}

// waitEmpty waits (boundedly) until killed processes have left the cgroup.
func waitEmpty(dir string) bool {
	for i := range 100 {
		pids, err := readPids(filepath.Join(dir, "cgroup.procs"))
		if err != nil || len(pids) == 0 {
			return true
		}
		time.Sleep(time.Duration(i+1) * 100 * time.Microsecond)
	}
	return false
}

// removeCgroupTree kills everything in the cgroup (one dir per hierarchy:
// v1 has a tree per controller, with the same names) and its children, and
// removes them, deepest first.
func removeCgroupTree(version int, dirs []string) error {
	var errs []error
	if version == 2 {
		// cgroup.kill kills the whole subtree at once.
		if err := killCgroup(2, dirs); err != nil {
			errs = append(errs, err)
		}
	}
	children := map[string][]string{}
	var names []string
	for _, d := range dirs {
		entries, err := os.ReadDir(d)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, e := range entries {
			if !e.IsDir() {
				continue
			}
			if _, ok := children[e.Name()]; !ok {
				names = append(names, e.Name())
			}
			children[e.Name()] = append(children[e.Name()], filepath.Join(d, e.Name()))
		}
	}
	for _, n := range names {
		errs = append(errs, removeCgroupTree(version, children[n]))
	}
	if version == 1 {
		if err := killCgroup(1, dirs); err != nil {
			errs = append(errs, err)
		}
	} else {
		for _, d := range dirs {
			waitEmpty(d) // killed processes leave shortly
		}
	}
	for _, d := range dirs {
		errs = append(errs, rmdirCgroup(d))
	}
	return errors.Join(errs...)
}

// rmdirCgroup removes an empty cgroup, waiting (boundedly) for killed
// processes to leave it; a missing one is fine.
func rmdirCgroup(dir string) error {
	var err error
	for i := range 100 {
		err = unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) {
			break
		}
		time.Sleep(time.Duration(i+1) * 200 * time.Microsecond)
	}
	return fmt.Errorf("remove cgroup %s: %w", dir, err)
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func writeCgroupFile(p, v string) error {
	f, err := os.OpenFile(p, os.O_WRONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(v)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s to %s: %w", strings.TrimSpace(v), p, err)
	}
	return nil
}

// readKeyed reads a flat keyed file ("oom_kill 3\nmax 0\n"); a missing or
// unreadable file reads as empty.
func readKeyed(p string) map[string]int64 {
	m := map[string]int64{}
	b, err := os.ReadFile(p)
	if err != nil {
		return m
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			if n, err := strconv.ParseInt(f[1], 10, 64); err == nil {
				m[f[0]] = n
			}
		}
	}
	return m
}

func readPids(p string) ([]int, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			pids = append(pids, n)
		}
	}
	return pids, nil
}

// procCgroup is one line of /proc/self/cgroup.
type procCgroup struct {
	controllers []string // empty for the v2 line
	path        string
}

func parseProcCgroup(p string) ([]procCgroup, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var out []procCgroup
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		var ctrls []string
		if f[1] != "" {
			ctrls = strings.Split(f[1], ",")
		}
		out = append(out, procCgroup{controllers: ctrls, path: f[2]})
	}
	return out, nil
}

// cgroupMount is a cgroup file system mount of /proc/self/mountinfo.
type cgroupMount struct {
	point, root string
	v2          bool
	options     []string // super options: the v1 controllers
}

func cgroupMounts(p string) ([]cgroupMount, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []cgroupMount
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		a, b := strings.Fields(pre), strings.Fields(post)
		if len(a) < 5 || len(b) < 3 || (b[0] != "cgroup" && b[0] != "cgroup2") {
			continue
		}
		out = append(out, cgroupMount{point: unescapeMount(a[4]), root: unescapeMount(a[3]), v2: b[0] == "cgroup2", options: strings.Split(b[2], ",")})
	}
	return out, sc.Err()
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b bytes.Buffer
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// cgroupDir is where a cgroup path (as /proc/self/cgroup says it) is in a
// mount whose root may be a sub-path of the hierarchy (a container's bind
// mount); ok is false when the path is not visible there.
func cgroupDir(m cgroupMount, path string) (string, bool) {
	rel := path
	if m.root != "/" {
		r, ok := strings.CutPrefix(path, m.root)
		if !ok || r != "" && r[0] != '/' {
			return "", false
		}
		rel = r
	}
	return filepath.Join(m.point, rel), true
}

func openCgroupsV2(own []procCgroup, mounts []cgroupMount, name string, noControllers bool) (*Cgroups, error) {
	var path string
	found := false
	for _, pc := range own {
		if len(pc.controllers) == 0 {
			path, found = pc.path, true
		}
	}
	if !found {
		return nil, errors.New("this process is in no v2 cgroup")
	}
	var ownDir string
	for _, m := range mounts {
		if d, ok := cgroupDir(m, path); ok && m.v2 {
			ownDir = d
			break
		}
	}
	if ownDir == "" {
		return nil, fmt.Errorf("no cgroup2 mount shows this process's cgroup %s", path)
	}
	avail := strings.Fields(readString(filepath.Join(ownDir, "cgroup.controllers")))
	var ctrls []string
	for _, c := range []string{"memory", "pids", "cpu"} {
		if slices.Contains(avail, c) {
			ctrls = append(ctrls, c)
		}
	}
	if !noControllers && (!slices.Contains(ctrls, "memory") || !slices.Contains(ctrls, "pids")) {
		return nil, fmt.Errorf("%s has controllers %q; sessions need memory and pids (delegate them: systemd Delegate=yes)", ownDir, strings.Join(avail, " "))
	}
	if noControllers {
		ctrls = nil
	}
	if err := unix.Access(filepath.Join(ownDir, "cgroup.procs"), unix.W_OK); err != nil {
		return nil, fmt.Errorf("%s is not writable by uid %d: %w (run as root, or delegate it: systemd Delegate=yes)", ownDir, os.Getuid(), err)
	}
	m := &Cgroups{version: 2, dir: filepath.Join(ownDir, name), ctrls: ctrls}
	cleanCgroupLeftovers(2, []string{ownDir})
	if len(ctrls) > 0 {
		if err := m.delegate(ownDir, name); err != nil {
			return nil, err
		}
	}
	if err := os.Mkdir(m.dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("create %s: %w", m.dir, err)
	}
	if len(ctrls) > 0 {
		if err := writeCgroupFile(filepath.Join(m.dir, "cgroup.subtree_control"), plusList(ctrls)); err != nil {
			_ = rmdirCgroup(m.dir)
			return nil, err
		}
	}
	if slices.Contains(ctrls, "cpu") {
		if err := writeCgroupFile(filepath.Join(m.dir, "cpu.weight"), sessionsCPUWeight); err != nil {
			_ = rmdirCgroup(m.dir)
			return nil, err
		}
	}
	if p := sessionsPidsMax(); p != "" && slices.Contains(ctrls, "pids") {
		if err := writeCgroupFile(filepath.Join(m.dir, "pids.max"), p); err != nil {
			_ = rmdirCgroup(m.dir)
			return nil, err
		}
	}
	if b := sessionsMemoryMax(); b != "" && slices.Contains(ctrls, "memory") {
		if err := writeCgroupFile(filepath.Join(m.dir, "memory.max"), b); err != nil {
			_ = rmdirCgroup(m.dir)
			return nil, err
		}
	}
	return m, nil
}

// delegate enables the controllers in the server's own cgroup for its
// children. A v2 cgroup with processes cannot (the "no internal processes"
// rule, except at the root), so the server first moves itself into a leaf
// of its own, as systemd's Delegate= documentation asks: playground-PID-server.
func (m *Cgroups) delegate(ownDir, name string) error {
	ctl := filepath.Join(ownDir, "cgroup.subtree_control")
	enabled := strings.Fields(readString(ctl))
	var need []string
	for _, c := range m.ctrls {
		if !slices.Contains(enabled, c) {
			need = append(need, c)
		}
	}
	if len(need) == 0 {
		return nil
	}
	err := writeCgroupFile(ctl, plusList(need))
	if err == nil || !errors.Is(err, unix.EBUSY) {
		return err
	}
	leaf := filepath.Join(ownDir, name+"-server")
	if err := os.Mkdir(leaf, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create %s: %w", leaf, err)
	}
	if err := moveServer(leaf); err != nil {
		_ = rmdirCgroup(leaf)
		return fmt.Errorf("move the server into %s: %w", leaf, err)
	}
	m.serverDir = leaf
	if err := writeCgroupFile(ctl, plusList(need)); err != nil {
		others, _ := readPids(filepath.Join(ownDir, "cgroup.procs"))
		_ = moveServer(ownDir)
		_ = rmdirCgroup(leaf)
		m.serverDir = ""
		return fmt.Errorf("%w (other processes %v share the server's cgroup %s: give the server one of its own, systemd Delegate=yes)", err, others, ownDir)
	}
	return nil
}

// moveServer moves this process and its spawner, if it has started one,
// into the v2 cgroup dir. A spawner started before the server's cgroups
// were set up (a test's, a library user's earlier Start) stayed where the
// server was, and as a process of its own it kept the delegated cgroup
// from enabling controllers for the sessions (EBUSY: seen in the VM's
// delegated run). The error is the server's own move's; a spawner's that
// fails shows in what comes next.
func moveServer(dir string) error {
	procs := filepath.Join(dir, "cgroup.procs")
	if err := writeCgroupFile(procs, strconv.Itoa(os.Getpid())); err != nil {
		return err
	}
	spawnerPids.Range(func(pid, _ any) bool {
		_ = writeCgroupFile(procs, strconv.Itoa(pid.(int)))
		return true
	})
	return nil
}

func plusList(ctrls []string) string {
	s := make([]string, len(ctrls))
	for i, c := range ctrls {
		s[i] = "+" + c
	}
	return strings.Join(s, " ")
}

func readString(p string) string {
	b, _ := os.ReadFile(p) // missing reads as empty
	return strings.TrimSpace(string(b))
}

// readInt is the number in file p, or 0 when it cannot be read.
func readInt(p string) int64 {
	n, _ := strconv.ParseInt(readString(p), 10, 64)
	return n
}

func openCgroupsV1(own []procCgroup, mounts []cgroupMount, name string) (*Cgroups, error) {
	m := &Cgroups{version: 1, dirs: map[string]string{}}
	owns := map[string]string{}
	for _, ctrl := range cgroupV1Controllers {
		var path string
		found := false
		for _, pc := range own {
			if slices.Contains(pc.controllers, ctrl) {
				path, found = pc.path, true
			}
		}
		if !found {
			continue
		}
		for _, mt := range mounts {
			if mt.v2 || !slices.Contains(mt.options, ctrl) {
				continue
			}
			if d, ok := cgroupDir(mt, path); ok {
				owns[ctrl] = d
				break
			}
		}
	}
	if owns["memory"] == "" || owns["pids"] == "" {
		return nil, fmt.Errorf("memory and pids hierarchies are not both mounted (found %v)", keys(owns))
	}
	var dirs []string
	for _, ctrl := range cgroupV1Controllers {
		d, ok := owns[ctrl]
		if !ok {
			continue
		}
		if err := unix.Access(filepath.Join(d, "cgroup.procs"), unix.W_OK); err != nil {
			return nil, fmt.Errorf("%s is not writable by uid %d: %w (run as root)", d, os.Getuid(), err)
		}
		dirs = append(dirs, d)
		m.dirs[ctrl] = filepath.Join(d, name)
	}
	cleanCgroupLeftovers(1, dirs)
	for _, ctrl := range cgroupV1Controllers {
		d, ok := m.dirs[ctrl]
		if !ok {
			continue
		}
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			_ = m.removeParent()
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
		if ctrl != "freezer" {
			m.ctrls = append(m.ctrls, ctrl)
		}
		if ctrl == "cpu" {
			if err := writeCgroupFile(filepath.Join(d, "cpu.shares"), sessionsCPUShares); err != nil {
				_ = m.removeParent()
				return nil, err
			}
		}
		if p := sessionsPidsMax(); ctrl == "pids" && p != "" {
			if err := writeCgroupFile(filepath.Join(d, "pids.max"), p); err != nil {
				_ = m.removeParent()
				return nil, err
			}
		}
		if b := sessionsMemoryMax(); ctrl == "memory" && b != "" {
			if err := writeCgroupFile(filepath.Join(d, "memory.limit_in_bytes"), b); err != nil {
				_ = m.removeParent()
				return nil, err
			}
		}
	}
	return m, nil
}

func keys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

var leftoverPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^` + cgroupPrefix + `(\d+)(-server)?$`) })

// cleanCgroupLeftovers removes, below each own dir, the playground-PID
// cgroups of servers that no longer run: it kills what is still in them
// (a container that outlived a SIGKILLed server) and removes them. It
// returns how many it removed.
func cleanCgroupLeftovers(version int, ownDirs []string) int {
	byName := map[string][]string{}
	for _, own := range ownDirs {
		entries, err := os.ReadDir(own)
		if err != nil {
			continue
		}
		for _, e := range entries {
			sm := leftoverPattern().FindStringSubmatch(e.Name())
			if !e.IsDir() || sm == nil {
				continue
			}
			pid, _ := strconv.Atoi(sm[1])
			if pid == os.Getpid() || unix.Kill(pid, 0) != unix.ESRCH {
				continue // a living server's (or a reused pid: left for later)
			}
			byName[e.Name()] = append(byName[e.Name()], filepath.Join(own, e.Name()))
		}
	}
	n := 0
	for _, dirs := range byName {
		if version == 2 {
			for _, d := range dirs {
				if removeCgroupTree(2, []string{d}) == nil {
					n++
				}
			}
			continue
		}
		if removeCgroupTree(1, dirs) == nil {
			n++
		}
	}
	return n
}
