package runtime

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/procfs"

	"github.com/guntainer/playground/runtime/internal/initproc"
)

// TestSpawnerForksInit: a container's init is forked by the spawner, a
// small process of this binary, and is this process's child all the same
// (CLONE_PARENT), which waits for it.
func TestSpawnerForksInit(t *testing.T) {
	c := start(t, Spec{Args: sh("echo ready; sleep 1000")})
	readAll(c).waitFor(t, "ready")
	pid, fd := Spawner()
	if pid == 0 || fd < 0 {
		t.Fatalf("no spawner after a start: pid %d, fd %d", pid, fd)
	}
	if comm := strings.TrimSpace(readFile(t, "/proc/"+strconv.Itoa(pid)+"/comm")); comm != spawnComm {
		t.Errorf("spawner %d is %q, want %q", pid, comm, spawnComm)
	}
	if ppid := mustStat(t, c.Pid()).PPID; ppid != os.Getpid() {
		t.Errorf("init's parent: %d, want this process (%d)", ppid, os.Getpid())
	}
	if ppid := mustStat(t, pid).PPID; ppid != os.Getpid() {
		t.Errorf("the spawner's parent: %d, want this process (%d)", ppid, os.Getpid())
	}
}

// mustStat is process pid's /proc/PID/stat.
func mustStat(t testing.TB, pid int) procfs.ProcStat {
	t.Helper()
	st, err := procStat(pid)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestSpawnFailureBeforeExec: a child that fails before its exec (here a
// credential in a user namespace with no id map, or an id map the kernel
// refuses) comes back as the error's number, and leaves no zombie of this
// process behind (it is this process's child, whose pid the spawner could
// not tell). The same for a start into a v2 cgroup (cloneInit), and
// for one whose cgroup is no cgroup, which the clone itself refuses.
func TestSpawnFailureBeforeExec(t *testing.T) {
	if _, err := theSpawner(); err != nil {
		t.Fatalf("no spawner: %v", err)
	}
	unmapped := func() *syscall.SysProcAttr {
		return &syscall.SysProcAttr{
			Cloneflags: syscall.CLONE_NEWUSER,
			Credential: &syscall.Credential{Uid: 4242, Gid: 4242},
		}
	}
	badMap := func() *syscall.SysProcAttr {
		return &syscall.SysProcAttr{
			Cloneflags:  syscall.CLONE_NEWUSER,
			UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 0}},
			GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
		}
	}
	t.Run("unmapped credential", func(t *testing.T) { spawnFails(t, unmapped(), 0) })
	t.Run("bad id map", func(t *testing.T) { spawnFails(t, badMap(), syscall.EINVAL) })
	if os.Getuid() != 0 || !cloneIntoCgroupHere {
		t.Log("an ordinary user owns no v2 cgroup here: the starts into one are covered by the root run")
		return
	}
	cg, err := cgroupV2Host(t).cgroups.New("spawn-failure", Limits{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cg.Remove() }()
	intoCgroup := func(attr *syscall.SysProcAttr) *syscall.SysProcAttr {
		fd, err := cg.CloneInto(attr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = syscall.Close(fd) })
		return attr
	}
	t.Run("into a v2 cgroup, unmapped credential", func(t *testing.T) { spawnFails(t, intoCgroup(unmapped()), 0) })
	t.Run("into a v2 cgroup, bad id map", func(t *testing.T) { spawnFails(t, intoCgroup(badMap()), syscall.EINVAL) })
	t.Run("into a directory that is no cgroup", func(t *testing.T) {
		dir, err := syscall.Open(t.TempDir(), syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer syscall.Close(dir)
		attr := unmapped()
		attr.UseCgroupFD, attr.CgroupFD = true, dir
		spawnFails(t, attr, syscall.EBADF)
	})
}

// spawnFails starts init with attr through the spawner, and checks that it
// fails with errno (0: with an error number) and leaves no child of the
// spawner's.
func spawnFails(t *testing.T, attr *syscall.SysProcAttr, errno syscall.Errno) {
	t.Helper()
	parent, child, err := socketPair()
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(parent)
	defer child.Close()
	f, err := sealedExecutable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := &exec.Cmd{Path: execPath(f), Args: []string{initArg0}, ExtraFiles: []*os.File{child}, SysProcAttr: attr}
	_, err = startInit(cmd, initStart{spawn: true})
	var got syscall.Errno
	if !errors.As(err, &got) || errno != 0 && got != errno {
		t.Fatalf("start: %v, want a fork/exec error of %v", err, errno)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		var zombies []string
		for _, kid := range childPids() {
			if strings.Contains(kid, "("+spawnComm+")") {
				zombies = append(zombies, kid)
			}
		}
		if len(zombies) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("children of the spawner's left: %v", zombies)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestStartsAtOnceKeepTheirOwnSyncSockets: inits forked at once by the
// spawner, on its threads, each get their own end of their sync socket
// and no other's (the spawner receives them close-on-exec): a container
// that ends is seen to end while the others run. Before, an init started
// meanwhile kept a copy of another's end, whose end of file then never
// came, and its Close hung.
func TestStartsAtOnceKeepTheirOwnSyncSockets(t *testing.T) {
	const n = 16
	cs := make(chan *Container, n)
	for range n {
		go func() {
			c, err := Start(Spec{StateDir: testStateDir(t), Args: []string{"/bin/sleep", "1000"}})
			if err != nil {
				t.Error(err)
			}
			cs <- c
		}()
	}
	var all []*Container
	for range n {
		if c := <-cs; c != nil {
			all = append(all, c)
		}
	}
	for _, c := range all {
		done := make(chan error, 1)
		go func() { done <- c.Close() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("a container's Close did not return within 10 s with %d others running", len(all)-1)
		}
	}
}

// ownSpawner starts a spawner of the test's own (the shared one stays),
// and a request for it: /bin/true with a sync socket's end.
func ownSpawner(t *testing.T) (*spawner, *exec.Cmd) {
	t.Helper()
	s, err := startSpawner()
	if err != nil {
		t.Fatal(err)
	}
	parent, child, err := socketPair()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Close(parent); _ = child.Close() })
	return s, &exec.Cmd{Path: "/bin/true", Args: []string{"true"}, ExtraFiles: []*os.File{child}, SysProcAttr: &syscall.SysProcAttr{}}
}

// waitReaped waits until the spawner's process is gone (reaped).
func waitReaped(t *testing.T, s *spawner, deadline time.Time) {
	t.Helper()
	for {
		if _, err := os.Stat("/proc/" + strconv.Itoa(s.pid)); err != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the ended spawner %d is not reaped", s.pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestStartsGoOnWithoutTheSpawner: a spawner that has ended takes no more
// requests, so that its starts are forked by the server.
func TestStartsGoOnWithoutTheSpawner(t *testing.T) {
	s, cmd := ownSpawner(t)
	if err := syscall.Kill(s.pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := s.start(cmd, initStart{})
		if errors.Is(err, errSpawnerGone) {
			break
		}
		if err == nil {
			_ = cmd.Process.Kill()
			_, _ = cmd.Process.Wait()
			cmd.Process = nil
		}
		if time.Now().After(deadline) {
			t.Fatalf("a killed spawner still takes requests: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A request that found the socket closed returns at once; the reader
	// of replies reaps the spawner when it sees the end, soon after.
	waitReaped(t, s, deadline)
}

// TestAStuckSpawnerIsKilled: a spawner that does not answer (here
// stopped) would hold every start after the first for good. A request
// that waits past the timeout kills it and fails; the requests after it
// find it gone, and their starts fork init from this process.
func TestAStuckSpawnerIsKilled(t *testing.T) {
	s, cmd := ownSpawner(t)
	s.timeout = 200 * time.Millisecond
	if err := syscall.Kill(s.pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := s.start(cmd, initStart{}); done <- err }()
	select {
	case err := <-done:
		if err == nil || errors.Is(err, errSpawnerGone) || !strings.Contains(err.Error(), "no reply from the spawner") {
			t.Fatalf("a request to a stopped spawner: %v; want it to fail, saying so", err)
		}
		t.Log(err)
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(s.pid, syscall.SIGKILL)
		t.Fatalf("a request to a stopped spawner still waits after 10 s")
	}
	if _, err := s.start(cmd, initStart{}); !errors.Is(err, errSpawnerGone) {
		t.Errorf("a request after: %v, want errSpawnerGone (the caller forks init itself)", err)
	}
	waitReaped(t, s, time.Now().Add(10*time.Second))
}

// TestReapFailedSpawnsPassesTheSpawner: after a failed start the server
// reaps the spawner's failed children, which bear its name until they
// execute, looking again while one still runs. The spawner itself bears
// that name too: taken for such a child, it made every failed start wait
// the whole 100 ms of looks.
func TestReapFailedSpawnsPassesTheSpawner(t *testing.T) {
	s, _ := ownSpawner(t)
	// It names itself as it starts.
	for deadline := time.Now().Add(10 * time.Second); ; {
		got, err := os.ReadFile("/proc/" + strconv.Itoa(s.pid) + "/comm")
		if err == nil && strings.TrimSpace(string(got)) == spawnComm {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the spawner's name: %q, %v; want %q", got, err, spawnComm)
		}
		time.Sleep(time.Millisecond)
	}
	if n := reapFailedSpawns(); n != 1 {
		t.Errorf("with only spawners bearing its name: %d looks, want 1", n)
	}
	_ = syscall.Kill(s.pid, syscall.SIGKILL)
	waitReaped(t, s, time.Now().Add(10*time.Second))
}

// TestForkIntoCgroupAsForkExec: init forked into a v2 cgroup by the
// spawner's own clone (cloneInit) starts as one forked by Go's
// ForkExec does, for each way a start asks: with id maps and a credential
// (root's mode), and with ambient capabilities and no maps (subordinate
// ids', whose maps newuidmap writes later). Compared from this side while
// init waits for its release: ids, capabilities, signal mask, ignored
// signals, fds, and for the clone, its cgroup.
func TestForkIntoCgroupAsForkExec(t *testing.T) {
	if os.Getuid() != 0 || !cloneIntoCgroupHere {
		t.Log("an ordinary user owns no v2 cgroup here: covered by the root run")
		return
	}
	if _, err := theSpawner(); err != nil {
		t.Fatalf("no spawner: %v", err)
	}
	h := cgroupV2Host(t)
	cg, err := h.cgroups.New("fork-into", Limits{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cg.Remove() }()
	flags := uintptr(syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC | syscall.CLONE_NEWNET)
	last, err := lastCap()
	if err != nil {
		t.Fatal(err)
	}
	var all []uintptr
	for c := 0; c <= last; c++ {
		all = append(all, uintptr(c))
	}
	modes := map[string]func() *syscall.SysProcAttr{
		"maps and credential": func() *syscall.SysProcAttr {
			return &syscall.SysProcAttr{Cloneflags: flags,
				UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 300000, Size: 65536}},
				GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 300000, Size: 65536}},
				Credential:  &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true},
				Pdeathsig:   syscall.SIGKILL}
		},
		"ambient capabilities": func() *syscall.SysProcAttr {
			return &syscall.SysProcAttr{Cloneflags: flags, AmbientCaps: all, Pdeathsig: syscall.SIGKILL}
		},
	}
	for name, attr := range modes {
		t.Run(name, func(t *testing.T) {
			plain := startedInit(t, attr())
			a := attr()
			fd, err := cg.CloneInto(a)
			if err != nil {
				t.Fatal(err)
			}
			defer syscall.Close(fd)
			spawned := spawnedIntoCgroup.Load()
			into := startedInit(t, a)
			if spawnedIntoCgroup.Load() != spawned+1 {
				t.Fatal("the start into a v2 cgroup was not the spawner's")
			}
			if !strings.HasSuffix(strings.TrimSpace(readFile(t, "/proc/"+into+"/cgroup")), "/"+filepath.Base(h.cgroups.Dir())+"/fork-into") {
				t.Errorf("not in its cgroup: %s", readFile(t, "/proc/"+into+"/cgroup"))
			}
			for _, k := range []string{"Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "SigBlk", "SigIgn", "NoNewPrivs", "Seccomp"} {
				if p, i := statusField(plain, k), statusField(into, k); p != i {
					t.Errorf("%s: %q forked by ForkExec, %q by cloneInit", k, p, i)
				}
			}
			if p, i := fdTargets(t, plain), fdTargets(t, into); p != i {
				t.Errorf("fds: %s forked by ForkExec, %s by cloneInit", p, i)
			}
		})
	}
}

// startedInit starts init with attr through the spawner, and returns its
// pid once it waits for its release (it has named itself, just before),
// for as long as the test runs.
func startedInit(t *testing.T, attr *syscall.SysProcAttr) string {
	t.Helper()
	parent, child, err := socketPair()
	if err != nil {
		t.Fatal(err)
	}
	defer child.Close()
	f, err := sealedExecutable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := &exec.Cmd{Path: execPath(f), Args: []string{initArg0}, ExtraFiles: []*os.File{child}, SysProcAttr: attr}
	if _, err := startInit(cmd, initStart{spawn: true}); err != nil {
		_ = syscall.Close(parent)
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = syscall.Close(parent); _, _ = cmd.Process.Wait() })
	pid := strconv.Itoa(cmd.Process.Pid)
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile("/proc/" + pid + "/comm")
		if strings.TrimSpace(string(b)) == initproc.Arg0[:min(len(initproc.Arg0), 15)] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("init %s has not named itself after 10 s", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return pid
}

// fdTargets lists process pid's fds and what each is, sockets and pipes
// by kind only.
func fdTargets(t *testing.T, pid string) string {
	t.Helper()
	ents, err := os.ReadDir("/proc/" + pid + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		l, _ := os.Readlink("/proc/" + pid + "/fd/" + e.Name())
		if k, _, ok := strings.Cut(l, ":["); ok {
			l = k
		}
		out = append(out, e.Name()+"="+l)
	}
	return strings.Join(out, " ")
}

// TestSpawnerTimerSlack: an init the spawner forks starts with the coarse
// timer slack (initproc.StartTimerSlack); the spawner's threads and the
// server's keep theirs. (TestPosture checks that the program gets the
// server's back.)
func TestSpawnerTimerSlack(t *testing.T) {
	s, err := theSpawner()
	if err != nil {
		t.Fatalf("no spawner: %v", err)
	}
	server := programTimerSlack()
	if server == 0 || server == initproc.StartTimerSlack {
		t.Fatalf("the server's timer slack read as %d", server)
	}
	attr := &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS | syscall.CLONE_NEWPID,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
		Pdeathsig:   syscall.SIGKILL,
	}
	pid := startedInit(t, attr)
	if got := strings.TrimSpace(readFile(t, "/proc/"+pid+"/timerslack_ns")); got != strconv.Itoa(initproc.StartTimerSlack) {
		t.Errorf("init's timer slack: %s, want %d", got, initproc.StartTimerSlack)
	}
	// Another thread's slack takes CAP_SYS_NICE to read.
	if os.Getuid() != 0 {
		t.Log("the server's and the spawner's threads' timer slack: root only (CAP_SYS_NICE), covered by the root run")
		return
	}
	for _, proc := range []string{"self", strconv.Itoa(s.pid)} {
		tasks, err := os.ReadDir("/proc/" + proc + "/task")
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range tasks {
			// Not under task/: /proc/TID/ has it for any thread.
			b, err := os.ReadFile("/proc/" + task.Name() + "/timerslack_ns")
			if err != nil {
				continue // ended meanwhile
			}
			if v := strings.TrimSpace(string(b)); v != strconv.FormatUint(server, 10) {
				t.Errorf("thread %s of %s: timer slack %s, not the server's %d", task.Name(), proc, v, server)
			}
		}
	}
}

// TestSpawnerIsReplaced: a spawner that ends (here killed; a crash of its
// Go runtime would do the same) is replaced by a new one in the same mode,
// rather than every later session's init being forked by the server, whose
// namespace the server's uid would own (spawnOwner, spawnerNS). A start it
// held when it ended is made again, through the new one, and succeeds:
// the session is not lost.
func TestSpawnerIsReplaced(t *testing.T) {
	old := spawnerPastItsGap(t)

	// Stopped, it takes the request and never answers; killed then, it
	// has ended holding it.
	if err := syscall.Kill(old.pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	type result struct {
		c   *Container
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := Start(Spec{StateDir: testStateDir(t), Args: sh("echo second; sleep 1000")})
		done <- result{c, err}
	}()
	for deadline := time.Now().Add(10 * time.Second); ; {
		old.mu.Lock()
		n := len(old.pending)
		old.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(old.pid, syscall.SIGCONT)
			t.Fatal("the start's request never reached the stopped spawner")
		}
		time.Sleep(time.Millisecond)
	}
	if err := syscall.Kill(old.pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var r result
	select {
	case r = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the start held by the killed spawner did not return in 60 s")
	}
	if r.err != nil {
		t.Fatalf("the start the killed spawner held: %v; want it made again", r.err)
	}
	t.Cleanup(func() { _ = r.c.Close() })
	readAll(r.c).waitFor(t, "second")
	waitReaped(t, old, time.Now().Add(10*time.Second))

	now, err := theSpawner()
	if err != nil {
		t.Fatalf("no spawner after the first ended: %v", err)
	}
	if now == old || now.pid == old.pid {
		t.Fatalf("the spawner is still the one killed (%d)", old.pid)
	}
	if pid, _ := Spawner(); pid != now.pid {
		t.Errorf("Spawner() says %d, the spawner in use is %d", pid, now.pid)
	}
	if (now.ns != nil) != (old.ns != nil) {
		t.Errorf("the new spawner in a namespace of its own: %v, the old: %v", now.ns != nil, old.ns != nil)
	}
	if ppid := mustStat(t, r.c.Pid()).PPID; ppid != os.Getpid() {
		t.Errorf("init's parent: %d, want this process (%d), forked by the new spawner", ppid, os.Getpid())
	}
	before := spawnedShared.Load() + spawnedIntoCgroup.Load()
	c3 := start(t, Spec{Args: sh("echo third; sleep 1000")})
	readAll(c3).waitFor(t, "third")
	if now.ns != nil && spawnedShared.Load()+spawnedIntoCgroup.Load() == before {
		t.Error("the start after: not forked by the new spawner (its own clone)")
	}
}

// spawnerPastItsGap is the spawner, once a container has started through
// it and its restart gap has passed: one that ends now is replaced at the
// next start, not left to the server's own fork for the gap.
func spawnerPastItsGap(t *testing.T) *spawner {
	t.Helper()
	c := start(t, Spec{Args: sh("echo first; sleep 1000")})
	readAll(c).waitFor(t, "first")
	s, err := theSpawner()
	if err != nil {
		t.Fatalf("no spawner: %v", err)
	}
	spawnerMu.Lock()
	wait := spawnerRestartGap - time.Since(spawnerBegan)
	spawnerMu.Unlock()
	time.Sleep(wait)
	return s
}

// startWithSpawnerHook starts a container on h (nil: the default host)
// with hook, one of the spawner's one-shot test requests, armed: the start
// must succeed, made again where its first try failed, and the hook must
// have been taken by it. what says which start it is.
func startWithSpawnerHook(t *testing.T, hook *atomic.Bool, h *Host, what string) *Container {
	t.Helper()
	hook.Store(true)
	t.Cleanup(func() { hook.Store(false) })
	c, err := Start(Spec{Host: h, StateDir: testStateDir(t), Args: sh("echo second; sleep 1000")})
	if err != nil {
		t.Fatalf("the start %s: %v; want it made again", what, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	readAll(c).waitFor(t, "second")
	if hook.Load() {
		t.Fatalf("the start %s: the spawner was not asked to", what)
	}
	return c
}

// TestSpawnerEndsAfterItForked: a spawner that ends between its fork of
// init and its reply leaves an init whose pid the server never got, a
// child of the server (CLONE_PARENT). The start is made again, and that
// init is killed and reaped, not left a zombie for the server's life.
func TestSpawnerEndsAfterItForked(t *testing.T) {
	old := spawnerPastItsGap(t)

	me := os.Getpid()
	children := func() map[int]procfs.ProcStat {
		m := map[int]procfs.ProcStat{}
		_ = eachProcess(func(st procfs.ProcStat) {
			if st.PPID == me {
				m[st.PID] = st
			}
		})
		return m
	}
	before := children()
	c2 := startWithSpawnerHook(t, &spawnEndAfterFork, nil, "whose spawner ended after its fork")
	waitReaped(t, old, time.Now().Add(10*time.Second))

	// Every new child of this process is the new init or a spawner; none
	// is left a zombie. (Another's zombie is reaped within milliseconds.)
	var left []string
	for deadline := time.Now().Add(3 * time.Second); ; {
		left = nil
		for pid, st := range children() {
			if _, ok := before[pid]; ok || pid == c2.Pid() {
				continue
			}
			if _, ok := spawnerPids.Load(pid); ok {
				continue
			}
			left = append(left, fmt.Sprintf("%d (%s, state %s)", pid, st.Comm, st.State))
		}
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(left) > 0 {
		t.Errorf("children left by the start whose spawner ended after its fork: %v", left)
	}
}

// TestInitEndedBeforeItsMaps: where the spawner writes init's id maps (in
// a user namespace of its own: an ordinary user with subordinate ids), an
// init that ended by itself after its exec, before its maps, fails the
// write; the start says so, with init's end, and is made again.
func TestInitEndedBeforeItsMaps(t *testing.T) {
	s := spawnerPastItsGap(t)
	if s.ns == nil {
		t.Log("the spawner writes init's maps only in a user namespace of its own (an ordinary user with subordinate ids): covered by that run; as root, or with the single-id map, the server writes them")
		return
	}
	var logged []string
	var mu sync.Mutex
	h, err := NewHost(HostOptions{StateDir: testStateDir(t), Log: func(m string) {
		mu.Lock()
		logged = append(logged, m)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	startWithSpawnerHook(t, &spawnKillBeforeMaps, h, "whose init ended before its maps")
	mu.Lock()
	defer mu.Unlock()
	if !slices.ContainsFunc(logged, func(m string) bool {
		return strings.Contains(m, errInitEndedEarly.Error()) && strings.Contains(m, "(signal KILL)") && strings.Contains(m, "starting it again")
	}) {
		t.Errorf("the log says %q; want the start's first try's failure, init's end and that it is made again", logged)
	}
}
