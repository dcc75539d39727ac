package runtime

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/guntainer/playground/runtime/internal/initproc"
	"golang.org/x/sys/unix"
)

func TestContainerIsRootInsideOnly(t *testing.T) {
	c := start(t, Spec{Args: sh("id -u; id -un; read x")})
	o := readAll(c)
	o.waitFor(t, "root")
	if got := strings.Fields(o.String()); len(got) < 2 || got[0] != "0" || got[1] != "root" {
		t.Fatalf("id inside: got %q, want 0 and root", o.String())
	}
	// On the host, the container's processes run as the invoking user, or
	// as root as a uid from the pool, never as host root.
	uid := hostUID(t, c.Pid())
	switch {
	case os.Getuid() != 0 && uid != os.Getuid():
		t.Errorf("host uid of init: got %d, want the invoking uid %d", uid, os.Getuid())
	case os.Getuid() == 0 && (uid < poolBase || uid >= poolBase+poolSlots*rangeSize):
		t.Errorf("host uid of init: got %d, want one in the pool from %d", uid, poolBase)
	}
}

func hostUID(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" {
			uid, _ := strconv.Atoi(f[1])
			return uid
		}
	}
	t.Fatalf("no Uid in /proc/%d/status", pid)
	return -1
}

func TestContainerNamespaces(t *testing.T) {
	tests := []struct {
		name   string
		spec   Spec
		script string
		check  func(out string) error
	}{
		{"hostname", Spec{Hostname: "pg-test"}, "hostname; cat /etc/hostname", func(out string) error {
			if out != "pg-test\npg-test\n" {
				return fmt.Errorf("got %q, want pg-test twice", out)
			}
			return nil
		}},
		{"pid namespace", Spec{}, "echo $$; ps -e -o pid=,comm=", func(out string) error {
			lines := strings.Split(strings.TrimSpace(out), "\n")
			var pids []string
			for _, l := range lines[1:] {
				pids = append(pids, strings.Fields(l)[0])
			}
			if lines[0] == "1" || lines[0] == strconv.Itoa(os.Getpid()) {
				return fmt.Errorf("shell pid %s", lines[0])
			}
			if len(pids) != 3 || pids[0] != "1" || !strings.Contains(out, "playground-init") || !strings.Contains(out, lines[0]+" sh") {
				return fmt.Errorf("ps shows more than init, the shell and ps:\n%s", out)
			}
			return nil
		}},
		{"only loopback, up", Spec{}, "ls /sys/class/net; cat /sys/class/net/lo/operstate /sys/class/net/lo/flags; tail -n +3 /proc/net/dev | cut -d: -f1", func(out string) error {
			if f := strings.Fields(out); len(f) != 4 || f[0] != "lo" || f[3] != "lo" || f[2] != "0x9" {
				return fmt.Errorf("got %q, want only lo, with IFF_UP|IFF_LOOPBACK", out)
			}
			return nil
		}},
		{"controlling tty from own devpts", Spec{}, "tty; ls -1 /dev/pts", func(out string) error {
			if out != "/dev/pts/0\n0\nptmx\n" {
				return fmt.Errorf("got %q", out)
			}
			return nil
		}},
		{"read-only host dirs and sys", Spec{}, "touch /usr/x 2>&1; touch /sys/x 2>&1; echo ok > /etc/x && cat /etc/x", func(out string) error {
			if strings.Count(out, "Read-only file system") != 2 || !strings.HasSuffix(out, "ok\n") {
				return fmt.Errorf("got %q, want /usr and /sys read-only, /etc writable", out)
			}
			return nil
		}},
		{"environment", Spec{Env: []string{"FOO=bar", "TERM=dumb"}}, "echo $TERM $HOME $FOO $PWD; echo $PATH", func(out string) error {
			if !strings.HasPrefix(out, "dumb /root bar /root\n/usr/local/sbin:") {
				return fmt.Errorf("got %q", out)
			}
			return nil
		}},
		{"masked proc", Spec{}, "cat /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug 2>/dev/null | wc -c; (echo 1 > /proc/sys/kernel/ns_last_pid) 2>&1 | grep -c Read-only", func(out string) error {
			if out != "0\n1\n" {
				return fmt.Errorf("got %q, want empty masked files and a read-only /proc/sys", out)
			}
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := tt.spec
			spec.Args = sh(tt.script)
			out, st := run(t, spec)
			if st.Code != 0 || st.Signaled() {
				t.Fatalf("%s; output:\n%s", st, out)
			}
			if err := tt.check(out); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestHostRootIsHidden(t *testing.T) {
	marker := ""
	if os.Getuid() == 0 {
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		marker = "/playground-marker-" + hex.EncodeToString(b)
		if err := os.WriteFile(marker, []byte("host"), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Remove(marker) })
	}
	out, _ := run(t, Spec{Args: sh("ls -a /")})
	inside := map[string]bool{}
	for _, f := range strings.Fields(out) {
		inside[f] = true
	}
	if marker != "" && inside[marker[1:]] {
		t.Errorf("host file %s is visible in the container", marker)
	}
	host, err := os.ReadDir("/")
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{}
	for _, d := range append(initproc.HostDirs, "/etc", "/root", "/home", "/var", "/run", "/mnt", "/opt", "/srv", "/proc", "/dev", "/sys", "/tmp") {
		allowed[d[1:]] = true
	}
	for _, e := range host {
		if inside[e.Name()] && !allowed[e.Name()] {
			t.Errorf("host's /%s is visible in the container", e.Name())
		}
	}
	if inside[".oldroot"] {
		t.Error("the old root is still there")
	}
}

func TestWritesStayInTheirContainer(t *testing.T) {
	rootfs := busyboxRootfs(t)
	before := treeState(t, rootfs)

	a := start(t, Spec{Rootfs: rootfs, Args: sh("echo a > /written && rm /etc/passwd && echo written; sleep 30")})
	ao := readAll(a)
	ao.waitFor(t, "written")

	out, _ := run(t, Spec{Rootfs: rootfs, Args: sh("cat /written 2>&1; cat /etc/passwd")})
	if !strings.Contains(out, "No such file") || !strings.Contains(out, "root:x:0:0") {
		t.Errorf("second container sees the first's writes:\n%s", out)
	}
	_ = a.Close()
	if after := treeState(t, rootfs); after != before {
		t.Errorf("the rootfs changed:\n-before\n%s\n+after\n%s", before, after)
	}
}

func TestExitStatus(t *testing.T) {
	tests := []struct {
		name   string
		script string
		want   ExitStatus
	}{
		{"zero", "true", ExitStatus{Code: 0}},
		{"code", "exit 3", ExitStatus{Code: 3}},
		{"signal", "kill -TERM $$", ExitStatus{Code: -1, Signal: syscall.SIGTERM}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, got := run(t, Spec{Args: sh(tt.script)})
			if got != tt.want {
				t.Errorf("-want %v +got %v", tt.want, got)
			}
		})
	}
}

func TestSignalIsForwarded(t *testing.T) {
	c := start(t, Spec{Args: sh(`trap 'echo got TERM; exit 7' TERM; echo ready; while :; do sleep 0.05; done`)})
	o := readAll(c)
	o.waitFor(t, "ready")
	if err := c.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	o.waitFor(t, "got TERM")
	st, _ := c.Wait()
	if st != (ExitStatus{Code: 7}) {
		t.Errorf("got %v, want exit code 7", st)
	}
}

func TestCloseKillsEverything(t *testing.T) {
	c := start(t, Spec{Args: sh("sleep 1000 & sleep 1000 & echo started; wait")})
	o := readAll(c)
	o.waitFor(t, "started")
	pid := c.Pid()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	st, _ := c.Wait()
	if st.Signal != syscall.SIGKILL {
		t.Errorf("got %v, want signal KILL", st)
	}
	select {
	case <-o.done:
	case <-time.After(5 * time.Second):
		t.Fatal("Read not unblocked by Close")
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
		t.Errorf("init %d still exists", pid)
	}
}

func TestResize(t *testing.T) {
	c := start(t, Spec{Args: []string{"/bin/sh"}, Cols: 90, Rows: 20})
	o := readAll(c)
	if _, err := c.Write([]byte("stty size\n")); err != nil {
		t.Fatal(err)
	}
	o.waitFor(t, "20 90")
	if err := c.Resize(132, 43); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("stty size; exit\n")); err != nil {
		t.Fatal(err)
	}
	o.waitFor(t, "43 132")
	// Resize must leave the master non-blocking, or Read would hold an OS
	// thread and Close would not wake it.
	rc, err := c.master.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var flags int
	_ = rc.Control(func(fd uintptr) { flags, err = unix.FcntlInt(fd, unix.F_GETFL, 0) })
	if err != nil || flags&unix.O_NONBLOCK == 0 {
		t.Errorf("pty master after Resize: flags %#x, %v; want O_NONBLOCK", flags, err)
	}
}

func TestSetupErrors(t *testing.T) {
	empty := t.TempDir()
	_ = os.Chmod(empty, 0o755)
	tests := []struct {
		name string
		spec Spec
		want string
	}{
		{"missing rootfs", Spec{Rootfs: "/nonexistent/rootfs"}, "rootfs: stat /nonexistent/rootfs: no such file or directory"},
		{"rootfs is a file", Spec{Rootfs: "/etc/hostname"}, "rootfs /etc/hostname: not a directory"},
		{"rootfs without a shell", Spec{Rootfs: empty}, "find a shell: the rootfs has neither /bin/bash nor /bin/sh"},
		{"unknown command", Spec{Args: []string{"no-such-command"}}, "exec no-such-command: executable file not found in $PATH"},
		{"bad characters", Spec{Rootfs: "/tmp/a,b"}, "path must not contain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.StateDir = testStateDir(t)
			c, err := Start(tt.spec)
			if err == nil {
				_ = c.Close()
				t.Fatalf("Start succeeded, want error %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("-want %q\n+got  %q", tt.want, err)
			}
		})
	}
}

// TestNothingLeftBehind ends containers every way they can end and checks
// that none of their processes, mounts, fds or directories remain.
func TestNothingLeftBehind(t *testing.T) {
	rootfs := busyboxRootfs(t)
	state := testStateDir(t)
	// One container first, so lazily created things (the state dir, the
	// pool's lock dir, Go's poller) exist before the baseline.
	run(t, Spec{Args: sh("true")})

	mounts := readFile(t, "/proc/self/mountinfo")
	fds := countFds(t)
	ends := []struct {
		name string
		do   func(t *testing.T)
	}{
		{"exit", func(t *testing.T) { run(t, Spec{Rootfs: rootfs, Args: sh("sleep 100 & echo hi")}) }},
		{"close", func(t *testing.T) {
			c := start(t, Spec{Args: sh("echo up; sleep 100")})
			readAll(c).waitFor(t, "up")
			_ = c.Close()
		}},
		{"setup error", func(t *testing.T) {
			if c, err := Start(Spec{Args: []string{"nope"}, StateDir: state}); err == nil {
				_ = c.Close()
				t.Fatal("no error")
			}
		}},
	}
	for _, e := range ends {
		t.Run(e.name, func(t *testing.T) {
			e.do(t)
			if got := readFile(t, "/proc/self/mountinfo"); got != mounts {
				t.Errorf("mounts changed:\n-%s\n+%s", mounts, got)
			}
			if got := countFds(t); got != fds {
				t.Errorf("open fds: got %d, want %d", got, fds)
			}
			if kids := childPids(); len(kids) > 0 {
				t.Errorf("child processes left: %v", kids)
			}
			left, _ := filepath.Glob(filepath.Join(state, "c-*"))
			if len(left) > 0 {
				t.Errorf("mount points left: %v", left)
			}
		})
	}
}

func readFile(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func countFds(t *testing.T) int {
	t.Helper()
	// Let a closing fd finish closing in the poller.
	time.Sleep(20 * time.Millisecond)
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

func TestInitEntryRefusedOutsideAContainer(t *testing.T) {
	cmd := exec.Command("/proc/self/exe")
	cmd.Args = []string{initArg0}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errorsAs(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "not for direct use") {
		t.Errorf("got %v, %q; want exit 2 and a refusal", err, out)
	}
}

// TestNoFdLeaksIn: the program gets the pty as 0, 1 and 2 and nothing else,
// even when the server holds fds that are not close-on-exec.
func TestNoFdLeaksIn(t *testing.T) {
	leak, err := syscall.Open("/dev/null", syscall.O_RDONLY, 0) // no O_CLOEXEC, on purpose
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(leak)
	out, st := run(t, Spec{Args: []string{"/bin/ls", "-1", "/proc/self/fd"}})
	// 3 is ls's own handle on the directory it lists.
	if got := strings.Fields(out); st.Code != 0 || strings.Join(got, " ") != "0 1 2 3" {
		t.Errorf("fds in the container: got %q (%v), want 0 1 2 and ls's own 3", got, st)
	}
}

// TestInitReapsOrphans: processes orphaned inside the container are
// reparented to init, which reaps them, so no zombie piles up.
func TestInitReapsOrphans(t *testing.T) {
	out, st := run(t, Spec{Args: sh(`for i in 1 2 3 4 5; do (true &); done; sleep 0.3; ps -e -o stat=,ppid=,comm=`)})
	if st.Code != 0 {
		t.Fatalf("%v: %s", st, out)
	}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], "Z") {
			t.Errorf("zombie left unreaped: %q\n%s", l, out)
		}
	}
}
