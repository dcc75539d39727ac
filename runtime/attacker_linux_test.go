package runtime

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"github.com/guntainer/playground/runtime/internal/initproc"
	"golang.org/x/sys/unix"
)

// The attacker is this test binary again, copied into a container's root
// file system as /bin/attacker and run there with one attempt per call:
// a test binary is what the ordinary-user CI run has (no Go toolchain, no
// source), and it is static. An attempt prints what happened and exits 0
// when it was refused, or 10 when it got through.

const attackerName = "attacker"

// maybeAttacker runs an attack and exits when this process is the attacker.
func maybeAttacker() {
	maybeServerlike()
	if filepath.Base(os.Args[0]) != attackerName && filepath.Base(os.Args[0]) != "suid-attacker" {
		return
	}
	if len(os.Args) < 2 {
		fmt.Println("usage: attacker ATTEMPT [ARGS]")
		os.Exit(2)
	}
	a, ok := attacks[os.Args[1]]
	if !ok {
		fmt.Println("no attempt", os.Args[1])
		os.Exit(2)
	}
	if err := a(os.Args[2:]); err != nil {
		fmt.Println("ESCAPED:", err)
		os.Exit(10)
	}
	fmt.Println("refused")
	os.Exit(0)
}

// escaped is what an attempt returns when it got through.
func escaped(format string, args ...any) error { return fmt.Errorf(format, args...) }

// mustFail runs the calls in order; each must fail, or the attempt got through.
func mustFail(steps ...struct {
	what string
	err  error
}) error {
	for _, s := range steps {
		if s.err == nil {
			return escaped("%s succeeded", s.what)
		}
		fmt.Printf("%s: %v\n", s.what, s.err)
	}
	return nil
}

type try = struct {
	what string
	err  error
}

func sysErr(_, _ uintptr, e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

func statusField(pid, name string) string {
	b, _ := os.ReadFile("/proc/" + pid + "/status")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, name+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

var attacks = map[string]func(args []string) error{
	"raise-caps": func([]string) error {
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		data := [2]unix.CapUserData{{Effective: ^uint32(0), Permitted: ^uint32(0)}, {Effective: ^uint32(0), Permitted: ^uint32(0)}}
		return mustFail(
			try{"capset all", unix.Capset(&hdr, &data[0])},
			try{"ambient raise SYS_ADMIN", unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, unix.CAP_SYS_ADMIN, 0, 0)},
		)
	},
	"umount-mask": func([]string) error {
		return mustFail(
			try{"umount /proc/timer_list", unix.Unmount("/proc/timer_list", 0)},
			try{"umount -l /proc/keys", unix.Unmount("/proc/keys", unix.MNT_DETACH)},
			try{"umount /sys/firmware", unix.Unmount("/sys/firmware", 0)},
		)
	},
	"remount-rw": func([]string) error {
		return mustFail(
			try{"remount /proc/sys rw", unix.Mount("", "/proc/sys", "", unix.MS_REMOUNT|unix.MS_BIND, "")},
			try{"remount,bind,rw /usr", unix.Mount("", "/usr", "", unix.MS_REMOUNT|unix.MS_BIND, "")},
			try{"remount /sys rw", unix.Mount("", "/sys", "", unix.MS_REMOUNT, "")},
			try{"write /proc/sys/kernel/hostname", os.WriteFile("/proc/sys/kernel/hostname", []byte("x"), 0)},
			try{"write into /usr", os.WriteFile("/usr/escaped", []byte("x"), 0o644)},
		)
	},
	"fresh-mounts": func([]string) error {
		_ = os.MkdirAll("/tmp/m", 0o755)
		fd, err := unix.Fsopen("proc", 0)
		if err == nil {
			_ = unix.Close(fd)
		}
		return mustFail(
			try{"mount -t proc", unix.Mount("proc", "/tmp/m", "proc", 0, "")},
			try{"mount -t sysfs", unix.Mount("sysfs", "/tmp/m", "sysfs", 0, "")},
			try{"mount -t tmpfs", unix.Mount("tmpfs", "/tmp/m", "tmpfs", 0, "")},
			try{"bind /proc/sys", unix.Mount("/proc/sys", "/tmp/m", "", unix.MS_BIND, "")},
			try{"fsopen proc", err},
			try{"open_tree /proc", func() error {
				fd, err := unix.OpenTree(unix.AT_FDCWD, "/proc", unix.OPEN_TREE_CLONE)
				if err == nil {
					_ = unix.Close(fd)
				}
				return err
			}()},
			try{"mount cgroup v1 (release_agent)", unix.Mount("cgroup", "/tmp/m", "cgroup", 0, "memory")},
		)
	},
	"init-fds": func([]string) error {
		pidfd, err := unix.PidfdOpen(1, 0)
		var getfd error = err
		if err == nil {
			var fd int
			fd, getfd = unix.PidfdGetfd(pidfd, 3, 0)
			if getfd == nil {
				_ = unix.Close(fd)
			}
		}
		_, lerr := os.Readlink("/proc/1/fd/3")
		// Listing shows fd numbers at most; none may be opened.
		es, derr := os.ReadDir("/proc/1/fd")
		fmt.Printf("list /proc/1/fd: %d entries, %v\n", len(es), derr)
		for _, e := range es {
			if f, err := os.Open("/proc/1/fd/" + e.Name()); err == nil {
				f.Close()
				return escaped("opened /proc/1/fd/%s", e.Name())
			}
		}
		f, oerr := os.OpenFile("/proc/1/fd/3", os.O_RDWR, 0)
		if oerr == nil {
			// The sync socket: a forged exit status.
			_, _ = f.Write([]byte(`{"kind":"exit","code":42}`))
			_ = f.Close()
		}
		_, merr := os.ReadFile("/proc/1/environ")
		return mustFail(try{"pidfd_getfd(1, 3)", getfd}, try{"readlink /proc/1/fd/3", lerr},
			try{"open /proc/1/fd/3", oerr}, try{"read /proc/1/environ", merr})
	},
	"ptrace-init": func([]string) error {
		err := unix.PtraceAttach(1)
		if err == nil {
			_ = unix.PtraceDetach(1)
		}
		_, merr := os.ReadFile("/proc/1/mem")
		return mustFail(try{"ptrace attach 1", err}, try{"read /proc/1/mem", merr},
			try{"process_vm_readv 1", sysErr(unix.Syscall6(unix.SYS_PROCESS_VM_READV, 1, 0, 0, 0, 0, 0))})
	},
	"init-exe": func([]string) error {
		_, lerr := os.Readlink("/proc/1/exe")
		f, oerr := os.OpenFile("/proc/1/exe", os.O_WRONLY, 0)
		if oerr == nil {
			_, oerr = f.Write([]byte("#!/bin/sh\n"))
			_ = f.Close()
		}
		return mustFail(
			try{"readlink /proc/1/exe", lerr},
			try{"write /proc/1/exe", oerr},
			try{"chmod 04777 /proc/1/exe", os.Chmod("/proc/1/exe", 0o4777)},
			try{"setxattr /proc/1/exe", unix.Setxattr("/proc/1/exe", "user.x", []byte("x"), 0)},
			try{"truncate /proc/1/exe", os.Truncate("/proc/1/exe", 0)},
		)
	},
	// self-exe tries everything on its own binary; the test checks that the
	// host's file is unchanged, whatever the container's own layer took.
	"self-exe": func([]string) error {
		f, err := os.OpenFile("/proc/self/exe", os.O_WRONLY, 0)
		if err == nil {
			_, _ = f.Write([]byte("#!/bin/sh\n"))
			_ = f.Close()
		}
		fmt.Println("write /proc/self/exe:", err)
		fmt.Println("chmod /proc/self/exe:", os.Chmod("/proc/self/exe", 0o4777))
		fmt.Println("setxattr /proc/self/exe:", unix.Setxattr("/proc/self/exe", "user.x", []byte("x"), 0))
		return nil
	},
	// keyring ID: the server's key, by its serial; then our own session
	// keyring and a key of our own for the next container.
	"keyring": func(args []string) error {
		id, _ := strconv.Atoi(args[0])
		buf := make([]byte, 256)
		_, rerr := unix.KeyctlBuffer(unix.KEYCTL_READ, id, buf, 0)
		_, serr := unix.KeyctlGetKeyringID(unix.KEY_SPEC_SESSION_KEYRING, false)
		_, aerr := unix.AddKey("user", "left-by-a-container", []byte("secret"), unix.KEY_SPEC_SESSION_KEYRING)
		_, uerr := unix.AddKey("user", "left-by-a-container", []byte("secret"), unix.KEY_SPEC_USER_KEYRING)
		_, qerr := unix.RequestKey("user", "playground-test-key", "", 0)
		b, _ := os.ReadFile("/proc/keys")
		var kerr error
		if len(b) > 0 {
			kerr = nil
		} else {
			kerr = errors.New("empty")
		}
		return mustFail(try{"read the server's key", rerr}, try{"session keyring id", serr},
			try{"add a key to the session keyring", aerr}, try{"add a key to the user keyring", uerr},
			try{"request_key", qerr}, try{"read /proc/keys", kerr})
	},
	"namespaces": func([]string) error {
		return mustFail(
			try{"unshare user", unix.Unshare(unix.CLONE_NEWUSER)},
			try{"unshare net", unix.Unshare(unix.CLONE_NEWNET)},
			try{"unshare mount", unix.Unshare(unix.CLONE_NEWNS)},
			try{"unshare cgroup", unix.Unshare(unix.CLONE_NEWCGROUP)},
			try{"clone user", sysErr(unix.RawSyscall(unix.SYS_CLONE, unix.CLONE_NEWUSER|uintptr(syscall.SIGCHLD), 0, 0))},
			try{"setns /proc/1/ns/net", func() error {
				f, err := os.Open("/proc/1/ns/net")
				if err != nil {
					return err
				}
				defer f.Close()
				return unix.Setns(int(f.Fd()), 0)
			}()},
		)
	},
	"posture": func(args []string) error {
		if v := statusField("self", "NoNewPrivs"); v != "1" {
			return escaped("NoNewPrivs %q", v)
		}
		if v := statusField("self", "Seccomp"); v != "2" {
			return escaped("Seccomp %q", v)
		}
		if v := statusField("self", "CapBnd"); v != fmt.Sprintf("%016x", initproc.KeptMask()) {
			return escaped("CapBnd %s", v)
		}
		b, err := os.ReadFile("/proc/self/cgroup")
		if err != nil {
			return escaped("read /proc/self/cgroup: %v", err)
		}
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if !strings.HasSuffix(l, ":/") {
				return escaped("/proc/self/cgroup names a host cgroup: %q", l)
			}
		}
		es, _ := os.ReadDir("/sys/firmware")
		if len(es) > 0 {
			return escaped("/sys/firmware has %d entries", len(es))
		}
		mi, err := os.ReadFile("/proc/self/mountinfo")
		if err != nil {
			return escaped("read mountinfo: %v", err)
		}
		for _, s := range args {
			if strings.Contains(string(mi), s) {
				return escaped("mountinfo names the host path %s:\n%s", s, mi)
			}
		}
		return nil
	},
	"proc-files": func([]string) error {
		for _, p := range []string{"/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug"} {
			b, err := os.ReadFile(p)
			if err == nil && len(b) > 0 {
				return escaped("%s: %d bytes", p, len(b))
			}
			fmt.Printf("read %s: %d bytes, %v\n", p, len(b), err)
		}
		return mustFail(
			try{"write /proc/sysrq-trigger", os.WriteFile("/proc/sysrq-trigger", []byte("h"), 0)},
			try{"write core_pattern", os.WriteFile("/proc/sys/kernel/core_pattern", []byte("|/tmp/x"), 0)},
			try{"write /sys/kernel/uevent_helper", os.WriteFile("/sys/kernel/uevent_helper", []byte("/tmp/x"), 0)},
			try{"write /sys/class/net/lo/mtu", os.WriteFile("/sys/class/net/lo/mtu", []byte("1280"), 0)},
			try{"write release_agent", os.WriteFile("/sys/fs/cgroup/release_agent", []byte("/tmp/x"), 0o644)},
			try{"write drop_caches", os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0)},
		)
	},
	// connect "HOST PORT"...: host loopback services must be out of reach.
	// (No package net here: it would make this binary need libc.)
	"connect": func(args []string) error {
		for _, a := range args {
			host, port, _ := strings.Cut(a, " ")
			n, _ := strconv.Atoi(port)
			var sa unix.Sockaddr = &unix.SockaddrInet4{Port: n, Addr: [4]byte{127, 0, 0, 1}}
			family := unix.AF_INET
			if host == "::1" {
				sa, family = &unix.SockaddrInet6{Port: n, Addr: [16]byte{15: 1}}, unix.AF_INET6
			}
			fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err == nil {
				err = unix.Connect(fd, sa)
				_ = unix.Close(fd)
			}
			if err == nil {
				return escaped("connected to %s", a)
			}
			fmt.Printf("connect %s: %v\n", a, err)
		}
		return nil
	},
	// kill-all: kill -9 -1 ends every process of the container but init
	// and the caller (Linux spares it); a child shows that it happened.
	"kill-all": func([]string) error {
		pid, err := syscall.ForkExec("/bin/sleep", []string{"sleep", "100"}, &syscall.ProcAttr{})
		if err != nil {
			return escaped("start sleep: %v", err)
		}
		fmt.Println("kill -9 -1:", unix.Kill(-1, unix.SIGKILL))
		var ws syscall.WaitStatus
		if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil || ws.Signal() != syscall.SIGKILL {
			return escaped("the container's own sleep: %v, %v", ws, err)
		}
		return nil
	},
	"tiocsti": func([]string) error {
		c := byte('x')
		high := uint64(1) << 32 // a variable: on 32-bit machines the conversion drops it
		return mustFail(
			try{"TIOCSTI", sysErr(unix.Syscall(unix.SYS_IOCTL, 0, unix.TIOCSTI, uintptr(unsafe.Pointer(&c))))},
			try{"TIOCSTI | 1<<32", sysErr(unix.Syscall(unix.SYS_IOCTL, 0, uintptr(uint64(unix.TIOCSTI)|high), uintptr(unsafe.Pointer(&c))))},
			try{"TIOCLINUX", sysErr(unix.Syscall(unix.SYS_IOCTL, 0, unix.TIOCLINUX, uintptr(unsafe.Pointer(&c))))},
		)
	},
	// The filter compares a 64-bit argument in two halves: a family the
	// profile refuses, with a high half the kernel ignores (socket's
	// family is an int), must still meet the filter's EPERM. Any other
	// answer, a socket or the kernel's own error, means the filter let it
	// through: go-seccomp-bpf's layout once allowed AF_VSOCK with 16 or 56
	// in the high half.
	"socket-families": func([]string) error {
		for _, fam := range []uint64{unix.AF_VSOCK, unix.AF_ALG, unix.AF_APPLETALK, 46} {
			for _, hi := range []uint64{0, 1, 16, 56, 0x8000, 0xffffffff} {
				f := fam | hi<<32
				fd, _, e := unix.Syscall(unix.SYS_SOCKET, uintptr(f), unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
				if e == 0 {
					_ = unix.Close(int(fd))
					return escaped("socket(%#x): a socket of family %d", f, fam)
				}
				if e != unix.EPERM {
					return escaped("socket(%#x): %v, not the filter's EPERM", f, e)
				}
			}
		}
		fmt.Println("socket of a refused family, with any high half: EPERM")
		return nil
	},
	"mknod": func([]string) error {
		return mustFail(
			try{"mknod char 1:3", unix.Mknod("/tmp/null", unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3)))},
			try{"mknod block 254:0", unix.Mknod("/tmp/disk", unix.S_IFBLK|0o666, int(unix.Mkdev(254, 0)))},
			try{"open a host disk", func() error {
				f, err := os.Open("/dev/vda")
				if err == nil {
					f.Close()
				}
				return err
			}()},
		)
	},
	// setuid: run as a user other than root; the named setuid-root
	// program must not make it root.
	"whoami": func([]string) error {
		fmt.Printf("uid %d euid %d caps %s\n", os.Getuid(), os.Geteuid(), statusField("self", "CapEff"))
		if os.Geteuid() == 0 && os.Getuid() != 0 {
			return escaped("euid 0 from a setuid binary")
		}
		if os.Getuid() != 0 && statusField("self", "CapEff") != "0000000000000000" {
			return escaped("a user other than root has capabilities")
		}
		return nil
	},
	"setfcap": func([]string) error {
		// A v2 security.capability granting CAP_SYS_ADMIN, effective.
		v := make([]byte, 20)
		putLE := func(b []byte, x uint32) { b[0], b[1], b[2], b[3] = byte(x), byte(x>>8), byte(x>>16), byte(x>>24) }
		putLE(v[0:], 0x02000001) // VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE
		putLE(v[4:], 1<<unix.CAP_SYS_ADMIN)
		_ = os.WriteFile("/tmp/capfile", []byte("x"), 0o755)
		return mustFail(try{"setcap cap_sys_admin", unix.Setxattr("/tmp/capfile", "security.capability", v, 0)})
	},
	"kernel-interfaces": func([]string) error {
		return mustFail(
			try{"perf_event_open", sysErr(unix.Syscall6(unix.SYS_PERF_EVENT_OPEN, 0, 0, ^uintptr(0), ^uintptr(0), 0, 0))},
			try{"bpf", sysErr(unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_LOAD, 0, 0))},
			try{"io_uring_setup", sysErr(unix.Syscall(unix.SYS_IO_URING_SETUP, 1, 0, 0))},
			try{"userfaultfd", sysErr(unix.Syscall(unix.SYS_USERFAULTFD, 0, 0, 0))},
			try{"kexec_load", sysErr(unix.Syscall6(unix.SYS_KEXEC_LOAD, 0, 0, 0, 0, 0, 0))},
			try{"init_module", sysErr(unix.Syscall(unix.SYS_INIT_MODULE, 0, 0, 0))},
		)
	},
	// inotify: take inotify instances until refused, say how many and
	// why ("held N errno"), and hold them until a line comes on stdin
	// (TestInotifyExhaustion). Escaped when it got more than its user
	// namespace's cap.
	"inotify": func([]string) error {
		var n int
		var err error
		for n < 1000 {
			if _, err = unix.InotifyInit1(unix.IN_CLOEXEC); err != nil {
				break
			}
			n++
		}
		fmt.Printf("held %d %v\n", n, err)
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
		if n > sessionInotifyInstances {
			return escaped("%d inotify instances, above the session's %d", n, sessionInotifyInstances)
		}
		return nil
	},
	// inotify-uids K, sigqueue-uids K, mqueue-uids K, fork-uids K: what
	// the kernel counts per user, taken as each of the session's user ids
	// 0 to K-1 in turn until refused (takeAsUIDs): inotify instances;
	// real-time signals queued to this thread, which blocks them
	// (RLIMIT_SIGPENDING); POSIX message queues of the kernel's default
	// size (RLIMIT_MSGQUEUE); processes (sleep; RLIMIT_NPROC). The kernel
	// counts each per user id, and at the namespace's owner all of them
	// together (TestSharedCountsPerSession, TestForkBombAcrossUids).
	"inotify-uids": func(args []string) error {
		return takeAsUIDs(args[0], func(int) error {
			_, err := unix.InotifyInit1(unix.IN_CLOEXEC)
			return err
		})
	},
	"sigqueue-uids": func(args []string) error {
		// The signals wait on this thread; a queued signal is charged to
		// the real uid of the thread it waits on.
		goruntime.LockOSThread()
		const sig = 40 // SIGRTMIN+6: not one the Go runtime or a libc uses
		var set unix.Sigset_t
		addSignal(&set, sig)
		if err := unix.PthreadSigmask(unix.SIG_BLOCK, &set, nil); err != nil {
			return escaped("block signal %d: %v", sig, err)
		}
		pid, tid := unix.Getpid(), unix.Gettid()
		return takeAsUIDs(args[0], func(int) error {
			info := [32]uint32{sig, 0, ^uint32(0)} // si_signo, si_errno, si_code SI_QUEUE (-1)
			if _, _, e := unix.RawSyscall6(unix.SYS_RT_TGSIGQUEUEINFO, uintptr(pid), uintptr(tid), sig, uintptr(unsafe.Pointer(&info)), 0, 0); e != 0 {
				return e
			}
			return nil
		})
	},
	"mqueue-uids": func(args []string) error {
		return takeAsUIDs(args[0], func(n int) error {
			name, _ := unix.BytePtrFromString(fmt.Sprintf("q%d", n))
			attr := [8]int64{0, 10, 8192, 0} // mq_flags, mq_maxmsg, mq_msgsize, mq_curmsgs
			if _, _, e := unix.Syscall6(unix.SYS_MQ_OPEN, uintptr(unsafe.Pointer(name)), unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600, uintptr(unsafe.Pointer(&attr)), 0, 0); e != 0 {
				return e
			}
			return nil
		})
	},
	"fork-uids": func(args []string) error {
		return takeAsUIDs(args[0], func(int) error {
			_, err := syscall.ForkExec("/bin/sleep", []string{"sleep", "1000"}, nil)
			return err
		})
	},
	// tcp-fill N: N TCP connections to itself over the container's
	// loopback, each sent to until its buffers are full, nothing read;
	// says how much it queued ("queued BYTES") and holds it until a line
	// comes on stdin (TestSocketMemory).
	"tcp-fill": func(args []string) error {
		n, _ := strconv.Atoi(args[0])
		ls, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err == nil {
			err = unix.Bind(ls, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}})
		}
		if err == nil {
			err = unix.Listen(ls, 4096)
		}
		sa, err2 := unix.Getsockname(ls)
		if err != nil || err2 != nil {
			fmt.Println("listen:", err, err2)
			return nil
		}
		buf := make([]byte, 64<<10)
		var queued int64
		for i := 0; i < n; i++ {
			c, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err == nil {
				err = unix.Connect(c, sa)
			}
			if err == nil {
				_, _, err = unix.Accept(ls)
			}
			if err == nil {
				err = unix.SetNonblock(c, true)
			}
			if err != nil {
				fmt.Printf("connection %d: %v\n", i, err)
				break
			}
			for {
				k, err := unix.Write(c, buf)
				if err != nil {
					break // EAGAIN: full, or refused memory
				}
				queued += int64(k)
			}
		}
		fmt.Printf("queued %d\n", queued)
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
		return nil
	},
	// sysv-ipc: what the session's IPC namespace lets it take of the
	// kernel's memory, without touching a page: shared memory segments of
	// 16 MiB (each reserved against kernel.shmall), semaphore sets of 250
	// and message queues, each until refused or at a cap (4 GiB, 400 sets,
	// 1000 queues) far above the session's bounds. It prints the namespace's
	// limits as /proc shows them and "ipc shm BYTES sems N queues Q", and
	// fails if it could raise a limit (TestSysVIPCBounded). A set or queue is
	// kernel memory until the namespace goes, which no process's size shows.
	"sysv-ipc": func([]string) error {
		for _, f := range []string{"shmall", "shmmax", "sem", "msgmni"} {
			b, err := os.ReadFile("/proc/sys/kernel/" + f)
			fmt.Printf("kernel.%s %s %v\n", f, strings.TrimSpace(string(b)), err)
		}
		var shm int64
		for shm < 4<<30 {
			if _, err := unix.SysvShmGet(unix.IPC_PRIVATE, 16<<20, unix.IPC_CREAT|0o600); err != nil {
				fmt.Println("shmget:", err)
				break
			}
			shm += 16 << 20
		}
		var sems, queues int
		for sems < 400*250 {
			if _, _, e := unix.Syscall(unix.SYS_SEMGET, unix.IPC_PRIVATE, 250, unix.IPC_CREAT|0o600); e != 0 {
				fmt.Println("semget:", e)
				break
			}
			sems += 250
		}
		for queues < 1000 {
			if _, _, e := unix.Syscall(unix.SYS_MSGGET, unix.IPC_PRIVATE, unix.IPC_CREAT|0o600, 0); e != 0 {
				fmt.Println("msgget:", e)
				break
			}
			queues++
		}
		fmt.Printf("ipc shm %d sems %d queues %d\n", shm, sems, queues)
		return mustFail(
			try{"write /proc/sys/kernel/shmall", os.WriteFile("/proc/sys/kernel/shmall", []byte("18446744073692774399"), 0)},
			try{"write /proc/sys/kernel/sem", os.WriteFile("/proc/sys/kernel/sem", []byte("32000 1024000000 500 32000"), 0)},
		)
	},
	// list-dev: no attempt, an inventory for TestDevNodes: every entry
	// under /dev, as "dev NAME KIND", where KIND is "char MAJ:MIN", "dir
	// FSTYPE" or "-> TARGET".
	"list-dev": func([]string) error {
		return filepath.WalkDir("/dev", func(p string, _ os.DirEntry, err error) error {
			if err != nil {
				return escaped("walk %s: %v", p, err)
			}
			if p == "/dev" {
				return nil
			}
			var st unix.Stat_t
			if err := unix.Lstat(p, &st); err != nil {
				return escaped("lstat %s: %v", p, err)
			}
			kind := fmt.Sprintf("mode %o", st.Mode)
			switch st.Mode & unix.S_IFMT {
			case unix.S_IFCHR:
				kind = fmt.Sprintf("char %d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
			case unix.S_IFBLK:
				kind = fmt.Sprintf("block %d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
			case unix.S_IFLNK:
				l, _ := os.Readlink(p)
				kind = "-> " + l
			case unix.S_IFDIR:
				var fs unix.Statfs_t
				_ = unix.Statfs(p, &fs) // a zero type names no file system
				kind = "dir " + fsName(int64(fs.Type))
			}
			fmt.Printf("dev %s %s\n", strings.TrimPrefix(p, "/dev/"), kind)
			return nil
		})
	},
	// masks FILE:P... DIR:P... RO:P...: each masked file must read empty
	// and be the null device, each masked directory must list nothing and
	// be an empty read-only tmpfs, and nothing may be created in a
	// read-only directory (EROFS: the mount's answer, before any
	// permission's).
	"masks": func(args []string) error {
		for _, a := range args {
			kind, p, _ := strings.Cut(a, ":")
			switch kind {
			case "FILE":
				b, err := os.ReadFile(p)
				if err != nil || len(b) > 0 {
					return escaped("read %s: %d bytes, %v", p, len(b), err)
				}
				var st unix.Stat_t
				if err := unix.Stat(p, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(1, 3) {
					return escaped("%s is not the null device: mode %o rdev %d:%d, %v", p, st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev), err)
				}
				fmt.Printf("%s: 0 bytes, the null device\n", p)
			case "DIR":
				es, err := os.ReadDir(p)
				if err != nil || len(es) > 0 {
					return escaped("list %s: %d entries, %v", p, len(es), err)
				}
				var fs unix.Statfs_t
				if err := unix.Statfs(p, &fs); err != nil || fs.Type != unix.TMPFS_MAGIC {
					return escaped("%s is %s, not a tmpfs: %v", p, fsName(int64(fs.Type)), err)
				}
				if err := mustBeReadOnly(p); err != nil {
					return err
				}
				fmt.Printf("%s: no entries, an empty tmpfs\n", p)
			case "RO":
				if err := mustBeReadOnly(p); err != nil {
					return err
				}
			default:
				return escaped("bad argument %q", a)
			}
		}
		return nil
	},
	// wait: print the marker and wait for input, for the posture test.
	"wait": func([]string) error {
		// What the host may not be able to read (TestPosture), first:
		// the namespaces and fds as the program sees them.
		for _, ns := range []string{"user", "pid", "mnt", "uts", "ipc", "net", "cgroup"} {
			l, _ := os.Readlink("/proc/self/ns/" + ns)
			fmt.Printf("ns %s=%s\n", ns, l)
		}
		es, _ := os.ReadDir("/proc/self/fd")
		var fds []string
		for _, e := range es {
			l, _ := os.Readlink("/proc/self/fd/" + e.Name())
			fds = append(fds, e.Name()+"="+l)
		}
		// The last is ReadDir's own, closed by now.
		fmt.Printf("fds=%s\n", strings.Join(fds[:max(len(fds)-1, 0)], " "))
		slack, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
		fmt.Printf("timer slack=%d %v\n", slack, err)
		fmt.Println("waiting")
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
		return nil
	},
}

// mustBeReadOnly tries to change dir and its first entry, and to create a
// file and a directory in it. A change of mode or times asks the mount for
// write access before any permission check, so EROFS says that the mount
// is read-only (on a writable one container root gets EPERM, not owning
// the host's files); a create must fail too, though proc answers a name it
// lacks with ENOENT before the mount is asked.
func mustBeReadOnly(dir string) error {
	paths := []string{dir}
	if es, err := os.ReadDir(dir); err == nil && len(es) > 0 {
		paths = append(paths, filepath.Join(dir, es[0].Name()))
	}
	for _, p := range paths {
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return escaped("lstat %s: %v", p, err)
		}
		cerr := unix.Fchmodat(unix.AT_FDCWD, p, st.Mode&0o7777, 0)
		uerr := unix.UtimesNanoAt(unix.AT_FDCWD, p, nil, unix.AT_SYMLINK_NOFOLLOW)
		if !errors.Is(cerr, unix.EROFS) || !errors.Is(uerr, unix.EROFS) {
			return escaped("%s: chmod: %v, utimes: %v; want EROFS (a read-only mount)", p, cerr, uerr)
		}
		fmt.Printf("%s: chmod and utimes: %v\n", p, cerr)
	}
	name := filepath.Join(dir, "playground-test")
	fd, err := unix.Open(name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	if err == nil {
		_ = unix.Close(fd)
		return escaped("created %s", name)
	}
	merr := unix.Mkdir(name+".d", 0o755)
	if merr == nil {
		return escaped("made directory %s.d", name)
	}
	fmt.Printf("%s: create: %v, mkdir: %v\n", dir, err, merr)
	return nil
}

// fsName names the file systems /dev and the masks are made of.
func fsName(magic int64) string {
	switch magic {
	case unix.TMPFS_MAGIC:
		return "tmpfs"
	case unix.DEVPTS_SUPER_MAGIC:
		return "devpts"
	case unix.PROC_SUPER_MAGIC:
		return "proc"
	case unix.SYSFS_MAGIC:
		return "sysfs"
	}
	return fmt.Sprintf("fs-%#x", magic)
}

// takeAsUIDs calls take, as each of the user ids 0 to k (a number) - 1 in
// turn, real and effective (0 kept saved, to come back), until it fails,
// with the number taken so far; says how many it took in all and the last
// refusal ("held N errno"), and holds them until a line comes on stdin.
// A user id that cannot be had (one not mapped) ends it.
func takeAsUIDs(k string, take func(n int) error) error {
	uids, _ := strconv.Atoi(k)
	var n int
	var err error
	for uid := 0; uid < uids; uid++ {
		if e := syscall.Setresuid(uid, uid, 0); e != nil {
			fmt.Printf("setuid %d: %v\n", uid, e)
			break
		}
		for n < 1000000 {
			if err = take(n); err != nil {
				break
			}
			n++
		}
		if e := syscall.Setresuid(0, 0, 0); e != nil {
			return escaped("back to uid 0: %v", e)
		}
	}
	fmt.Printf("held %d %v\n", n, err)
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	return nil
}
