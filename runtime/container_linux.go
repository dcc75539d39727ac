package runtime

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/guntainer/playground/internal/ptyinput"
	"github.com/guntainer/playground/runtime/internal/initproc"
)

// initArg0 is argv[0] of the re-executed init. It is one of three things
// initproc checks, beside being PID 1 of a new pid namespace and holding the
// sync socket on fd 3, so no environment variable or argument alone can
// enter the init path.
const initArg0 = initproc.Arg0

// initEnv is init's environment, never the server's: only Go's one P,
// whatever the host. Go would otherwise start threads up to one per CPU (a
// GC's mark workers on idle Ps), and each counts against the session's
// pids cgroup, or against RLIMIT_NPROC of a uid the sessions of one
// subordinate-id slice share, and holds 8 MiB of stack where the binary
// uses cgo. Init does little at once. (runtime.GOMAXPROCS(1) in init would
// do the same after Go has made its Ps, at a stop of the world.) And no
// garbage collection: init allocates about 0.4 MB before the program
// starts (runtime.MemStats.TotalAlloc at that point, `playground run`,
// 2026-12-02) and next to nothing after, below the 4 MB at which Go's
// first collection would start anyway, and from its last
// rlimits to its exec a collection starting could crash it (execInPlace);
// runtime/debug.SetGCPercent(-1) there would put initproc later in Go's
// initialisation (see its package comment). The program's environment is
// its own.
var initEnv = []string{"GOMAXPROCS=1", "GOGC=off"}

// programTimerSlack is the server's timer slack, which every program in a
// container gets (initproc.Config.TimerSlack), whatever init started with
// (the spawner's forks raise it: initproc.StartTimerSlack); 0 if it cannot
// be read. The server's threads have one slack, their first thread's.
var programTimerSlack = sync.OnceValue(func() uint64 {
	v, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	if err != nil || v <= 0 {
		return 0
	}
	return uint64(v)
})

// Sizes of the messages the parent reads: init's setup report (an error
// text at most) and the exit status. A longer one fails to decode, which
// is reported, never trusted.
const (
	startMessageSize = 4 << 10
	exitMessageSize  = 256
)

// Container is a running container. Read and Write go to its pty; Wait,
// Resize, Signal, Stats and Close may be called from any goroutine.
type Container struct {
	id     string
	host   *Host
	limits Limits
	cmd    *exec.Cmd
	sync   *syncConn        // parent's end of the sync socket
	master *os.File         // pty master, non-blocking so Close interrupts Read
	input  *ptyinput.Writer // writes to master, which SignalForeground can cut short
	ids    *idSlot          // uid range in root mode, or nil
	// releaseOwner frees the id of the spawner's namespace that owns this
	// container's (initStarted), once init is reaped; nil for none.
	releaseOwner func()
	cg           *Cgroup    // the session's cgroup, or nil (rlimits)
	net          *NetHelper // the outbound network's helper, or nil
	// programIsInit: Spec.ProgramIsInit, the program is PID 1 (Pid is
	// the program's).
	programIsInit bool

	pmu     sync.Mutex
	proc    *os.Process // init, once started
	started bool        // the start is done: a limit hit now kills at once
	// limitHit: a limit was hit while the session started; the kill
	// comes once it has.
	limitHit bool

	phases []initproc.Phase // when the start's phases ended, the parent's and init's
	done   chan struct{}    // closed when init has been reaped
	status ExitStatus
	werr   error

	closeOnce sync.Once
}

// Start starts a container and returns once its program runs on the pty,
// or with the step that failed: "mount overlay on /: permission denied".
func Start(spec Spec) (*Container, error) {
	spec, err := spec.withDefaults()
	if err != nil {
		return nil, err
	}
	h := spec.Host
	if h == nil {
		if h, err = defaultHost(spec.StateDir); err != nil {
			return nil, err
		}
	} else if d := filepath.Clean(spec.StateDir); spec.StateDir != "" && d != h.stateDir && d != h.movedFrom {
		// (A Spec may name the default the Host moved from: a server's
		// does, made before the Host.)
		return nil, fmt.Errorf("state dir %s: the Host's is %s", spec.StateDir, h.stateDir)
	}
	if spec.Net.Mode == NetOutbound && h.netKind == "" {
		return nil, errors.New("outbound network needs a Host made for it (HostOptions.Net: NetOutbound)")
	}
	if err := checkRootfs(spec.Rootfs); err != nil {
		return nil, err
	}
	if err := checkStdio(spec.Stdio); err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		c := &Container{id: newID(), host: h, limits: spec.Limits, done: make(chan struct{})}
		// The start runs on a goroutine of its own, whose stack (grown deep
		// by the fork, JSON and the sync socket) goes when it ends, rather
		// than on the caller's, a session's goroutine that keeps what it
		// grew to for as long as the session lasts.
		errc := make(chan error, 1)
		go func() {
			release := takeStartSlot()
			defer release()
			errc <- c.start(spec)
		}()
		if err := <-errc; err != nil {
			c.cleanup()
			// Once more, and said in the log, rather than a visitor's
			// failed session: a start the spawner held when it ended
			// (errSpawnerDied; theSpawner replaces it); one whose init
			// ended by itself before the spawner wrote its maps
			// (errInitEndedEarly: a start in the CI's VM at the smallest
			// limits failed so once, as "write the id maps: permission
			// denied"; why init ended is not yet known); and a clone or
			// exec of init refused with EACCES or EPERM on a host where
			// containers have started (so namespaces are allowed), seen
			// about once in several thousand starts under heavy parallel
			// load, cause not yet known.
			var ce *createError
			if attempt == 1 && (errors.Is(err, errSpawnerDied) || errors.Is(err, errInitEndedEarly) ||
				h.started.Load() && errors.As(err, &ce) && ce.transient()) {
				if h.opts.Log != nil {
					h.opts.Log(fmt.Sprintf("container %s: %v; starting it again", c.id, err))
				}
				continue
			}
			return nil, err
		}
		h.started.Store(true)
		c.startDone()
		if !exits.add(c) {
			go c.watch()
		}
		return c, nil
	}
}

// createError is the failure of the clone and exec of a container's init.
type createError struct{ err error }

func (e *createError) Error() string {
	return fmt.Sprintf("create namespaces: %v%s", e.err, namespaceHint(e.err))
}

func (e *createError) Unwrap() error { return e.err }

func (e *createError) transient() bool {
	return errors.Is(e.err, syscall.EACCES) || errors.Is(e.err, syscall.EPERM)
}

// mark stamps the end of one of the parent's phases of the start.
func (c *Container) mark(name string) {
	c.phases = append(c.phases, initproc.Phase{Name: name, At: initproc.Monotonic()})
}

func (c *Container) start(spec Spec) error {
	c.mark("start")
	c.programIsInit = spec.ProgramIsInit
	uid, gid, err := parseUser(spec.User)
	if err != nil {
		return err
	}
	h := c.host
	plan, err := h.plan(spec.Rootfs)
	if err != nil {
		return err
	}
	c.ids = plan.slot
	limCg := h.cgroups != nil && h.cgroups.has("memory") && h.cgroups.has("pids")
	if err := checkResidentMemory(c.limits, limCg, spec.ProgramIsInit); err != nil {
		return err
	}
	// The session's cgroup. On v2 init starts in it (CloneInto), so it
	// comes first. On v1 nothing needs it before init's release, and its
	// directories and limits are made beside init's clone and exec
	// (cgroupMade): c.cg is set, by awaitCgroup, only once they are.
	v1 := h.cgroups != nil && h.cgroups.version == 1
	makeCgroup := func() (cg *Cgroup, err error) {
		err = withBlockingSlot(func() (err error) {
			cg, err = h.cgroups.New(c.id, c.limits, c.limitReached)
			return err
		})
		return cg, err
	}
	var made *Cgroup
	var cgroupMade chan error
	awaitCgroup := func() error {
		if cgroupMade == nil {
			return nil
		}
		err := <-cgroupMade
		cgroupMade, c.cg = nil, made
		return err
	}
	defer func() { _ = awaitCgroup() }() // a failed start's cleanup removes it
	switch {
	case v1 && !spec.check:
		cgroupMade = make(chan error, 1)
		go func() {
			var err error
			made, err = makeCgroup()
			cgroupMade <- err
		}()
	case h.cgroups != nil:
		if c.cg, err = makeCgroup(); err != nil {
			return err
		}
	}
	parentEnd, childEnd, err := socketPair()
	if err != nil {
		return err
	}
	c.sync, err = newSyncConn(parentEnd)
	if err != nil {
		_ = childEnd.Close() // not started: nobody else has it
		return err
	}
	c.mark("id range, cgroup")
	attr, err := initProcAttr()
	if err != nil {
		_ = childEnd.Close()
		return err
	}
	cgfd := -1
	if c.cg != nil {
		// cgroup v2: init is in its cgroup from its first instruction
		// (CLONE_INTO_CGROUP); v1 places it below, before its release.
		if cgfd, err = c.cg.CloneInto(attr); err != nil {
			_ = childEnd.Close()
			return err
		}
	}
	c.cmd = &exec.Cmd{
		Path:        execPath(h.initExe),
		Args:        []string{initArg0},
		Env:         initEnv,
		ExtraFiles:  []*os.File{childEnd},
		SysProcAttr: attr,
	}
	st := initStart{spawn: !h.opts.NoSpawner, uidMap: plan.uidMap, gidMap: plan.gidMap, setgroups: plan.setgroups}
	owner, ownerGID := 0, 0
	if plan.slot != nil {
		owner, ownerGID = plan.hostUID, plan.hostGID // root: the session's own (spawnOwner)
		st.owner = owner
	}
	if c.limits.Pids > 0 && !(h.cgroups != nil && h.cgroups.has("pids")) {
		// No pids cgroup: the kernel's count of the processes of all the
		// session's user ids, at its namespace's owner, stands in for it
		// where the namespace is the session's own.
		st.nproc = uint64(c.limits.Pids)
	}
	var started initStarted
	err = withBlockingSlot(func() (err error) { started, err = execInit(c.cmd, st); return err })
	c.releaseOwner = started.release
	_ = childEnd.Close() // the child has its own copy now; ours only delays EOF
	if cgfd >= 0 {
		_ = unix.Close(cgfd) // used by the clone, or not at all
	}
	if err != nil {
		c.cmd = nil
		// Without the path, which is the sealed copy's fd, of no help.
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return &createError{err}
	}
	c.pmu.Lock()
	c.proc = c.cmd.Process
	c.pmu.Unlock()
	pid := c.cmd.Process.Pid
	c.mark("namespaces, exec of init")
	// The id range is this container's until init has been reaped, also
	// for a server that starts after this one died: see idSlot.
	if err := c.ids.claim(pid); err != nil {
		return err
	}
	if h.oomFloor {
		// Init raises its own too, but only a write with the host's
		// CAP_SYS_RESOURCE makes it a floor the container cannot lower.
		if err := initproc.WriteOOMScoreAdj(strconv.Itoa(pid)); err != nil {
			return fmt.Errorf("oom_score_adj of init: %w", err)
		}
	}
	if err := awaitCgroup(); err != nil {
		return err
	}

	// Between start and release, the parent prepares what init needs
	// before it runs; init waits on the sync socket meanwhile and has not
	// forked, so nothing of the container escapes what is set up here.
	// v1 cgroups are the exception. A server's session (ProgramIsInit)
	// gets its tasks files opened, and init moves itself in as soon as it
	// is released: its one thread that executes the program, which
	// leaves init's other threads behind until the exec ends them (see
	// OpenTasks). A resident init forks the program from that thread too,
	// but keeps its other threads: the parent moves it whole, which waits
	// for an RCU grace period of the kernel's, so it runs while init
	// builds the root, and init waits for it before anything of the
	// program's starts (init itself neither forks nor allocates on a
	// user's behalf before then). (Check's init ends after its setup, so
	// it enters before, as a v1 move did before this was so.)
	enterSelf := v1 && !spec.check && spec.ProgramIsInit
	enterLater := v1 && !spec.check && !spec.ProgramIsInit
	if v1 && spec.check {
		if err := withBlockingSlot(func() error { return c.cg.Enter(pid) }); err != nil {
			return err
		}
	}
	if !started.mapped {
		if err := withBlockingSlot(func() error { return mapIDs(plan, pid) }); err != nil {
			return fmt.Errorf("write the id maps: %w", err)
		}
	}
	resolvConf := h.resolvConf
	var rules NetRules
	if spec.Net.Mode == NetOutbound {
		if c.net, err = StartNetHelper(NetHelperOptions{Kind: h.netKind, Path: h.netPath, Pid: pid, Cgroup: c.cg, OwnerUID: owner, OwnerGID: ownerGID}); err != nil {
			return err
		}
		resolvConf = c.net.ResolvConf()
		rules = spec.Net.Rules(c.net.Allow(), h.hostAddrs)
	}
	c.mark("cgroup, id maps, network")
	// Without a memory (or cpu) controller, rlimits per process and a
	// lower CPU priority stand in for the cgroup.
	nice := 0
	if c.cg == nil || !c.cg.m.has("cpu") {
		nice = SessionNice
	}
	cfg := initproc.Config{
		Rootfs:     spec.Rootfs,
		Hostname:   spec.Hostname,
		Args:       spec.Args,
		Env:        spec.Env,
		Dir:        spec.Dir,
		Cols:       spec.Cols,
		Rows:       spec.Rows,
		MountPoint: h.mountDir,
		ResolvConf: resolvConf,
		IDRange:    plan.setgroups,
		Check:      spec.check,
		Stdio:      spec.Stdio != nil,
		UID:        uid,
		GID:        gid,
		Seccomp:    h.seccomp,
		Disk:       c.limits.Disk,
		DiskInodes: c.limits.DiskInodes(),
		Ptys:       max(c.limits.Ptys, 0),

		InotifyInstances: sessionInotifyInstances,
		InotifyWatches:   sessionInotifyWatches,
		Sysctls:          ipcSysctls(c.limits),
		Rlimits:          RlimitsFor(c.limits, limCg),
		Nice:             nice,
		TimerSlack:       programTimerSlack(),
		NetRules:         rules.wire(),

		ProgramIsInit: spec.ProgramIsInit,
		EnterLater:    enterLater,
	}
	if spec.Rootfs == HostRootfs {
		cfg.HostLower = plan.lower
	}
	var send []int
	if plan.mappedLower {
		fd, err := idmappedTree(plan.lower, pid)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		cfg.MappedLower = true
		send = append(send, fd)
	} else if plan.sub != nil && spec.Rootfs != HostRootfs {
		// Init runs as the slice's root, which may not reach the rootfs
		// by its path: a tree in the server's 0700 cache. The parent can,
		// and hands it over opened, through init's root so that it is a
		// path of init's mount namespace (overlayfs takes no layer of
		// another namespace).
		fd, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/root"+plan.lower, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("rootfs: %w", err)
		}
		defer unix.Close(fd)
		cfg.LowerFD = true
		send = append(send, fd)
	}
	if enterSelf {
		tasks, err := c.cg.OpenTasks()
		if err != nil {
			return err
		}
		defer initproc.CloseFds(tasks)
		cfg.CgroupTasks = len(tasks)
		send = append(send, tasks...)
	}
	if err := c.sync.send(cfg, send...); err != nil {
		return fmt.Errorf("release container init: %w", err)
	}
	if err := sendStdio(c.sync, spec.Stdio); err != nil {
		return err
	}
	if enterLater {
		err := withBlockingSlot(func() error { return c.cg.Enter(pid) })
		if err == nil {
			if err = c.sync.send(initproc.Message{Kind: "entered"}); err != nil {
				err = fmt.Errorf("tell container init its cgroup: %w", err)
			}
		}
		if err != nil {
			// Init may have failed its setup meanwhile and exited, which
			// fails the move or the message: then its report says why.
			// Killed first, it cannot be left waiting for "entered".
			_ = c.cmd.Process.Signal(syscall.SIGKILL)
			var msg initproc.Message
			fds, rerr := c.sync.recv(&msg, startMessageSize)
			initproc.CloseFds(fds)
			if rerr == nil && msg.Kind == "error" {
				return setupErrorOf(msg)
			}
			return err // init is killed, never having started the program
		}
	}

	var msg initproc.Message
	fds, err := c.sync.recv(&msg, startMessageSize)
	switch {
	case errors.Is(err, initproc.ErrEOF):
		return c.notReady()
	case errors.As(err, new(*initCrash)):
		return fmt.Errorf("%w (%s)", err, c.reap())
	case err != nil:
		return err
	case msg.Kind == "error":
		initproc.CloseFds(fds)
		return setupErrorOf(msg)
	case msg.Kind == "checked" && spec.check:
		initproc.CloseFds(fds)
		return nil
	case msg.Kind != "ready" || len(fds) != readyFdCount(spec):
		initproc.CloseFds(fds)
		return fmt.Errorf("container init: unexpected %q message with %d fds", msg.Kind, len(fds))
	}
	if c.master, err = ptyMaster(fds); err != nil {
		return err
	}
	c.input = ptyinput.New(c.master)
	c.phases = append(c.phases, msg.Phases...)
	c.mark("ready")
	if spec.ProgramIsInit {
		return c.awaitExec()
	}
	return nil
}

// awaitExec waits, with Spec.ProgramIsInit, until init has executed the
// program in its place: its end of the sync socket, close-on-exec, is
// then closed and this end reads end of file. A failed exec is reported
// as any setup step is.
func (c *Container) awaitExec() error {
	var msg initproc.Message
	fds, err := c.sync.recv(&msg, startMessageSize)
	initproc.CloseFds(fds)
	switch {
	case errors.Is(err, initproc.ErrEOF):
		c.mark("exec of the program")
		return nil // executed; or killed meanwhile, which Wait will say
	case err != nil:
		return err
	case msg.Kind == "error":
		return setupErrorOf(msg)
	default:
		return fmt.Errorf("container init: unexpected %q message after ready", msg.Kind)
	}
}

// limitReached is the cgroup watcher's call when the session hit a limit:
// the session ends (Reason says which limit). It must not block. While
// the session starts, the kill waits for the start's end (startDone): a
// program that hits its limit at once (a fork bomb) is running before a
// resident init sends its ready message, and a kill before the message
// failed the start instead of ending the session at its limit. Until
// then the kernel holds the session at its limits as at any time.
func (c *Container) limitReached(string) {
	c.pmu.Lock()
	p, now := c.proc, c.started
	c.limitHit = !now
	c.pmu.Unlock()
	if now {
		_ = p.Signal(syscall.SIGKILL) // killing init ends the pid namespace; gone already is fine
	}
}

// startDone ends the start: a limit hit during it kills the session now.
func (c *Container) startDone() {
	c.pmu.Lock()
	c.started = true
	kill := c.limitHit
	c.pmu.Unlock()
	if kill {
		_ = c.proc.Signal(syscall.SIGKILL) // Reason says which limit
	}
}

// initProcAttr is how init is started: in its new namespaces, holding
// every capability of its new user namespace as an ambient one, with no id
// maps yet. The parent writes the maps after init's exec (mapIDs) and
// before it releases init, which then makes itself container root
// (initproc.BecomeRoot): a still unmapped uid keeps its capabilities
// across the exec only as ambient ones. A child that needs no maps before
// its exec lets the spawner clone it sharing its memory (cloneInit), which
// saves the copy of the spawner that a fork is; Go's ForkExec writing the
// maps before the exec, as it did for the root and single-id modes until
// 2026-12-04, cannot. Init gives the capabilities up before the program
// runs, as always.
func initProcAttr() (*syscall.SysProcAttr, error) {
	attr := &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS | syscall.CLONE_NEWPID |
			syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC | syscall.CLONE_NEWNET,
		// A second line behind init's watch of the sync socket: it fires
		// when the thread that started init exits, which for a parent that
		// dies is soon enough, and for a live one never happens (Go does
		// not end threads of goroutines that did not lock them).
		Pdeathsig: syscall.SIGKILL,
	}
	caps, err := allCaps()
	if err != nil {
		return nil, err
	}
	attr.AmbientCaps = caps
	return attr, nil
}

// allCaps is every capability this kernel has, read once; callers share
// the slice and do not change it.
var allCaps = sync.OnceValues(func() ([]uintptr, error) {
	last, err := lastCap()
	if err != nil {
		return nil, err
	}
	caps := make([]uintptr, 0, last+1)
	for c := 0; c <= last; c++ {
		caps = append(caps, uintptr(c))
	}
	return caps, nil
})

// mapIDs writes init's id maps after its exec: newuidmap's with
// subordinate ids, else the plan's own (root, or the single-id map, which
// the server's user may write for a namespace it made).
func mapIDs(plan idPlan, pid int) error {
	if plan.sub != nil {
		return plan.sub.Map(pid)
	}
	return writeIDMapsExecuted(pid, &syscall.SysProcAttr{UidMappings: plan.uidMap, GidMappings: plan.gidMap, GidMappingsEnableSetgroups: plan.setgroups})
}

// Check builds a container as Start would, finds its program, and ends it
// there: a server calls it at start-up to fail loudly on a machine or a
// root file system that cannot work, before the first visitor comes.
func Check(spec Spec) error {
	spec.check = true
	c, err := Start(spec)
	if err != nil {
		return err
	}
	return c.Close()
}

// watch waits for the exit message and then for init itself, and frees
// what the container held on the host as soon as it has ended. The reaper
// (exits) runs it once init has exited, so that neither waits; where the
// kernel has no pidfds it runs on a goroutine of its own from the start.
func (c *Container) watch() {
	defer close(c.done)
	defer c.releaseHost()
	var msg initproc.Message
	fds, err := c.sync.recv(&msg, exitMessageSize)
	initproc.CloseFds(fds)
	if err == nil && msg.Kind == "exit" {
		c.status = ExitStatus{Code: msg.Code, Signal: syscall.Signal(msg.Signal)}
		if msg.Signal != 0 {
			c.status.Code = -1
		}
		_ = c.cmd.Wait() // init's own exit code repeats what the message said
	} else {
		// No exit message: init itself was killed (Close, a limit, the
		// server's SIGKILL), so its status is the container's; or the
		// program is PID 1 in init's place (Spec.ProgramIsInit), and its
		// status is.
		c.status = exitStatusOf(c.cmd.Wait(), c.cmd.ProcessState)
	}
	if c.cg != nil {
		c.status.Reason = c.cg.Reason()
		c.status.Limit = c.cg.limits.limitOf(c.status.Reason)
	}
}

// notReady is the error of a start whose init ended before it was ready:
// how it ended, and the limit the session hit, if it hit one (the cgroup
// watcher ends a session at its limit also while it starts).
func (c *Container) notReady() error {
	st := c.reap()
	if c.cg != nil {
		if r := c.cg.Reason(); r != "" {
			return fmt.Errorf("container init ended before it was ready: %s (%s)", st, r)
		}
	}
	return fmt.Errorf("container init ended before it was ready: %s", st)
}

// reap kills and waits for init when start fails, and says how it ended.
func (c *Container) reap() ExitStatus {
	_ = c.cmd.Process.Kill() // may have exited already
	st := exitStatusOf(c.cmd.Wait(), c.cmd.ProcessState)
	c.cmd = nil
	return st
}

func exitStatusOf(err error, ps *os.ProcessState) ExitStatus {
	if ps == nil {
		return ExitStatus{Code: -1, Signal: syscall.SIGKILL}
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok {
		return waitExitStatus(ws)
	}
	_ = err // the exit code carries what the error would say
	return ExitStatus{Code: ps.ExitCode()}
}

// waitExitStatus is how a process whose wait status is ws ended.
func waitExitStatus(ws syscall.WaitStatus) ExitStatus {
	if ws.Signaled() {
		return ExitStatus{Code: -1, Signal: ws.Signal()}
	}
	return ExitStatus{Code: ws.ExitStatus()}
}

// Stats says what the container uses now: from its cgroup, or, without
// one, from /proc (see ProcStats).
func (c *Container) Stats() (Stats, error) {
	select {
	case <-c.done:
		return Stats{}, os.ErrProcessDone
	default:
	}
	if c.cg != nil && (c.cg.m.version == 1 || c.cg.m.has("memory")) {
		return c.cg.Stats()
	}
	st, err := ProcStats(c.Pid())
	if err == nil && c.net != nil {
		st.Processes++ // the helper, outside the pid namespace
	}
	return st, err
}

// ID is the container's id, unique on this host.
func (c *Container) ID() string { return c.id }

// Pid is the host pid of the container's init (of the program, which is
// PID 1 in its place, with Spec.ProgramIsInit).
func (c *Container) Pid() int { return c.cmd.Process.Pid }

// Read reads the program's output from the pty. It returns io.EOF once the
// program has ended and nothing holds the pty any more, or after Close.
func (c *Container) Read(p []byte) (int, error) {
	if c.master == nil {
		return 0, io.EOF // a Check container has no pty
	}
	n, err := c.master.Read(p)
	if err != nil && (errors.Is(err, syscall.EIO) || errors.Is(err, os.ErrClosed)) {
		err = io.EOF
	}
	return n, err
}

// ReadNow reads what output is there already, without waiting: 0 and no
// error when there is none. A reader that just got a full read uses it to
// gather more into one message.
func (c *Container) ReadNow(p []byte) (int, error) {
	if c.master == nil {
		return 0, io.EOF
	}
	return readNow(c.master, p)
}

// readNow reads f's fd once, non-blocking, through its RawConn, so that
// EAGAIN is "nothing yet" rather than a wait in the poller.
func readNow(f *os.File, p []byte) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		n, rerr = unix.Read(int(fd), p)
		return true // never wait: EAGAIN is an answer here
	})
	switch {
	case err != nil:
		return 0, io.EOF // closed
	case errors.Is(rerr, unix.EAGAIN) || errors.Is(rerr, unix.EINTR):
		return 0, nil
	case errors.Is(rerr, unix.EIO):
		return 0, io.EOF
	case rerr != nil:
		return 0, rerr
	case n < 0:
		return 0, nil
	}
	return n, nil
}

// Write writes input to the program's terminal. It waits while the
// program does not read its input; SignalForeground may end that wait,
// with ErrInputFlushed.
func (c *Container) Write(p []byte) (int, error) {
	if c.master == nil {
		return 0, ErrNoTerminal
	}
	return c.input.Write(p)
}

// Resize sets the terminal size; the program gets SIGWINCH.
//
// The ioctl goes through SyscallConn, not Fd, which may put a pollable
// file in blocking mode, where Read holds a thread and Close no longer
// wakes it.
func (c *Container) Resize(cols, rows uint16) error {
	return c.masterIoctl(func(fd int) error {
		return unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, &unix.Winsize{Col: cols, Row: rows})
	})
}

// masterIoctl runs f with the pty master's fd, through SyscallConn (see
// Resize), and returns f's error; ErrNoTerminal without a pty.
func (c *Container) masterIoctl(f func(fd int) error) error {
	if c.master == nil {
		return ErrNoTerminal
	}
	return ptyinput.Control(c.master, f)
}

// SignalForeground does what the line discipline does when it reads one
// of the keys ^C, ^\ and ^Z (SIGINT, SIGQUIT or SIGTSTP): it signals the
// foreground process group of the program's terminal and, unless the
// program has set NOFLSH, drops the input it has not read, with the rest
// of a Write waiting for room, which returns ErrInputFlushed. It reaches
// the program also when the pty's input buffer is full (a program that
// does not read its input), where a ^C written as input would wait behind
// the rest.
func (c *Container) SignalForeground(sig syscall.Signal) error {
	if c.master == nil {
		return ErrNoTerminal
	}
	select {
	case <-c.done:
		return os.ErrProcessDone
	default:
	}
	return c.input.Interrupt(sig)
}

// SignalKey reports the signal that the byte b sends when it is typed
// into the program's terminal as its modes are now: SIGINT, SIGQUIT or
// SIGTSTP for its ^C, ^\ and ^Z keys (or those stty set instead) while it
// has ISIG set; ok is false where b is input like any other, as for a
// program that reads its keys raw.
func (c *Container) SignalKey(b byte) (sig syscall.Signal, ok bool, err error) {
	if c.master == nil {
		return 0, false, ErrNoTerminal
	}
	return c.input.SignalKey(b)
}

// Signal sends sig to the program through init, which forwards it; with
// Spec.ProgramIsInit, to the program itself, which as PID 1 ignores a
// signal it has no handler for (SIGKILL aside).
func (c *Container) Signal(sig syscall.Signal) error {
	select {
	case <-c.done:
		return os.ErrProcessDone
	default:
	}
	return c.cmd.Process.Signal(sig)
}

// Wait blocks until the program has ended and returns how it ended. It may
// be called any number of times, also after Close.
func (c *Container) Wait() (ExitStatus, error) {
	<-c.done
	return c.status, c.werr
}

// Done is closed when the container has ended.
func (c *Container) Done() <-chan struct{} { return c.done }

// Close ends the container: every process of its pid namespace is killed,
// its mounts go with its mount namespace, and its mount point on the host is
// removed. It unblocks Read and Wait, is idempotent and safe to call from
// any goroutine.
func (c *Container) Close() error {
	c.closeOnce.Do(func() {
		// Killing init kills the whole pid namespace.
		_ = c.cmd.Process.Signal(syscall.SIGKILL) // fails only if already reaped
		<-c.done
		if c.master != nil {
			_ = c.master.Close() // Close's job is to release it; nothing to report
		}
	})
	return nil
}

// cleanup undoes a Start that failed.
func (c *Container) cleanup() {
	if c.cmd != nil && c.cmd.ProcessState == nil {
		c.reap()
	}
	if c.master != nil {
		_ = c.master.Close() // nobody has seen it yet
	}
	c.releaseHost()
}

// releaseHost frees what the container held on the host once init has
// been reaped (its pid namespace, and with it every mount, is gone by
// then), in order: the network helper, the cgroup (killing what is left
// in it), the sync socket, and last the id range, which another container
// may take as soon as it is free.
func (c *Container) releaseHost() {
	if c.net != nil {
		_ = c.net.Close() // reaps it; how it ended is of no interest
	}
	if c.cg != nil {
		if err := c.cg.Remove(); err != nil && c.host.opts.Log != nil {
			c.host.opts.Log(fmt.Sprintf("container %s: %v (the parent cgroup's removal at shutdown retries)", c.id, err))
		}
	}
	if c.sync != nil {
		_ = c.sync.Close() // the container is gone; nothing more to say
		c.sync = nil
	}
	c.ids.release()
	if c.releaseOwner != nil {
		c.releaseOwner()
		c.releaseOwner = nil
	}
}

// namespaceHint says what usually stops a machine from creating namespaces.
func namespaceHint(err error) string {
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return " (the user namespace limit is reached: sysctl user.max_user_namespaces)"
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES):
		return " (unprivileged user namespaces are not allowed here: sysctl kernel.unprivileged_userns_clone=1, " +
			"kernel.apparmor_restrict_unprivileged_userns=0 on Ubuntu, or, in Docker, the flags in Dockerfile.dev)"
	case errors.Is(err, syscall.EINVAL):
		return " (this kernel lacks a namespace that containers need)"
	}
	return ""
}

func newID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // never fails on Linux
	return hex.EncodeToString(b)
}

func (s Spec) withDefaults() (Spec, error) {
	if s.Rootfs == "" {
		s.Rootfs = HostRootfs
	}
	if s.Rootfs != HostRootfs {
		abs, err := filepath.Abs(s.Rootfs)
		if err != nil {
			return s, fmt.Errorf("rootfs %s: %w", s.Rootfs, err)
		}
		s.Rootfs = abs
		if strings.ContainsAny(abs, ",:\\") {
			return s, fmt.Errorf("rootfs %s: path must not contain ',', ':' or '\\' (overlayfs option syntax)", abs)
		}
	}
	if s.Hostname == "" {
		s.Hostname = "playground"
	}
	if s.Cols == 0 {
		s.Cols = 80
	}
	if s.Rows == 0 {
		s.Rows = 24
	}
	if s.Limits.Disk == 0 && s.WritableSize > 0 {
		s.Limits.Disk = s.WritableSize // the deprecated name of the same
	}
	if err := s.Limits.Validate(); err != nil {
		return s, fmt.Errorf("limits: %w", err)
	}
	s.Limits = s.Limits.WithDefaults()
	if err := s.Net.Validate(); err != nil {
		return s, err
	}
	return s, nil
}

// checkRootfs fails early, on the host, for a rootfs that cannot work.
func checkRootfs(rootfs string) error {
	if rootfs == HostRootfs {
		return nil
	}
	fi, err := os.Stat(rootfs)
	if err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("rootfs %s: not a directory", rootfs)
	}
	return nil
}

// hostResolvConf is the host's resolv.conf, read once per Host.
func hostResolvConf() string {
	b, err := os.ReadFile("/etc/resolv.conf")
	if err != nil || len(b) > 4096 {
		return "nameserver 127.0.0.1\n"
	}
	return string(b)
}

// execInit starts init; a variable so that a test can make it fail.
var execInit = startInit

// startSlots bounds the starts in flight at once. On a few CPUs a burst
// of starts is bound by CPU: with all of them in flight (1,000 sessions
// opened at once), each waits for all the others, every one is late, and
// the server holds all their memory at once (the start goroutines' deep
// stacks, their buffers, their threads) where a few at a time would do the
// same work sooner, in order. A start that takes longer than
// startSlotHold gives its slot back, so that a start stuck in the kernel
// cannot hold up the others.
var startSlots = make(chan struct{}, max(8, 4*goruntime.GOMAXPROCS(0)))

// startSlotHold is a variable for a test.
var startSlotHold = 2 * time.Second

// takeStartSlot waits for one of startSlots; the function it returns gives
// it back, at the latest after startSlotHold.
func takeStartSlot() (release func()) {
	startSlots <- struct{}{}
	var once sync.Once
	give := func() { once.Do(func() { <-startSlots }) }
	t := time.AfterFunc(startSlotHold, give)
	return func() {
		t.Stop()
		give()
	}
}

// blockingSlots bounds the starts that are inside the parent's blocking
// system calls at once: the fork and exec of init (os/exec's Start holds
// its OS thread in a read of a pipe until the child has executed a 15 MB
// Go binary), newuidmap's runs (Wait holds one in waitid), and the cgroup
// work (mkdir and the limits' files, and the moves into v1 hierarchies,
// which wait for an RCU grace period under a host-wide lock). A goroutine
// in a blocking system call has an OS thread to itself, and Go keeps every
// thread it made, at 48 KiB of Go stacks each (g0 and signal stacks) plus
// the kernel's: a burst of 1,000 sessions left a server with about 300
// threads, 13 KiB of its memory per session. The kernel runs these calls
// on the machine's few CPUs, or one at a time under its locks, either way;
// a start waiting for a slot waits as a goroutine.
var blockingSlots = make(chan struct{}, max(4, 2*goruntime.GOMAXPROCS(0)))

// withBlockingSlot runs f, which makes blocking system calls, in one of
// blockingSlots.
func withBlockingSlot(f func() error) error {
	blockingSlots <- struct{}{}
	defer func() { <-blockingSlots }()
	return f()
}
