package runtime

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/guntainer/playground/runtime/internal/initproc"
	"golang.org/x/sys/unix"
)

// TestInitCrashIsReported writes to a sync socket what Go writes when init
// crashes (initMain gives it the socket as its crash output): many small
// writes, more than the socket holds, then the end. The parent reports the
// first paragraph, and reads all of it, or the crashing init would block
// in a write and never exit.
func TestInitCrashIsReported(t *testing.T) {
	s, fds := syncPair(t)
	wrote := make(chan error, 1)
	go func() {
		defer unix.Close(fds[1])
		// What Go 1.26 wrote for init refused memory.
		for _, p := range []string{"runtime stack:\n", "no frame)\n", "runtime.throw({0x76130b?, 0x0?})\n",
			"\t/usr/local/go/src/runtime/panic.go:1229 +0x48 fp=0x7f72037fd920 sp=0x7f72037fd8f0 pc=0x48b428\n",
			"runtime.persistentalloc1(0x3fc0, 0x2d06?, 0x9fac48)\n", "\t/usr/local/go/src/runtime/malloc.go:2379 +0x265\n",
			"runtime.(*mheap).allocSpan(0x9df7a0, 0x1, 0x0, 0x1a)\n", "\n", "goroutine 1 gp=0xc000002380 m=0 mp=0x9e0f20 [running]:\n"} {
			if _, err := unix.Write(fds[1], []byte(p)); err != nil {
				wrote <- err
				return
			}
		}
		for range 5000 {
			if _, err := unix.Write(fds[1], []byte("runtime.throw({0x8f4ee1?, 0x0?})\n")); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- nil
	}()
	var msg initproc.Message
	_, err := s.recv(&msg, startMessageSize)
	var crash *initCrash
	if !errors.As(err, &crash) || err.Error() != "container init crashed: runtime.throw; runtime.persistentalloc1; runtime.(*mheap).allocSpan; runtime.throw; runtime.throw" {
		t.Errorf("recv: %v; want the functions of its first frames", err)
	}
	select {
	case err := <-wrote:
		if err != nil {
			t.Errorf("the crashing side's writes: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("the crashing side still blocks in a write: the parent stopped reading")
	}
}

// TestInitCrashWithoutFrames: a crash in C (here a thread that cgo could
// not make, under init's last rlimits) has no Go frame to name; the
// report says the signal, and otherwise what init wrote, never nothing.
func TestInitCrashWithoutFrames(t *testing.T) {
	for _, c := range []struct{ wrote, want string }{
		{"SIGABRT: abort\nPC=0x7fa0d1059eec m=4 sigcode=18446744073709551610\n\ngoroutine 0 gp=0x1e6a0f5efa40 m=4 mp=0x1e6a0f617808 [idle]:\nruntime: g 0 gp=0x1e6a0f5efa40: unknown pc 0x7fa0d1059eec\n",
			"SIGABRT: abort"},
		{"runtime/cgo: pthread_create failed: Resource temporarily unavailable\nSIGABRT: abort\n", "runtime/cgo: pthread_create failed: Resource temporarily unavailable; SIGABRT: abort"},
		{"  something else entirely\n", `"something else entirely"`},
	} {
		s, fds := syncPair(t)
		if _, err := unix.Write(fds[1], []byte(c.wrote)); err != nil {
			t.Fatal(err)
		}
		unix.Close(fds[1])
		var msg initproc.Message
		_, err := s.recv(&msg, startMessageSize)
		if want := "container init crashed: " + c.want; err == nil || err.Error() != want {
			t.Errorf("recv of %q: %v; want %q", c.wrote, err, want)
		}
	}
}

// TestARealInitCrashIsReported makes a real init (this test binary run as
// one: PID 1 of a new pid namespace, the sync socket on fd 3) end in Go's
// crash report while it waits for its config, by SIGQUIT, whose report Go
// writes as it writes a fatal error's. The report reaches the parent
// through init's fd 2, which init makes the sync socket (initproc), and
// the parent says what it was.
func TestARealInitCrashIsReported(t *testing.T) {
	s, cmd := startBareInit(t)
	// Signalled before init has made fd 2 the socket, init would crash
	// into /dev/null: wait for that first.
	fd2 := fmt.Sprintf("/proc/%d/fd/2", cmd.Process.Pid)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if l, err := os.Readlink(fd2); err == nil && strings.HasPrefix(l, "socket:") {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("init's fd 2 never became its sync socket")
		}
	}
	if err := cmd.Process.Signal(syscall.SIGQUIT); err != nil {
		t.Fatal(err)
	}
	var msg initproc.Message
	_, err := s.recv(&msg, startMessageSize)
	if want := "container init crashed: SIGQUIT: quit"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("recv: %v; want %q first", err, want)
	}
	var ee *exec.ExitError
	if err := cmd.Wait(); !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Errorf("init: %v; want Go's exit status 2 of a crash", err)
	}
}

// TestInitRefusesAReleaseItCannotUse releases a real init with
// descriptors that do not match what its configuration announces, and
// with a tasks file it cannot write (a v1 session's init moves itself into
// its cgroups with them): each is an error of its step, reported before
// init builds anything, and init exits.
func TestInitRefusesAReleaseItCannotUse(t *testing.T) {
	null, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(null)
	for _, tt := range []struct {
		name   string
		cfg    initproc.Config
		fds    []int
		step   string
		errHas string
	}{
		{"two tasks files announced, none sent", initproc.Config{CgroupTasks: 2}, nil, "receive configuration", "0 descriptors came, not the 2 it announced"},
		{"a lower layer announced, a stray fd besides", initproc.Config{LowerFD: true}, []int{null, null}, "receive configuration", "2 descriptors came, not the 1 it announced"},
		{"a tasks file it cannot write", initproc.Config{CgroupTasks: 1}, []int{null}, "enter cgroup", "bad file descriptor"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, cmd := startBareInit(t)
			defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
			if err := s.send(tt.cfg, tt.fds...); err != nil {
				t.Fatal(err)
			}
			var msg initproc.Message
			got, err := s.recv(&msg, startMessageSize)
			initproc.CloseFds(got)
			if err != nil || msg.Kind != "error" || msg.Step != tt.step || !strings.Contains(msg.Err, tt.errHas) {
				t.Errorf("init's answer: %+v, %v; want the error of step %q, saying %q", msg, err, tt.step, tt.errHas)
			}
			var ee *exec.ExitError
			if err := cmd.Wait(); !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Errorf("init: %v; want exit status 1", err)
			}
		})
	}
}

// startBareInit starts this test binary as a container's init, in a new
// user and pid namespace and nothing else, waiting for its configuration
// on the returned socket.
func startBareInit(t *testing.T) (*syncConn, *exec.Cmd) {
	t.Helper()
	s, fds := syncPair(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	child := os.NewFile(uintptr(fds[1]), "sync")
	cmd := &exec.Cmd{
		Path: exe, Args: []string{initArg0}, Env: initEnv, ExtraFiles: []*os.File{child},
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWPID,
			UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
			GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
			Pdeathsig:   syscall.SIGKILL,
		},
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_ = child.Close()
	return s, cmd
}

// syncPair is a sync socket's two ends: the parent's, closed at the end of
// the test, and init's fd, which the test closes.
func syncPair(t *testing.T) (*syncConn, [2]int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	s, err := newSyncConn(fds[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, [2]int(fds)
}
