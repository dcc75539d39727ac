package runtime

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSpawnOwnerKeepsDumpable: every spawnOwner switch makes the whole
// process undumpable until it puts the state back. Each read the state to
// put back at its own switch, so two at once could read each other's: the
// later then put the earlier's undumpable state back for good, and every
// init the spawner made after started its exec undumpable.
func TestSpawnOwnerKeepsDumpable(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Logf("as uid %d spawnOwner switches nothing (it does in the spawner's namespace, and in the root run)", os.Geteuid())
		return
	}
	before, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Prctl(unix.PR_SET_DUMPABLE, uintptr(before), 0, 0, 0) })
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				if err := spawnOwner(60000+g, func() error {
					if i%2 == 0 {
						time.Sleep(10 * time.Microsecond)
					}
					return nil
				}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if after, _ := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0); after != before {
		t.Errorf("dumpable %d after 1,600 switches on 8 threads at once, %d before", after, before)
	}
}

// TestIDMapsWhileUndumpable: a spawner in a user namespace of its own (an
// ordinary user's server) writes init's maps once init has executed, and
// once in a storm of a thousand starts that write was refused ("write the
// id maps: permission denied") with init alive: init's exec starts
// undumpable when the spawner's thread has switched its uid (spawnOwner),
// and its /proc files are the host root's until the exec makes it dumpable
// a moment after the spawner learns it executed. Here a child in a user
// namespace of its own stays undumpable until it is told: a plain write of
// its maps is refused, and writeIDMapsExecuted's succeeds once it is
// dumpable. As root (whose CAP_DAC_OVERRIDE opens a root's file) the
// writer is an ordinary uid.
func TestIDMapsWhileUndumpable(t *testing.T) {
	cmd := helperCmd(t, "idmapwriter", nil)
	if os.Geteuid() == 0 {
		// The test binary's directory is root's alone: a copy nobody can run.
		dir, err := os.MkdirTemp("", "idmaps-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(dir) })
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		exe := filepath.Join(dir, "runtime.test")
		copyFile(t, cmd.Path, exe, 0o755)
		cmd.Path, cmd.Args[0] = exe, exe
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 65534, Gid: 65534}
	}
	res := helperResult(t, cmd, "the id map writer")
	t.Logf("%v", res)
	if !strings.Contains(res["plain"], "permission denied") {
		t.Errorf("a plain write of an undumpable child's maps: %q, want it refused (else this test shows nothing)", res["plain"])
	}
	if res["retried"] != "ok" {
		t.Errorf("writeIDMapsExecuted while the child becomes dumpable: %s", res["retried"])
	}
	if want := fmt.Sprintf("0 %s 1", res["uid"]); res["uid_map"] != want {
		t.Errorf("the child's uid_map %q, want %q", res["uid_map"], want)
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// helperUndumpable, in a user namespace of its own with no maps yet: makes
// itself undumpable, says "ready", and on a line from stdin dumpable again;
// it ends when stdin does.
func helperUndumpable() int {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		fmt.Println(err)
		return 1
	}
	fmt.Println("ready")
	in := bufio.NewReader(os.Stdin)
	_, _ = in.ReadString('\n')
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 1, 0, 0, 0); err != nil {
		fmt.Println(err)
		return 1
	}
	_, _ = io.Copy(io.Discard, in)
	return 0
}

// helperIDMapWriter starts helperUndumpable, tries its maps while it is
// undumpable (plain), then with writeIDMapsExecuted while it is told to
// become dumpable (retried), and prints the results and the uid_map.
func helperIDMapWriter() int {
	res := map[string]string{"uid": strconv.Itoa(os.Getuid())}
	defer func() { _ = json.NewEncoder(os.Stdout).Encode(res) }()
	exe, err := os.Executable()
	if err != nil {
		res["error"] = err.Error()
		return 1
	}
	child := exec.Command(exe)
	child.Env = []string{helperEnv + "=undumpable"}
	child.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER, Pdeathsig: syscall.SIGKILL}
	child.Stderr = os.Stderr
	in, _ := child.StdinPipe()
	out, _ := child.StdoutPipe()
	if err := child.Start(); err != nil {
		res["error"] = err.Error()
		return 1
	}
	defer func() { _ = in.Close(); _ = child.Wait() }()
	if line, err := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
		res["error"] = fmt.Sprintf("the child said %q, %v", line, err)
		return 1
	}
	pid := child.Process.Pid
	maps := &syscall.SysProcAttr{
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
	}
	res["plain"] = fmt.Sprint(writeIDMaps(pid, maps))
	done := make(chan error, 1)
	go func() { done <- writeIDMapsExecuted(pid, maps) }()
	// Let it be refused a few times first (were it not, it would pass
	// all the same: the plain write above shows the refusal).
	time.Sleep(50 * time.Millisecond)
	_, _ = in.Write([]byte("go\n"))
	if err := <-done; err != nil {
		res["retried"] = err.Error()
	} else {
		res["retried"] = "ok"
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", pid))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		res["error"] = err.Error()
	}
	res["uid_map"] = strings.Join(strings.Fields(string(b)), " ")
	return 0
}
