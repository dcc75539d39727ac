package seccomp

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/creack/pty"
	"github.com/guntainer/playground/runtime/seccomp/filter"
	"golang.org/x/sys/unix"
)

// The filter is tested in a real child process (this test binary again,
// in child mode): the child installs it on one locked thread and makes each
// call there, once before the filter and once under it, and reports the
// errnos. A wrong jump in the program would kill the child or answer the
// wrong thing, which the table below sees.

const childEnv = "PLAYGROUND_SECCOMP_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(child())
	}
	os.Exit(m.Run())
}

// call is one system call the child makes, with arguments chosen so that
// it fails harmlessly in the kernel when the filter lets it through (even
// as root): the test needs the errno, not the effect.
type call struct {
	name string
	nr   uintptr
	args [6]uintptr
}

const all = ^uintptr(0)

func calls(tty int) []call {
	ones := [6]uintptr{all, all, all, all, all, all}
	c := []call{
		{"getpid", unix.SYS_GETPID, [6]uintptr{}},
		{"personality query", unix.SYS_PERSONALITY, [6]uintptr{0xffffffff}},
		{"socket inet", unix.SYS_SOCKET, [6]uintptr{unix.AF_INET, unix.SOCK_DGRAM | unix.SOCK_CLOEXEC}},
		{"socket vsock", unix.SYS_SOCKET, [6]uintptr{unix.AF_VSOCK, unix.SOCK_STREAM | unix.SOCK_CLOEXEC}},
		{"socket inet, high bits", unix.SYS_SOCKET, [6]uintptr{unix.AF_INET | 1<<32, unix.SOCK_DGRAM | unix.SOCK_CLOEXEC}},
		{"ioctl TIOCGWINSZ", unix.SYS_IOCTL, [6]uintptr{uintptr(tty), unix.TIOCGWINSZ, uintptr(unsafe.Pointer(&unix.Winsize{}))}},
		{"ioctl TIOCSTI", unix.SYS_IOCTL, [6]uintptr{uintptr(tty), unix.TIOCSTI, 0}},
		{"ioctl TIOCSTI, high bits", unix.SYS_IOCTL, [6]uintptr{uintptr(tty), unix.TIOCSTI | 1<<32, 0}},
		{"ioctl TIOCLINUX", unix.SYS_IOCTL, [6]uintptr{uintptr(tty), unix.TIOCLINUX, 0}},
		{"clone CLONE_NEWUSER", unix.SYS_CLONE, [6]uintptr{unix.CLONE_NEWUSER | unix.CLONE_THREAD}},
		{"clone CLONE_NEWNET", unix.SYS_CLONE, [6]uintptr{unix.CLONE_NEWNET | unix.CLONE_THREAD}},
		{"clone3", unix.SYS_CLONE3, [6]uintptr{0, 0}},
		{"past the table (468)", 468, ones},
		{"far past the table", 1000, ones},
		{"x32 getpid", unix.SYS_GETPID | 0x40000000, [6]uintptr{}},
	}
	for _, d := range Denied {
		for _, n := range strings.Fields(d.Names) {
			if nr, ok := syscallNumbers[n]; ok {
				c = append(c, call{n, nr, ones})
			}
		}
	}
	return c
}

var syscallNumbers = map[string]uintptr{
	"keyctl": unix.SYS_KEYCTL, "add_key": unix.SYS_ADD_KEY, "request_key": unix.SYS_REQUEST_KEY, "bpf": unix.SYS_BPF,
	"perf_event_open": unix.SYS_PERF_EVENT_OPEN, "userfaultfd": unix.SYS_USERFAULTFD,
	"io_uring_setup": unix.SYS_IO_URING_SETUP, "io_uring_enter": unix.SYS_IO_URING_ENTER, "io_uring_register": unix.SYS_IO_URING_REGISTER,
	"kexec_load": unix.SYS_KEXEC_LOAD, "kexec_file_load": unix.SYS_KEXEC_FILE_LOAD, "reboot": unix.SYS_REBOOT,
	"init_module": unix.SYS_INIT_MODULE, "finit_module": unix.SYS_FINIT_MODULE, "delete_module": unix.SYS_DELETE_MODULE,
	"mount": unix.SYS_MOUNT, "umount2": unix.SYS_UMOUNT2, "pivot_root": unix.SYS_PIVOT_ROOT, "chroot": unix.SYS_CHROOT,
	"move_mount": unix.SYS_MOVE_MOUNT, "open_tree": unix.SYS_OPEN_TREE, "fsopen": unix.SYS_FSOPEN, "fsmount": unix.SYS_FSMOUNT,
	"fsconfig": unix.SYS_FSCONFIG, "fspick": unix.SYS_FSPICK, "mount_setattr": unix.SYS_MOUNT_SETATTR,
	"unshare": unix.SYS_UNSHARE, "setns": unix.SYS_SETNS, "pidfd_getfd": unix.SYS_PIDFD_GETFD,
	"process_vm_readv": unix.SYS_PROCESS_VM_READV, "process_vm_writev": unix.SYS_PROCESS_VM_WRITEV,
	"process_madvise": unix.SYS_PROCESS_MADVISE, "ptrace": unix.SYS_PTRACE, "kcmp": unix.SYS_KCMP,
	"acct": unix.SYS_ACCT, "syslog": unix.SYS_SYSLOG, "iopl": unix.SYS_IOPL, "ioperm": unix.SYS_IOPERM,
	"settimeofday": unix.SYS_SETTIMEOFDAY, "clock_settime": unix.SYS_CLOCK_SETTIME, "clock_adjtime": unix.SYS_CLOCK_ADJTIME,
	"adjtimex": unix.SYS_ADJTIMEX, "modify_ldt": unix.SYS_MODIFY_LDT, "open_tree_attr": unix.SYS_OPEN_TREE_ATTR,
	"quotactl": unix.SYS_QUOTACTL, "quotactl_fd": unix.SYS_QUOTACTL_FD, "lookup_dcookie": unix.SYS_LOOKUP_DCOOKIE,
	"fanotify_init": unix.SYS_FANOTIFY_INIT, "vhangup": unix.SYS_VHANGUP,
}

// result is what the child saw for a call: errno 0 is success.
type result struct {
	Name            string
	Before, Under   syscall.Errno
	ExecUnderFilter string // the outcome of a fork and exec from the filtered thread
}

func child() int {
	runtime.LockOSThread() // never unlocked: the thread dies with the process
	// vhangup, made once before the filter, hangs up the caller's
	// controlling terminal when it may (as root): the child must have
	// none, so that it hangs up nothing (the test starts it in a session
	// of its own).
	if sid, err := unix.Getsid(0); err != nil || sid != os.Getpid() {
		fmt.Fprintf(os.Stderr, "child: not a session leader (sid %d, %v): vhangup could hang up the test's terminal\n", sid, err)
		return 1
	}
	master, tty, err := pty.Open()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer master.Close()
	defer tty.Close()
	f, err := Compiled()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cs := calls(int(tty.Fd()))
	res := make([]result, len(cs))
	for i, c := range cs {
		_, _, e := unix.Syscall6(c.nr, c.args[0], c.args[1], c.args[2], c.args[3], c.args[4], c.args[5])
		res[i] = result{Name: c.name, Before: e}
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := f.Install(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for i, c := range cs {
		_, _, e := unix.Syscall6(c.nr, c.args[0], c.args[1], c.args[2], c.args[3], c.args[4], c.args[5])
		res[i].Under = e
	}
	// Go's own child path (setsid, the controlling tty, dup, chdir,
	// execve) must pass the filter.
	pid, err := syscall.ForkExec("/bin/sh", []string{"sh", "-c", "exit 7"}, &syscall.ProcAttr{
		Dir:   "/",
		Files: []uintptr{tty.Fd(), tty.Fd(), tty.Fd()},
		Sys:   &syscall.SysProcAttr{Setsid: true, Setctty: true},
	})
	out := "exec: " + fmt.Sprint(err)
	if err == nil {
		var ws syscall.WaitStatus
		_, err = syscall.Wait4(pid, &ws, 0, nil)
		out = fmt.Sprintf("wait: %v, exit %d, signaled %v", err, ws.ExitStatus(), ws.Signaled())
	}
	res = append(res, result{Name: "fork and exec", ExecUnderFilter: out})
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		return 1
	}
	return 0
}

func TestFilterInARealProcess(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	// A session of its own, without a controlling terminal: see child.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v (a wrong jump kills it with SIGSYS or worse)\nstderr: %s", err, stderr.String())
	}
	var res []result
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("child output %q: %v", out, err)
	}
	got := map[string]result{}
	for _, r := range res {
		got[r.Name] = r
	}
	want := map[string]syscall.Errno{
		"getpid":                   0,
		"personality query":        0,
		"socket inet":              0, // closed with the child
		"socket vsock":             unix.EPERM,
		"socket inet, high bits":   unix.EPERM,
		"ioctl TIOCGWINSZ":         0,
		"ioctl TIOCSTI":            unix.EPERM,
		"ioctl TIOCSTI, high bits": unix.EPERM,
		"ioctl TIOCLINUX":          unix.EPERM,
		"clone CLONE_NEWUSER":      unix.EPERM,
		"clone CLONE_NEWNET":       unix.EPERM,
		"clone3":                   unix.ENOSYS,
		"past the table (468)":     unix.ENOSYS,
		"far past the table":       unix.ENOSYS,
		"x32 getpid":               unix.ENOSYS,
	}
	for _, d := range Denied {
		for _, n := range strings.Fields(d.Names) {
			if _, ok := syscallNumbers[n]; !ok {
				t.Errorf("%s: denied, but not tried: add its number to syscallNumbers", n)
				continue
			}
			want[n] = unix.EPERM
		}
	}
	for name, w := range want {
		r, ok := got[name]
		if !ok {
			t.Errorf("%s: not tried", name)
			continue
		}
		if r.Under != w {
			t.Errorf("%s: under the filter got %v (%d), want %v (%d); before it: %v", name, r.Under, r.Under, w, w, r.Before)
		}
		// An allowed call must answer as it did before the filter.
		if w == 0 && r.Before != 0 {
			t.Errorf("%s: failed before the filter too: %v", name, r.Before)
		}
	}
	if e := got["fork and exec"].ExecUnderFilter; e != "wait: <nil>, exit 7, signaled false" {
		t.Errorf("fork and exec under the filter: %s", e)
	}
	// The refusals must be the filter's, not the kernel's: where the call
	// got another answer before the filter, the filter changed it.
	changed := 0
	for name, w := range want {
		if w != 0 && got[name].Before != w {
			changed++
		}
	}
	if changed < len(want)/2 {
		t.Errorf("only %d of %d refusals differ from the unfiltered answer: is the filter installed?", changed, len(want))
	}
}

// committedProfile is embedded, so the test binary can run anywhere.
//
//go:embed profile.json
var committedProfile []byte

func TestProfileJSONIsCommitted(t *testing.T) {
	b, err := ProfileJSON()
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("PLAYGROUND_UPDATE_PROFILE") == "1" {
		if err := os.WriteFile("profile.json", b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(committedProfile, b) {
		t.Errorf("profile.json is stale: run PLAYGROUND_UPDATE_PROFILE=1 go test ./runtime/seccomp -run TestProfileJSONIsCommitted")
	}
	var p struct {
		DefaultAction string
		Syscalls      []struct {
			Names  []string
			Action string
		}
	}
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	if p.DefaultAction != "SCMP_ACT_ERRNO" {
		t.Errorf("default action %q", p.DefaultAction)
	}
	for _, s := range p.Syscalls {
		for _, n := range s.Names {
			if s.Action == "SCMP_ACT_ALLOW" && (n == "ptrace" || n == "keyctl" || n == "mount" || n == "unshare") {
				t.Errorf("%s allowed in the profile", n)
			}
		}
	}
}

func TestFilterBytesRoundTrip(t *testing.T) {
	f, err := Compiled()
	if err != nil {
		t.Fatal(err)
	}
	g, err := filter.FromBytes(f.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(g) != len(f) {
		t.Fatalf("got %d instructions, want %d", len(g), len(f))
	}
	for i := range f {
		if f[i] != g[i] {
			t.Fatalf("instruction %d: got %+v, want %+v", i, g[i], f[i])
		}
	}
	if _, err := filter.FromBytes(make([]byte, 7)); err == nil {
		t.Error("7 bytes decoded")
	}
}
