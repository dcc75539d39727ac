package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	goruntime "runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/guntainer/playground/runtime/internal/initproc"
	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// Init is forked by a small helper process, the spawner, not by the server
// (issue 7: cheaper starts). Go's os/exec forks with CLONE_VM|CLONE_VFORK,
// the child borrowing the parent's memory until it executes, only when no
// new user namespace is asked for; every container start asks for one, so
// from the server each start was a whole fork: a copy of the server's page
// tables and descriptor table, which grow with its sessions (3.4 to 4.4 ms
// of the server's CPU per start from a process of 60 MiB of heap and 7,000
// descriptors, against 0.7 ms from a small one: BenchmarkForkCost). The
// spawner's own clone shares its memory as vfork does (cloneInit, where
// vforkHere): init's id maps are written after its exec, so the child has
// nothing to wait for before it.
//
// The spawner is this binary re-executed under the name spawnArg0, once
// per process (as runc executes "runc init" before it makes any
// namespace). It takes a start's request over a socket, with init's end of
// the sync socket, and forks init from its own small self with
// CLONE_PARENT: init is the server's child, as before, and the server
// waits for it, signals it and watches it as it did. The spawner is
// started from a thread of its own that never ends, since the parent-death
// signal of the spawner and of every init it forks fires when the thread
// that is their parent ends (golang/go#27505). A start into a v2 cgroup is
// the spawner's too, by a clone of its own (cloneInit).
//
// A child that fails before its exec (rare: a credential or a capability
// refused) is a zombie of the server whose pid nobody has; the spawner
// names its threads spawnComm, which such a child keeps, and the server
// reaps those (reapFailedSpawns). Where the spawner cannot start, the
// server forks init itself, as it did before; one that has ended is
// replaced at the next start (theSpawner), and a start it held is made
// again (errSpawnerDied).

const (
	spawnArg0 = "playground-spawn"
	spawnComm = "pg-spawn" // at most 15 bytes
	// spawnInitFd is the spawner's descriptor of the embedded init binary
	// (initExecutable), where this build has one; its second argument
	// says so. Else it executes itself, as the server would.
	spawnInitFd  = 4
	spawnInitArg = "--init-fd=4"
)

// spawnRequest is a start's fork as the spawner makes it: init's
// arguments and what of its SysProcAttr a start sets. Init's end of the
// sync socket travels beside it.
type spawnRequest struct {
	ID                         uint64
	Args                       []string
	Env                        []string
	Cloneflags                 uintptr
	UidMappings                []syscall.SysProcIDMap
	GidMappings                []syscall.SysProcIDMap
	GidMappingsEnableSetgroups bool
	Credential                 *syscall.Credential
	AmbientCaps                []uintptr
	Pdeathsig                  syscall.Signal
	// IntoCgroup: the session's v2 cgroup directory travels as a second
	// descriptor, and init is cloned into it (cloneInit).
	IntoCgroup bool
	// Owner is the uid init's user namespace is made as (spawnOwner); 0:
	// the spawner's own.
	Owner int `json:",omitempty"`
	// Nproc is the spawner's soft RLIMIT_NPROC while it clones init (0:
	// its own): the kernel keeps it as the most processes all the user ids
	// of the new namespace may have together, counted at its owner
	// (spawnOwner). For a session without a pids cgroup.
	Nproc uint64 `json:",omitempty"`
	// MapUIDs and MapGIDs, from a spawner in a user namespace of its own
	// (spawnerNS), are init's id maps in that namespace's ids, which the
	// spawner writes after init's exec: the server, outside it, may not.
	MapUIDs, MapGIDs []syscall.SysProcIDMap `json:",omitempty"`
	MapSetgroups     bool                   `json:",omitempty"`
	// EndAfterFork, for tests only (spawnEndAfterFork): the spawner ends,
	// as though killed, once it has forked init and before it replies.
	EndAfterFork bool `json:",omitempty"`
	// KillBeforeMaps, for tests only (spawnKillBeforeMaps): the spawner
	// kills init after its exec and writes its maps once it has ended.
	KillBeforeMaps bool `json:",omitempty"`
}

type spawnReply struct {
	ID    uint64
	Pid   int
	Errno syscall.Errno // the fork's or the exec's error number, if one
	Err   string
	// Shared: the clone shared the spawner's memory (cloneInit).
	Shared bool
	// Mapped: the spawner wrote init's id maps (MapUIDs).
	Mapped bool
	// Ended: init had ended by itself when its maps could not be written
	// (a process that has ended has no /proc files to write).
	Ended bool `json:",omitempty"`
	// died: not the spawner's, but the server's when it ended with the
	// request unanswered.
	died bool
}

// spawner is the server's end of the spawner.
type spawner struct {
	conn *net.UnixConn
	fd   int // conn's
	pid  int

	timeout time.Duration // a request's longest wait for its reply
	ns      *spawnerNS    // the user namespace it runs in, if one of its own

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]chan spawnReply
	reaping bool  // it has ended: its pid is not to be signalled
	dead    error // why it ended; no more requests
}

// spawnTimeout is how long a start waits for the spawner's reply before
// it kills the spawner: a spawner that does not answer (stopped, or stuck
// in the kernel) would hold every start after this one. A fork takes a few
// ms; a burst of a thousand queued takes seconds; the server's own start
// timeout is 60 s.
const spawnTimeout = 30 * time.Second

var (
	spawnerUp atomic.Pointer[spawner] // the one theSpawner hands out
	spawnerMu sync.Mutex              // held while one starts
	// spawnerErr is why the first spawner could not start: it is not
	// tried again, and the server forks every init itself.
	spawnerErr error
	// spawnerBegan is when the last one was started.
	spawnerBegan time.Time
	// spawnerPids are the spawners this process runs (tests start more
	// than the one), which bear their children's name (reapFailedSpawns).
	spawnerPids sync.Map
	// spawnEndAfterFork makes the next request ask the spawner to end
	// between its fork of init and its reply: for tests.
	spawnEndAfterFork atomic.Bool
	// spawnKillBeforeMaps makes the next request whose maps the spawner
	// writes ask it to kill init first: for tests.
	spawnKillBeforeMaps atomic.Bool
)

// Spawner reports the helper process this package starts at the first
// container start and keeps for the rest of the process (see above): its
// pid, and the descriptor of this process's end of its socket. Before it
// has started, or where it could not, 0 and -1. For a caller that counts
// its child processes and descriptors.
func Spawner() (pid, fd int) {
	if s := spawnerUp.Load(); s != nil {
		return s.pid, s.fd
	}
	return 0, -1
}

// spawnerRestartGap is the least time between the start of a spawner
// and that of the one that replaces it: one that ends as soon as it
// starts is not started again by every container start.
const spawnerRestartGap = time.Second

// theSpawner is the spawner, started at the first call. One that has
// ended (killed, or crashed: its last words are on this process's
// stderr) is replaced by a new one, in the same mode, so that the
// sessions after it keep what it gives them (spawnOwner, spawnerNS);
// until then, and where no spawner could start at all, the server forks
// init itself.
func theSpawner() (*spawner, error) {
	if s := spawnerUp.Load(); s != nil && !s.ended() {
		return s, nil
	}
	spawnerMu.Lock()
	defer spawnerMu.Unlock()
	old := spawnerUp.Load()
	switch {
	case old != nil && !old.ended():
		return old, nil // another start replaced it meanwhile
	case spawnerErr != nil:
		return nil, spawnerErr
	case old != nil && time.Since(spawnerBegan) < spawnerRestartGap:
		return nil, errSpawnerGone
	}
	spawnerBegan = time.Now()
	s, err := startSpawner()
	if err != nil {
		if old == nil {
			spawnerErr = err
		}
		return nil, err
	}
	spawnerUp.Store(s)
	return s, nil
}

// ended reports whether the spawner has ended (or is ending): it takes no
// more requests.
func (s *spawner) ended() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reaping || s.dead != nil
}

// startSpawner starts the spawner on a thread of its own, which is locked
// to a goroutine that never returns: it is the spawner's parent, and every
// init's (CLONE_PARENT), and their parent-death signal fires when it ends.
func startSpawner() (*spawner, error) {
	type result struct {
		s   *spawner
		err error
	}
	ch := make(chan result)
	go func() {
		goruntime.LockOSThread() // never unlocked: this thread must not end
		s, err := spawnOnThisThread()
		ch <- result{s, err}
		select {}
	}()
	r := <-ch
	return r.s, r.err
}

func spawnOnThisThread() (*spawner, error) {
	ns := newSpawnerNS()
	s, err := spawnProcess(ns)
	if err != nil && ns != nil {
		spawnerNSErr.Store(&err)
		return spawnProcess(nil) // as before: the server's uid owns every session's namespace
	}
	return s, err
}

// spawnerNSErr is why the spawner could not start in a user namespace of
// its own, when it could not.
var spawnerNSErr atomic.Pointer[error]

// spawnProcess starts the spawner, in ns when it is not nil.
func spawnProcess(ns *spawnerNS) (*spawner, error) {
	f, err := sealedExecutable()
	if err != nil {
		return nil, err
	}
	ini, err := initExecutable()
	if err != nil {
		return nil, err
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("spawner: socketpair: %w", err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "spawner"), os.NewFile(uintptr(fds[1]), "spawner")
	cmd := &exec.Cmd{
		Path:       execPath(f),
		Args:       []string{spawnArg0},
		Env:        []string{},
		ExtraFiles: []*os.File{theirs},
		// Its last words, should it crash (a Go runtime's fatal error),
		// go where the server's own do, its log.
		Stderr:      os.Stderr,
		SysProcAttr: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
	}
	if EmbeddedInit() {
		cmd.Args = append(cmd.Args, spawnInitArg)
		cmd.ExtraFiles = append(cmd.ExtraFiles, ini) // spawnInitFd
	}
	if ns != nil {
		// Unmapped until the maps are written, it keeps its new
		// namespace's capabilities across the exec as ambient ones.
		caps, err := allCaps()
		if err != nil {
			_ = ours.Close()
			_ = theirs.Close()
			return nil, err
		}
		cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWUSER
		cmd.SysProcAttr.AmbientCaps = caps
		cmd.Args = append(cmd.Args, spawnUserNSArg)
	}
	err = cmd.Start()
	_ = theirs.Close()
	if err == nil && ns != nil {
		if err = ns.sub.mapSpawner(cmd.Process.Pid); err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}
	if err != nil {
		_ = ours.Close()
		return nil, fmt.Errorf("spawner: %w", err)
	}
	c, err := net.FileConn(ours)
	_ = ours.Close()
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("spawner: %w", err)
	}
	s := &spawner{conn: c.(*net.UnixConn), fd: -1, pid: cmd.Process.Pid, timeout: spawnTimeout, ns: ns, pending: map[uint64]chan spawnReply{}}
	_ = cmd.Process.Release() // no pidfd kept for good: readReplies reaps it by its pid
	if rc, err := s.conn.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) { s.fd = int(fd) })
	}
	spawnerPids.Store(s.pid, true)
	go s.readReplies()
	return s, nil
}

// readReplies hands each reply to its request, until the spawner ends.
func (s *spawner) readReplies() {
	buf := make([]byte, 4096)
	var err error
	for {
		var n int
		n, _, _, _, err = s.conn.ReadMsgUnix(buf, nil)
		if err != nil || n == 0 {
			break
		}
		var r spawnReply
		if err = json.Unmarshal(buf[:n], &r); err != nil {
			break
		}
		s.mu.Lock()
		ch := s.pending[r.ID]
		delete(s.pending, r.ID)
		s.mu.Unlock()
		if ch != nil {
			ch <- r
		}
	}
	_ = s.conn.Close()
	s.mu.Lock()
	s.reaping = true
	s.mu.Unlock()
	var ws unix.WaitStatus
	_, werr := unix.Wait4(s.pid, &ws, 0, nil)
	spawnerPids.Delete(s.pid)
	s.mu.Lock()
	s.dead = fmt.Errorf("spawner ended (%v; status %v, %v)", err, ws, werr)
	for id, ch := range s.pending {
		ch <- spawnReply{ID: id, Err: s.dead.Error(), died: true}
		delete(s.pending, id)
	}
	s.mu.Unlock()
}

// errInitEndedEarly is a start whose init ended by itself after its exec,
// before the spawner could write its id maps: a start to make again once
// (Start), its wait status in the log.
var errInitEndedEarly = errors.New("init ended before its id maps were written")

// errSpawnerGone is a start the spawner could not take: it had ended
// before the request went out, so init was not forked and the caller may
// fork it itself.
var errSpawnerGone = errors.New("spawner gone")

// errSpawnerDied is a start the spawner had taken when it ended: init may
// have been forked and then lost with its pid (its end of the sync socket
// closed by the start's cleanup, it exits), so the caller starts the
// container again, through the spawner that replaces it.
var errSpawnerDied = errors.New("the spawner ended while it held this start")

// noSpawner makes the server fork init itself: a benchmark's comparison.
var noSpawner bool

// start forks init as cmd says, through the spawner, and sets
// cmd.Process. cmd has no stdio, one extra file (init's end of the sync
// socket), and a SysProcAttr as initProcAttr makes it.
func (s *spawner) start(cmd *exec.Cmd, st initStart) (started initStarted, err error) {
	attr := cmd.SysProcAttr
	req := spawnRequest{
		Args:                       cmd.Args,
		Env:                        cmd.Env,
		Cloneflags:                 attr.Cloneflags,
		UidMappings:                attr.UidMappings,
		GidMappings:                attr.GidMappings,
		GidMappingsEnableSetgroups: attr.GidMappingsEnableSetgroups,
		Credential:                 attr.Credential,
		AmbientCaps:                attr.AmbientCaps,
		Pdeathsig:                  attr.Pdeathsig,
		IntoCgroup:                 attr.UseCgroupFD,
		Owner:                      st.owner,
	}
	if st.owner != 0 || s.ns != nil {
		// Only where init's namespace is its session's own: else its owner
		// is the server's uid, whose count is every session's.
		req.Nproc = st.nproc
	}
	if s.ns != nil {
		// Its namespace is between the server's and init's: it writes
		// init's maps, in its own ids, and makes init's namespace as an
		// id of its own for this session alone.
		uids, ok1 := s.ns.translate(st.uidMap, s.ns.sub.UID, s.ns.sub.UIDBase)
		gids, ok2 := s.ns.translate(st.gidMap, s.ns.sub.GID, s.ns.sub.GIDBase)
		if !ok1 || !ok2 {
			return started, errSpawnerGone // ids it cannot map: the server forks init
		}
		k, aerr := s.ns.owners.acquire()
		if aerr != nil {
			return started, aerr
		}
		started.release = func() { s.ns.owners.release(k) }
		defer func() {
			if err != nil { // the named result: this start failed
				started.release()
				started.release = nil
			}
		}()
		req.Owner, req.MapUIDs, req.MapGIDs, req.MapSetgroups = 1+k, uids, gids, st.setgroups
	}
	req.EndAfterFork = spawnEndAfterFork.CompareAndSwap(true, false)
	req.KillBeforeMaps = req.MapUIDs != nil && spawnKillBeforeMaps.CompareAndSwap(true, false)
	fds := []int{int(cmd.ExtraFiles[0].Fd())}
	if attr.UseCgroupFD {
		fds = append(fds, attr.CgroupFD)
	}
	ch := make(chan spawnReply, 1)
	s.mu.Lock()
	if s.dead != nil {
		s.mu.Unlock()
		return started, errSpawnerGone
	}
	s.nextID++
	req.ID = s.nextID
	s.pending[req.ID] = ch
	s.mu.Unlock()
	b, err := json.Marshal(req)
	if err == nil {
		_, _, err = s.conn.WriteMsgUnix(b, unix.UnixRights(fds...), nil)
	}
	goruntime.KeepAlive(cmd.ExtraFiles[0])
	if err != nil {
		s.mu.Lock()
		delete(s.pending, req.ID)
		s.mu.Unlock()
		return started, errSpawnerGone // not sent: nothing was forked
	}
	timer := time.NewTimer(s.timeout)
	var r spawnReply
	select {
	case r = <-ch:
	case <-timer.C:
		// Its end fails every request it holds (readReplies), and later
		// starts fork init from the server. A reply that came in the
		// meantime still counts.
		s.mu.Lock()
		if !s.reaping {
			_ = unix.Kill(s.pid, unix.SIGKILL)
		}
		s.mu.Unlock()
		r = <-ch
		if r.Err != "" {
			r.Err = fmt.Sprintf("no reply from the spawner in %v, which was killed: %s", s.timeout, r.Err)
			r.died = false // stuck, not ended: not a start to make again
		}
	}
	timer.Stop()
	if r.Err != "" && r.Pid > 0 {
		// Executed, then its maps failed: the spawner killed it, and it
		// is this process's child.
		var ws unix.WaitStatus
		_, _ = unix.Wait4(r.Pid, &ws, 0, nil)
		if r.Ended {
			return started, fmt.Errorf("%w (%v): %s", errInitEndedEarly, waitExitStatus(syscall.WaitStatus(ws)), r.Err)
		}
	}
	if r.died {
		// It may have forked init before it ended: a child of this
		// process whose pid nobody has, which would stay a zombie.
		reapOrphanInit(cmd.ExtraFiles[0])
		return started, fmt.Errorf("%w: %s", errSpawnerDied, r.Err)
	}
	if r.Err != "" {
		if r.Errno != 0 {
			return started, &os.PathError{Op: "fork/exec", Path: cmd.Path, Err: r.Errno}
		}
		return started, errors.New(r.Err)
	}
	p, err := os.FindProcess(r.Pid)
	if err != nil {
		return started, err
	}
	cmd.Process = p
	started.mapped = r.Mapped
	if req.IntoCgroup {
		spawnedIntoCgroup.Add(1)
	}
	if r.Shared {
		spawnedShared.Add(1)
	}
	return started, nil
}

// spawnedIntoCgroup counts the starts into a v2 cgroup the spawner forked,
// spawnedShared those whose clone shared its memory: for tests.
var spawnedIntoCgroup, spawnedShared atomic.Int64

// initStart is how init is to be started, beyond its exec.Cmd.
type initStart struct {
	spawn bool // through the spawner, where there is one (HostOptions.NoSpawner)
	// owner is the host uid init's user namespace is made as
	// (spawnOwner): the session's root's, for a server as root; 0: none.
	owner int
	// nproc: see spawnRequest.Nproc.
	nproc uint64
	// uidMap, gidMap and setgroups are init's id maps, in host ids, for
	// a spawner in a user namespace of its own to write.
	uidMap, gidMap []syscall.SysProcIDMap
	setgroups      bool
}

// initStarted is what a start of init leaves to the caller.
type initStarted struct {
	mapped  bool   // init's id maps are written
	release func() // frees what the start holds until init is reaped; nil: nothing
}

// startInit starts init: through the spawner where there is one and
// st.spawn says to, else by forking the server. A start into a v2 cgroup
// (CLONE_INTO_CGROUP) goes through the spawner too where it can clone
// into one (cloneInit).
func startInit(cmd *exec.Cmd, st initStart) (initStarted, error) {
	if !st.spawn || (cmd.SysProcAttr.UseCgroupFD && !cloneIntoCgroupHere) || noSpawner {
		return initStarted{}, spawnOwner(st.owner, cmd.Start)
	}
	if s, err := theSpawner(); err == nil {
		started, err := s.start(cmd, st)
		if !errors.Is(err, errSpawnerGone) {
			if err != nil {
				reapFailedSpawns()
			}
			return started, err
		}
	}
	return initStarted{}, spawnOwner(st.owner, cmd.Start)
}

// reapFailedSpawns reaps this process's zombie children that the spawner
// forked and that failed before their exec: they still bear its name. A
// failed child reports its error before it exits, so it may not be a
// zombie yet: this looks again, for at most 100 ms, while a child of that
// name is still running (it may also be another start's, not yet
// executed, which is left alone). A spawner bears the name too, and is
// no such child (spawnerPids). It returns how many times it looked.
func reapFailedSpawns() int {
	me := os.Getpid()
	looks := 0
	for range 20 {
		looks++
		running := false
		_ = eachProcess(func(st procfs.ProcStat) {
			if st.Comm != spawnComm || st.PPID != me {
				return
			}
			if _, ok := spawnerPids.Load(st.PID); ok {
				return
			}
			if st.State != "Z" {
				running = true
				return
			}
			var ws unix.WaitStatus
			_, _ = unix.Wait4(st.PID, &ws, unix.WNOHANG, nil)
		})
		if !running {
			return looks
		}
		time.Sleep(5 * time.Millisecond)
	}
	return looks
}

// reapOrphanInit kills and reaps the init a spawner forked for a start
// and then ended before it sent its pid: the child of this process
// (CLONE_PARENT) that holds initEnd, init's end of the start's sync socket,
// which only that init has (the spawner's copy went with it). Nothing is
// done where there is none, or where its descriptors cannot be compared.
func reapOrphanInit(initEnd *os.File) {
	var st unix.Stat_t
	if err := unix.Fstat(int(initEnd.Fd()), &st); err != nil {
		return
	}
	link := "socket:[" + strconv.FormatUint(st.Ino, 10) + "]"
	me := os.Getpid()
	_ = eachProcess(func(ps procfs.ProcStat) {
		if ps.PPID != me || !holds(ps.PID, link, initEnd) {
			return
		}
		_ = unix.Kill(ps.PID, unix.SIGKILL)
		var ws unix.WaitStatus
		_, _ = unix.Wait4(ps.PID, &ws, 0, nil)
	})
	goruntime.KeepAlive(initEnd)
}

// holds reports whether child pid has f, whose /proc link reads link,
// among its descriptors. Where its /proc fd directory is closed to this
// process (an init of another uid: subordinate ids), it asks the kernel
// whether the child's fd 3, where init keeps its sync socket, is f
// (kcmp(2), which this process may do to its sessions' processes: its uid
// owns an ancestor of their user namespaces).
func holds(pid int, link string, f *os.File) bool {
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	ents, err := os.ReadDir(dir)
	if err != nil {
		const kcmpFile = 0 // KCMP_FILE
		r, _, errno := unix.Syscall6(unix.SYS_KCMP, uintptr(os.Getpid()), uintptr(pid), kcmpFile, f.Fd(), 3, 0)
		return errno == 0 && r == 0
	}
	for _, e := range ents {
		if l, err := os.Readlink(dir + "/" + e.Name()); err == nil && l == link {
			return true
		}
	}
	return false
}

// spawnMain is the spawner: it forks init for each request that comes, and
// ends when the server's end of its socket closes. It never returns.
func spawnMain() {
	const sock = 3
	unix.CloseOnExec(sock) // an init's fd 3 is its sync socket, never this
	initPath := "/proc/self/exe"
	spawnerSetup(slices.Contains(os.Args[1:], spawnUserNSArg))
	if slices.Contains(os.Args[1:], spawnInitArg) {
		// Executed by its path, which the kernel resolves before it closes
		// the descriptor at the exec; no init has it.
		unix.CloseOnExec(spawnInitFd)
		initPath = "/proc/self/fd/" + strconv.Itoa(spawnInitFd)
	}
	setThreadName(spawnComm)
	devNull, err := unix.Open(os.DevNull, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		os.Exit(2)
	}
	var wmu sync.Mutex
	buf := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(4*4))
	for {
		// Close-on-exec: one start's descriptors must not reach another's init,
		// forked meanwhile on another thread.
		n, oobn, _, _, err := unix.Recvmsg(sock, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || n == 0 {
			os.Exit(0) // the server is gone
		}
		var fds []int
		if scms, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
			for _, scm := range scms {
				if got, err := unix.ParseUnixRights(&scm); err == nil {
					fds = append(fds, got...)
				}
			}
		}
		var req spawnRequest
		if err := json.Unmarshal(buf[:n], &req); err != nil {
			initproc.CloseFds(fds)
			os.Exit(2) // not the server's
		}
		go func() {
			r := spawn(initPath, req, fds, devNull)
			if req.EndAfterFork && r.Pid > 0 {
				_ = unix.Kill(os.Getpid(), unix.SIGKILL)
			}
			b, _ := json.Marshal(r)
			wmu.Lock()
			_ = unix.Sendmsg(sock, b, nil, nil, 0)
			wmu.Unlock()
		}()
	}
}

// spawn forks and executes init for one request, and closes its fd. It
// uses syscall.ForkExec, not os/exec: no pipes, no /dev/null opened three
// times, no pidfd for a child that is not the spawner's.
func spawn(initPath string, req spawnRequest, fds []int, devNull int) spawnReply {
	r := spawnReply{ID: req.ID}
	defer initproc.CloseFds(fds)
	want := 1
	if req.IntoCgroup {
		want = 2
	}
	if len(fds) != want {
		r.Err = fmt.Sprintf("spawner: a request with %d descriptors, not %d", len(fds), want)
		return r
	}
	attr := &syscall.SysProcAttr{
		Cloneflags:                 req.Cloneflags | unix.CLONE_PARENT,
		UidMappings:                req.UidMappings,
		GidMappings:                req.GidMappings,
		GidMappingsEnableSetgroups: req.GidMappingsEnableSetgroups,
		Credential:                 req.Credential,
		AmbientCaps:                req.AmbientCaps,
		Pdeathsig:                  req.Pdeathsig,
	}
	// The child bears the name of the thread that forks it until it
	// executes: name this one, so that a child that fails before its exec
	// is known to the server by it (reapFailedSpawns).
	goruntime.LockOSThread()
	setThreadName(spawnComm)
	// Init starts with a coarser timer slack than the spawner's
	// (initproc.StartTimerSlack), inherited from this thread: it is
	// this thread's only while it forks. The spawner's own threads keep
	// theirs: Go's scheduler sleeps 3 µs to let another P run a goroutine
	// before it steals it, which a coarse slack would stretch to as much
	// (ready p99 28 to 35 ms here while the whole spawner had it).
	slack, _ := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, initproc.StartTimerSlack, 0, 0, 0)
	var pid int
	files := []int{devNull, devNull, devNull, fds[0]}
	shared := clonesShared(attr)
	err := nproc.run(req.Nproc, func() error {
		return spawnOwner(req.Owner, func() (err error) {
			if req.IntoCgroup || shared {
				// Into a v2 cgroup, or with the id maps written after the
				// exec: a clone that shares this process's memory where it can.
				cg := -1
				if req.IntoCgroup {
					cg = fds[1]
				}
				pid, err = cloneInit(initPath, req.Args, req.Env, files, attr, cg)
				if err != nil {
					err = &os.PathError{Op: "fork/exec", Path: initPath, Err: err}
				}
				return err
			}
			pid, err = syscall.ForkExec(initPath, req.Args, &syscall.ProcAttr{
				Env:   req.Env,
				Files: []uintptr{uintptr(files[0]), uintptr(files[1]), uintptr(files[2]), uintptr(files[3])},
				Sys:   attr,
			})
			return err
		})
	})
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(max(slack, 0)), 0, 0, 0) // 0: the thread's default
	goruntime.UnlockOSThread()
	if err != nil {
		var errno syscall.Errno
		errors.As(err, &errno)
		r.Errno, r.Err = errno, "fork/exec: "+err.Error()
		return r
	}
	r.Pid, r.Shared = pid, shared
	if req.MapUIDs != nil || req.MapGIDs != nil {
		// Init waits on its sync socket for its release, after its maps.
		maps := &syscall.SysProcAttr{UidMappings: req.MapUIDs, GidMappings: req.MapGIDs, GidMappingsEnableSetgroups: req.MapSetgroups}
		if req.KillBeforeMaps {
			_ = unix.Kill(pid, unix.SIGKILL)
			for !processEnded(pid) {
				time.Sleep(time.Millisecond)
			}
		}
		if err := writeIDMapsExecuted(pid, maps); err != nil {
			r.Ended = processEnded(pid)
			_ = unix.Kill(pid, unix.SIGKILL) // the server reaps it: its child
			r.Err = "write the id maps: " + err.Error()
			return r
		}
		r.Mapped = true
	}
	return r
}

// processEnded reports whether process pid has ended: a zombie, or gone.
func processEnded(pid int) bool {
	st, err := procStat(pid)
	return err != nil || st.State == "Z" || st.State == "X"
}

// setThreadName names the calling thread (its comm in /proc).
func setThreadName(name string) {
	b := []byte(name + "\x00")
	_ = unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&b[0])), 0, 0, 0)
}
