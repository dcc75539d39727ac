package runtime

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/procfs"
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
// credential in a user namespace with no id map) comes back as the
// error's number, and leaves no zombie of this process behind (it is this
// process's child, whose pid the spawner could not tell).
func TestSpawnFailureBeforeExec(t *testing.T) {
	if _, err := theSpawner(); err != nil {
		t.Fatalf("no spawner: %v", err)
	}
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
	cmd := &exec.Cmd{Path: execPath(f), Args: []string{initArg0}, ExtraFiles: []*os.File{child}, SysProcAttr: &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWUSER,
		Credential: &syscall.Credential{Uid: 4242, Gid: 4242},
	}}
	err = startInit(cmd)
	var errno syscall.Errno
	if err == nil || !errors.As(err, &errno) {
		t.Fatalf("start with an unmapped credential: %v, want a fork/exec error with its number", err)
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
		err := s.start(cmd)
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
	go func() { done <- s.start(cmd) }()
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
	if err := s.start(cmd); !errors.Is(err, errSpawnerGone) {
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
