package runtime

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/guntainer/playground/internal/testenv"
	"github.com/guntainer/playground/runtime/internal/initproc"
	"golang.org/x/sys/unix"
)

// attackRootfs is a busybox root file system with the attacker in it
// (/bin/attacker, this test binary), the two foreign-ABI programs
// (/bin/int80, /bin/x32) and, where its root can own it (as root, and
// with subordinate ids), a setuid-root copy of the attacker
// (/bin/suid-attacker).
func attackRootfs(t *testing.T, m hostMode) string {
	suid := os.Getuid() == 0 || m.subIDs()
	t.Helper()
	dir := busyboxRootfs(t)
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"bin/attacker": self}
	if suid {
		files["bin/suid-attacker"] = self
	}
	for _, abi := range []string{"int80", "x32"} {
		files["bin/"+abi] = foreignABIProgram(t, abi)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copyLibraries(t, "/proc/self/exe", dir)
	if suid {
		if err := os.Chmod(filepath.Join(dir, "bin/suid-attacker"), 0o4755); err != nil {
			t.Fatal(err)
		}
	}
	return forMode(t, m, dir)
}

// copyLibraries copies into root what the executable bin needs to run
// there when it is dynamically linked (a test binary is when a package it
// links uses cgo, as package net does): its ELF interpreter and the shared
// libraries it names, at the host's paths.
func copyLibraries(t *testing.T, bin, root string) {
	t.Helper()
	need, err := elfLibraries(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range need {
		b, err := os.ReadFile(p) // through symlinks: the file itself
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// fileState is a file's hash and mode, to see that nothing changed it.
func fileState(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s %v", hex.EncodeToString(h.Sum(nil)), fi.Mode())
}

// bystander is a second container that must keep answering whatever the
// attacker does.
type bystander struct {
	c *Container
	o *output
	n int
}

func newBystander(t *testing.T, m hostMode, rootfs string) *bystander {
	c := startMode(t, m, Spec{Rootfs: rootfs, Args: []string{"/bin/sh"}})
	return &bystander{c: c, o: readAll(c)}
}

// check has the other container answer a command, and returns how long
// the answer took.
func (b *bystander) check(t *testing.T) time.Duration {
	t.Helper()
	b.n++
	t0 := time.Now()
	if _, err := fmt.Fprintf(b.c, "echo alive-$((%d+1))\n", b.n-1); err != nil {
		t.Fatalf("the other container: %v", err)
	}
	b.o.waitFor(t, fmt.Sprintf("alive-%d", b.n))
	return time.Since(t0)
}

// TestEscapes tries, from inside a real container, what an attacker did to
// the namespaces-only containers of before: each attempt must be refused,
// and afterwards a container started before it and one started after it
// must both still work, and the host's binaries must be unchanged.
func TestEscapes(t *testing.T) {
	for _, m := range testModes(t) {
		t.Run(m.name, func(t *testing.T) { testEscapes(t, m) })
	}
}

func testEscapes(t *testing.T, m hostMode) {
	rootfs := attackRootfs(t, m)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	hostFiles := []string{self, filepath.Join(rootfs, "bin/attacker")}
	before := map[string]string{}
	for _, p := range hostFiles {
		before[p] = fileState(t, p)
	}

	// A service on the host's loopback, as the server's own port is
	// (listening is enough: connect completes in the kernel's backlog).
	port := loopbackListener(t)
	// A key in this process's (the server's) session keyring.
	key, err := unix.AddKey("user", "playground-test-key", []byte("the server's secret"), unix.KEY_SPEC_SESSION_KEYRING)
	if err != nil {
		t.Fatalf("add a key to the test's session keyring: %v", err)
	}
	defer unix.KeyctlInt(unix.KEYCTL_INVALIDATE, key, 0, 0, 0)

	other := newBystander(t, m, rootfs)
	other.check(t)
	state := testStateDir(t)

	tests := []struct {
		name string
		args []string
		spec Spec
	}{
		{name: "capabilities cannot be raised", args: []string{"raise-caps"}},
		{name: "masks cannot be unmounted", args: []string{"umount-mask"}},
		{name: "read-only mounts stay read-only", args: []string{"remount-rw"}},
		{name: "no fresh proc, sysfs, tmpfs, bind or cgroup mounts", args: []string{"fresh-mounts"}},
		{name: "init's fds are out of reach", args: []string{"init-fds"}},
		{name: "init cannot be traced", args: []string{"ptrace-init"}},
		{name: "init's executable cannot be changed", args: []string{"init-exe"}},
		{name: "own executable", args: []string{"self-exe"}},
		{name: "keyrings", args: []string{"keyring", strconv.Itoa(key)}},
		{name: "no new namespaces", args: []string{"namespaces"}},
		{name: "posture from inside", args: []string{"posture", state, rootfs}},
		{name: "host's proc and sys files", args: []string{"proc-files"}},
		{name: "host loopback services", args: []string{"connect", "127.0.0.1 " + port, "127.0.0.1 22", "::1 " + port}},
		{name: "terminal input injection", args: []string{"tiocsti"}},
		{name: "socket families the profile refuses", args: []string{"socket-families"}},
		{name: "device nodes", args: []string{"mknod"}},
		{name: "file capabilities", args: []string{"setfcap"}},
		{name: "perf, bpf, io_uring, userfaultfd, kexec, modules", args: []string{"kernel-interfaces"}},
		{name: "kill -9 -1", args: []string{"kill-all"}},
	}
	for _, tt := range tests {
		if m.programIsInit && strings.HasPrefix(tt.name, "init") {
			// No init to attack: PID 1 is the attacker itself, and that
			// no process of the runtime is left in such a container is
			// TestProgramIsInit's to check, from the host.
			continue
		}
		t.Run(tt.name, func(t *testing.T) {
			spec := tt.spec
			spec.Rootfs = rootfs
			spec.Args = append([]string{"/bin/attacker"}, tt.args...)
			out, st := runMode(t, m, spec)
			switch {
			case strings.Contains(out, "ESCAPED"):
				t.Errorf("got through:\n%s", out)
			case st.Code != 0 || !strings.Contains(out, "refused"):
				t.Errorf("%v:\n%s", st, out)
			}
			t.Logf("%s", out)
			other.check(t)
			if after, _ := runMode(t, m, Spec{Rootfs: rootfs, Args: sh("echo fresh")}); after != "fresh\n" {
				t.Errorf("a new container after it: %q", after)
			}
			for _, p := range hostFiles {
				if got := fileState(t, p); got != before[p] {
					t.Errorf("host file %s changed: %s, was %s", p, got, before[p])
				}
			}
		})
	}

	t.Run("foreign ABIs", func(t *testing.T) {
		// The same int 0x80 program on the host first: where unshare works
		// there, a refusal inside is the container's. Some machines have no
		// int 0x80 entry at all (a PVM guest answers it with a general
		// protection fault, SIGSEGV): there nothing is refused to anyone,
		// and the container's run need only not succeed.
		p := filepath.Join(t.TempDir(), "int80")
		if err := os.WriteFile(p, foreignABIProgram(t, "int80"), 0o755); err != nil {
			t.Fatal(err)
		}
		hostInt80 := true
		if err := exec.Command(p).Run(); err != nil {
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGSEGV {
				t.Fatalf("int80 on the host: %v, want unshare to work there", err)
			}
			hostInt80 = false
			t.Logf("int80 on the host: %v: this machine has no int 0x80 system call entry", err)
		}
		for _, abi := range []string{"int80", "x32"} {
			_, st := runMode(t, m, Spec{Rootfs: rootfs, Args: []string{"/bin/" + abi}})
			t.Logf("%s in the container: %v", abi, st)
			switch {
			case st.Code == 0 && !st.Signaled():
				t.Errorf("%s: unshare(CLONE_NEWUSER) worked in the container", abi)
			case abi == "int80" && !hostInt80:
				// Refused by the machine before our filter sees it.
			case st.Signaled():
				// The program exits with the errno of unshare(CLONE_NEWUSER).
				t.Errorf("%s: unshare(CLONE_NEWUSER) %v, want an errno", abi, st)
			}
		}
		other.check(t)
	})

	t.Run("setuid", func(t *testing.T) {
		if os.Getuid() != 0 && !m.subIDs() {
			// Only container root is mapped with the single-id map: no
			// other user to run as, and a clear error for asking.
			_, err := Start(Spec{Rootfs: rootfs, User: "1000", Args: []string{"/bin/attacker", "whoami"}, StateDir: state, Host: m.host})
			if err == nil || !strings.Contains(err.Error(), "not mapped") {
				t.Errorf("Start as user 1000 with a single-id map: %v, want a clear error", err)
			}
			return
		}
		out, st := runMode(t, m, Spec{Rootfs: rootfs, User: "1000:1000", Args: []string{"/bin/suid-attacker", "whoami"}})
		if st.Code != 0 || !strings.Contains(out, "uid 1000 euid 1000 caps 0000000000000000") {
			t.Errorf("setuid-root binary as user 1000: %v:\n%s", st, out)
		}
		other.check(t)
	})

	t.Run("host tools: strace -p 1, keyctl, unshare", func(t *testing.T) {
		testenv.NeedCommand(t, "strace")
		testenv.NeedCommand(t, "keyctl")
		script := fmt.Sprintf(`strace -p 1 -e trace=none 2>&1 | head -1; echo "strace=$?"
keyctl print %d 2>&1; echo "print=$?"
keyctl show @s 2>&1 | head -2; keyctl padd user k @s </dev/null 2>&1; echo "padd=$?"
unshare -U -r true 2>&1; echo "unshare-user=$?"; unshare -n true 2>&1; echo "unshare-net=$?"`, key)
		out, _ := runMode(t, m, Spec{Args: sh(script)})
		testenv.NeedCommand(t, "unshare")
		for _, bad := range []string{"the server's secret", "print=0", "padd=0", "unshare-user=0", "unshare-net=0"} {
			if strings.Contains(out, bad) {
				t.Errorf("got %q:\n%s", bad, out)
			}
		}
		if !strings.Contains(out, "Operation not permitted") {
			t.Errorf("want refusals:\n%s", out)
		}
		t.Logf("%s", out)
		other.check(t)
	})
}

// loopbackListener listens on the host's 127.0.0.1 and ::1 on one port,
// without package net, which would make this test binary (the attacker
// too) need libc, and returns the port.
func loopbackListener(t *testing.T) string {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 16); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	port := sa.(*unix.SockaddrInet4).Port
	if fd6, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0); err == nil {
		t.Cleanup(func() { _ = unix.Close(fd6) })
		if unix.Bind(fd6, &unix.SockaddrInet6{Port: port, Addr: [16]byte{15: 1}}) == nil {
			_ = unix.Listen(fd6, 16)
		}
	}
	return strconv.Itoa(port)
}

// programPid is the host pid of a container's program: init's child.
func programPid(t *testing.T, c *Container) int {
	t.Helper()
	if c.programIsInit {
		return c.Pid()
	}
	kids := childrenOf(c.Pid()) // programinit_linux_test.go
	if len(kids) == 0 {
		t.Fatalf("no child of init %d", c.Pid())
	}
	pid, _ := strconv.Atoi(kids[0])
	return pid
}

// TestPosture reads, from the host, what a live container's program holds,
// and compares it with what it should.
func TestPosture(t *testing.T) {
	for _, m := range testModes(t) {
		t.Run(m.name, func(t *testing.T) { testPosture(t, m) })
	}
}

// TestPostureWithoutSpawner: the same where the server forks init itself
// (no spawner: HostOptions.NoSpawner, or one that ended), with Go's
// ForkExec, a copy of the server, not the spawner's shared clone.
func TestPostureWithoutSpawner(t *testing.T) {
	noSpawner = true
	defer func() { noSpawner = false }()
	TestPosture(t)
}

func testPosture(t *testing.T, m hostMode) {
	rootfs := attackRootfs(t, m)
	shared := spawnedShared.Load()
	c := startMode(t, m, Spec{Rootfs: rootfs, Args: []string{"/bin/attacker", "wait"}})
	o := readAll(c)
	o.waitFor(t, "waiting")
	pid := strconv.Itoa(programPid(t, c))

	got, want := map[string]string{}, map[string]string{}
	mask := fmt.Sprintf("%016x", initproc.KeptMask())
	for k, v := range map[string]string{"CapInh": "0000000000000000", "CapPrm": mask, "CapEff": mask, "CapBnd": mask,
		"CapAmb": "0000000000000000", "NoNewPrivs": "1", "Seccomp": "2", "Seccomp_filters": "1"} {
		want["status "+k] = v
		got["status "+k] = statusField(pid, k)
	}
	// The program's namespaces and fds, from the host's /proc. With
	// subordinate ids the server's user may not read them (the program
	// runs as another host uid: ptrace access is refused, as it should
	// be), and the program's own account, from inside, stands in: the
	// namespaces' inode numbers are the same inside and out.
	said := map[string]string{}
	for _, l := range strings.Split(o.String(), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), "="); ok && (strings.HasPrefix(k, "ns ") || k == "fds" || k == "timer slack") {
			said[k] = v
		}
	}
	for _, ns := range []string{"user", "pid", "mnt", "uts", "ipc", "net", "cgroup"} {
		host, _ := os.Readlink("/proc/self/ns/" + ns)
		in, err := os.Readlink("/proc/" + pid + "/ns/" + ns)
		if errors.Is(err, os.ErrPermission) && m.subIDs() {
			in, err = said["ns "+ns], nil
		}
		want["ns "+ns] = "own"
		got["ns "+ns] = "own"
		if err != nil || in == host || in == "" {
			got["ns "+ns] = fmt.Sprintf("%s (the host's %s): %v", in, host, err)
		}
	}
	fds, err := os.ReadDir("/proc/" + pid + "/fd")
	switch {
	case errors.Is(err, os.ErrPermission) && m.subIDs():
		got["fds"] = said["fds"]
	case err != nil:
		t.Fatal(err)
	default:
		var names []string
		for _, f := range fds {
			l, _ := os.Readlink("/proc/" + pid + "/fd/" + f.Name())
			names = append(names, f.Name()+"="+l)
		}
		got["fds"] = strings.Join(names, " ")
	}
	want["fds"] = "0=/dev/pts/0 1=/dev/pts/0 2=/dev/pts/0"
	// The server's timer slack, not the coarser one init started with
	// (initproc.StartTimerSlack).
	want["timer slack"] = fmt.Sprintf("%d <nil>", programTimerSlack())
	got["timer slack"] = said["timer slack"]
	uidMap := strings.Join(strings.Fields(readFile(t, "/proc/"+pid+"/uid_map")), " ")
	want["uid_map"] = fmt.Sprintf("0 %d 1", os.Getuid())
	switch {
	case os.Getuid() == 0:
		want["uid_map"] = fmt.Sprintf("0 %d %d", hostUID(t, c.Pid()), rangeSize)
	case m.subIDs():
		want["uid_map"] = fmt.Sprintf("0 %d %d", m.host.subIDs.UIDBase, subIDSize)
		// Never the server's uid, not even init's.
		want["host uid of init"] = strconv.Itoa(m.host.subIDs.UIDBase)
		got["host uid of init"] = strconv.Itoa(hostUID(t, c.Pid()))
		want["host uid of the program"] = strconv.Itoa(m.host.subIDs.UIDBase)
		got["host uid of the program"] = strconv.Itoa(hostUID(t, programPid(t, c)))
	}
	got["uid_map"] = uidMap
	// The spawner's clone shared its memory where it can (cloneInit):
	// init's maps are written after its exec in every mode.
	want["the clone shared the spawner's memory"] = strconv.FormatBool(vforkHere && !noSpawner)
	got["the clone shared the spawner's memory"] = strconv.FormatBool(spawnedShared.Load() == shared+1)
	// Init ran as the server's uid, unmapped, until the maps came and it
	// made itself container root (initproc.BecomeRoot): never as host
	// root once the container is built, as root's server neither.
	if os.Getuid() == 0 {
		want["init's host uid"] = "not 0"
		got["init's host uid"] = "not 0"
		if u := hostUID(t, c.Pid()); u == 0 {
			got["init's host uid"] = "0"
		}
	}
	// What init was executed from (initExecutable): a sealed copy in
	// memory, of the embedded init binary in a build that has one (CI runs
	// this test so too: deploy/build.sh -test), else of this binary. With
	// subordinate ids, init runs as a host uid the server's user may not
	// read the executable of. (A program that is init has replaced it.)
	if exe, seals, err := executable(c.Pid()); !m.programIsInit && (!errors.Is(err, os.ErrPermission) || !m.subIDs()) {
		want["init's executable"] = "/memfd:playground (deleted) sealed"
		if len(embeddedInit) > 0 {
			want["init's executable"] = "/memfd:playground-init (deleted) sealed"
		}
		const sealed = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
		got["init's executable"] = fmt.Sprintf("%s seals %#x: %v", exe, seals, err)
		if err == nil && seals&sealed == sealed {
			got["init's executable"] = exe + " sealed"
		}
	}
	mi := readFile(t, "/proc/"+pid+"/mountinfo")
	for _, host := range []string{testStateDir(t), rootfs} {
		want["mountinfo names "+host] = "false"
		got["mountinfo names "+host] = strconv.FormatBool(strings.Contains(mi, host))
	}
	for _, line := range strings.Split(strings.TrimSpace(mi), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == "/proc/sys" || f[4] == "/usr" || f[4] == "/sys") {
			want["mount "+f[4]] = "ro"
			got["mount "+f[4]] = strings.Split(f[5], ",")[0]
		}
	}
	// The host sees the host path; inside it is "/" (the attacker's
	// posture attempt). With cgroups, the program is in its session's.
	if m.cgroups() && m.host.cgroups.version == 2 {
		var line string
		for _, l := range strings.Split(strings.TrimSpace(readFile(t, "/proc/"+pid+"/cgroup")), "\n") {
			if p, ok := strings.CutPrefix(l, "0::"); ok {
				line = p
			}
		}
		want["in its session's v2 cgroup"] = "true"
		got["in its session's v2 cgroup"] = strconv.FormatBool(strings.HasSuffix(line, "/"+filepath.Base(m.host.cgroups.Dir())+"/"+c.ID()))
	} else if m.cgroups() {
		var lines []string
		for _, l := range strings.Split(strings.TrimSpace(readFile(t, "/proc/"+pid+"/cgroup")), "\n") {
			for _, ctrl := range []string{":memory:", ":pids:", ":cpu:"} {
				if strings.Contains(l, ctrl) {
					lines = append(lines, ctrl+strconv.FormatBool(strings.HasSuffix(l, "/"+filepath.Base(m.host.cgroups.Dir())+"/"+c.ID())))
				}
			}
		}
		sort.Strings(lines)
		want["in its session's cgroup"] = ":cpu:true :memory:true :pids:true"
		got["in its session's cgroup"] = strings.Join(lines, " ")
	}

	var diff []string
	for k, w := range want {
		if got[k] != w {
			diff = append(diff, fmt.Sprintf("%s:\n\t-%s\n\t+%s", k, w, got[k]))
		}
	}
	if len(diff) > 0 {
		t.Errorf("posture of the program (pid %s), -want +got:\n%s", pid, strings.Join(diff, "\n"))
	}
	_, _ = c.Write([]byte("\n"))
}

// executable returns what process pid was executed from, and its seals.
func executable(pid int) (string, int, error) {
	p := "/proc/" + strconv.Itoa(pid) + "/exe"
	l, err := os.Readlink(p)
	if err != nil {
		return "", 0, err
	}
	f, err := os.Open(p)
	if err != nil {
		return l, 0, err
	}
	defer f.Close()
	seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
	return l, seals, err
}

// TestToolsStillWork: the hardening must leave a shell's usual tools
// working: the host's python3, cc and git, and apt-get and dpkg on a real
// Debian root file system.
func TestToolsStillWork(t *testing.T) {
	t.Run("python3, cc, git", func(t *testing.T) {
		// The container sees the host's /usr, not this process's PATH.
		for _, c := range []string{"python3", "cc", "git"} {
			if _, err := os.Stat("/usr/bin/" + c); err != nil {
				testenv.Skipf(t, "%s is not installed in the host's /usr/bin (Debian packages python3, gcc, git): %v", c, err)
			}
		}
		script := `set -e
python3 -c 'import os, subprocess, multiprocessing, threading; print("py", sum(range(10)), subprocess.run(["true"]).returncode)'
cd /tmp && printf '#include <stdio.h>\nint main(void){printf("cc %%d\\n", 6*7);return 0;}\n' > h.c && cc -o h h.c && ./h
git init -q /tmp/r && cd /tmp/r && echo x > f && git add f && git -c user.name=a -c user.email=a@b commit -qm m && git log --oneline | wc -l | sed 's/^/git /'`
		out, st := run(t, Spec{Args: sh(script)})
		if st.Code != 0 || !strings.Contains(out, "py 45 0") || !strings.Contains(out, "cc 42") || !strings.Contains(out, "git 1") {
			t.Errorf("%v:\n%s", st, out)
		}
	})
	t.Run("apt-get and dpkg on Debian", func(t *testing.T) {
		rootfs := testenv.DebianRootfs(t)
		deb := buildDeb(t)
		c := start(t, Spec{Rootfs: rootfs, Args: []string{"/bin/bash"}})
		o := readAll(c)
		// The .deb goes in through the terminal, as a user could paste it.
		script := "stty -echo; base64 -d > /tmp/hello.deb <<'EOF'\n" + deb + "\nEOF\n" +
			"apt-get --version | head -1; dpkg -i /tmp/hello.deb >/dev/null && hello-playground; " +
			"dpkg -r hello-playground >/dev/null; apt-get install -y /tmp/hello.deb >/tmp/apt.log 2>&1; echo apt=$?; tail -3 /tmp/apt.log; hello-playground; exit\n"
		if _, err := c.Write([]byte(script)); err != nil {
			t.Fatal(err)
		}
		select {
		case <-o.done:
		case <-time.After(60 * time.Second):
			t.Fatalf("timed out:\n%s", o.String())
		}
		out := o.String()
		if !strings.Contains(out, "apt ") || strings.Count(out, "hello from a package") != 2 || !strings.Contains(out, "apt=0") {
			t.Errorf("apt-get, dpkg:\n%s", out)
		}
	})
}

// buildDeb builds a small package with dpkg-deb and returns it in base64.
func buildDeb(t *testing.T) string {
	t.Helper()
	testenv.NeedCommand(t, "dpkg-deb")
	dir := t.TempDir()
	pkg := filepath.Join(dir, "pkg")
	for p, c := range map[string]string{
		"DEBIAN/control":             "Package: hello-playground\nVersion: 1.0\nArchitecture: all\nMaintainer: test <t@example.org>\nDescription: a test package\n",
		"usr/bin/hello-playground":   "#!/bin/sh\necho hello from a package\n",
		"usr/share/doc/hello/README": "test\n",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(pkg, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(pkg, p), []byte(c), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command("dpkg-deb", "--root-owner-group", "-Zgzip", "--build", pkg, filepath.Join(dir, "hello.deb")).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-deb: %v\n%s", err, out)
	}
	b, err := exec.Command("base64", filepath.Join(dir, "hello.deb")).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestMountTargetsStayInTheRoot: a root file system whose /proc, /sys,
// /tmp and /dev are symlinks (to /, /etc, a dir with null -> /proc/sys/...)
// must not redirect a mount.
func TestMountTargetsStayInTheRoot(t *testing.T) {
	rootfs := busyboxRootfs(t)
	for _, d := range []string{"proc", "sys", "tmp", "dev"} {
		if err := os.RemoveAll(filepath.Join(rootfs, d)); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{"proc": "/", "sys": "/", "tmp": "/etc"} {
		if err := os.Symlink(target, filepath.Join(rootfs, link)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(rootfs, "dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/proc/sys/kernel/hostname", filepath.Join(rootfs, "dev/null")); err != nil {
		t.Fatal(err)
	}
	out, st := run(t, Spec{Rootfs: rootfs, Args: sh(`stat -f -c '%T' /proc /sys /tmp /dev; ls /etc/passwd; ls -ld /proc/1 | cut -c1; echo x > /dev/null && hostname`)})
	want := "proc\nsysfs\ntmpfs\ntmpfs\n/etc/passwd\nd\nplayground\n"
	if st.Code != 0 || out != want {
		t.Errorf("%v: -want +got\n-%q\n+%q", st, want, out)
	}
}

// TestNothingOutlivesAServer: a server-like process that started
// containers is killed with SIGKILL; every process of their pid
// namespaces must end, and the next start must remove their mount points.
func TestNothingOutlivesAServer(t *testing.T) {
	state := filepath.Join(filepath.Dir(testStateDir(t)), "serverlike-"+strconv.Itoa(int(time.Now().UnixNano()%1e6)))
	if _, err := os.Stat("/bin/sleep"); err != nil {
		testenv.Skipf(t, "no /bin/sleep on the host: %v", err)
	}
	cmd := exec.Command("/proc/self/exe")
	cmd.Args = []string{serverlikeName, state}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line := make(chan string, 1)
	go func() {
		b := make([]byte, 256)
		n, _ := io.ReadAtLeast(stdout, b, 1)
		line <- string(b[:n])
	}()
	var inits []string
	select {
	case l := <-line:
		f := strings.Fields(l)
		if len(f) != 3 || f[0] != "inits" {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("server-like child said %q", l)
		}
		inits = f[1:]
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatal("server-like child started no containers")
	}
	var nss []string
	for _, pid := range inits {
		ns, err := os.Readlink("/proc/" + pid + "/ns/pid")
		if err != nil {
			t.Fatal(err)
		}
		nss = append(nss, ns)
	}
	// What a server killed at the wrong moment leaves in its state dir: a
	// half-made prepared host root (and an earlier version's mount point),
	// named for it.
	start, err := processStart(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	self := fmt.Sprintf("%d-%d", cmd.Process.Pid, start)
	for _, d := range []string{"h-tmp-" + self, "c-" + self + "-0123456789abcdef"} {
		if err := os.Mkdir(filepath.Join(state, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait() // killed, as it should be

	deadline := time.Now().Add(10 * time.Second)
	for {
		var alive []string
		es, _ := os.ReadDir("/proc")
		for _, e := range es {
			if _, err := strconv.Atoi(e.Name()); err != nil {
				continue
			}
			ns, _ := os.Readlink("/proc/" + e.Name() + "/ns/pid")
			for _, n := range nss {
				if ns == n {
					alive = append(alive, e.Name())
				}
			}
		}
		if len(alive) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes of the dead server's containers still run: %v", alive)
		}
		time.Sleep(10 * time.Millisecond)
	}
	n, err := CleanStateDir(state)
	if err != nil || n != 2 {
		t.Errorf("CleanStateDir: removed %d, %v; want the 2 leftovers", n, err)
	}
	if left, _ := filepath.Glob(filepath.Join(state, "c-*")); len(left) != 0 {
		t.Errorf("left: %v", left)
	}
	_ = os.RemoveAll(state)
}

const serverlikeName = "serverlike"

// maybeServerlike is the server-like child of TestNothingOutlivesAServer:
// it starts two containers (the second with its program as PID 1), says
// their inits' pids and waits to be killed.
func maybeServerlike() {
	if filepath.Base(os.Args[0]) != serverlikeName {
		return
	}
	var pids []string
	var mu sync.Mutex
	for i := range 2 {
		spec := Spec{Args: []string{"/bin/sleep", "1000"}, StateDir: os.Args[1]}
		if i == 1 {
			// The program as PID 1, and (as root) another user than
			// root, whose change clears the parent-death signal.
			spec.ProgramIsInit = true
			if os.Getuid() == 0 {
				spec.User = "1000"
			}
		}
		c, err := Start(spec)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		mu.Lock()
		pids = append(pids, strconv.Itoa(c.Pid()))
		mu.Unlock()
	}
	fmt.Println("inits", strings.Join(pids, " "))
	select {}
}
