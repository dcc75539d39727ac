package runtime

import (
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	goruntime "runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/guntainer/playground/internal/testenv"
)

// Tests this machine cannot run as they need run in a virtual machine of
// their own: qemu, under software emulation (this machine's /dev/kvm
// cannot run a guest, and CI machines may have none), booting the newest
// kernel in /boot with cgroup v1 off (cgroup_no_v1=all), so that cgroup v2
// has every controller, as on most production hosts. Its root file system
// is an initramfs this test writes: busybox, this test binary and the
// libraries it links, and the kernel modules it loads (vmModules). Inside,
// the test binary runs the tests asked for, as root, then as an ordinary
// user to whom a v2 subtree is delegated (as systemd's Delegate=yes does),
// and the VM powers off. .ci/run installs qemu-system-x86 and linux-image-amd64.

// inVMEnv is set in the VM's environment, for a test to know where it runs.
const inVMEnv = "PLAYGROUND_IN_VM"

// vmNeeds says what a VM needs that this machine lacks, or "".
func vmNeeds() (qemu, kernel, modules string, lack string) {
	if goruntime.GOARCH != "amd64" {
		return "", "", "", "a VM of this architecture (only amd64's is written)"
	}
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return "", "", "", "qemu-system-x86_64 (Debian: qemu-system-x86)"
	}
	kernels, _ := filepath.Glob("/boot/vmlinuz-*")
	slices.Sort(kernels)
	for i := len(kernels) - 1; i >= 0; i-- {
		ver := strings.TrimPrefix(filepath.Base(kernels[i]), "vmlinuz-")
		mods := filepath.Join("/lib/modules", ver)
		have := true
		for _, m := range vmModules {
			if _, err := os.Stat(filepath.Join(mods, "kernel", m)); err != nil {
				have = false
			}
		}
		if have {
			return qemu, kernels[i], mods, ""
		}
	}
	return "", "", "", "a kernel in /boot with its modules for overlayfs, ext4 and a RAM disk (Debian: linux-image-amd64)"
}

// runInVM runs this test binary's tests in a VM, as root and as an
// ordinary user with a delegated v2 subtree, those of their subtests whose
// name begins with sub if it is not "", and fails t unless each passes
// both times. It returns their output.
func runInVM(t *testing.T, tests []string, sub string) string {
	t.Helper()
	pattern := "^(" + strings.Join(tests, "|") + ")$"
	if sub != "" {
		pattern += "/^" + regexp.QuoteMeta(sub) + "$"
	}
	if os.Getenv(inVMEnv) != "" {
		t.Fatalf("runInVM inside the VM: the pattern %q would start another", pattern)
	}
	qemu, kernel, mods, lack := vmNeeds()
	if lack != "" {
		testenv.Skipf(t, "no VM to run %s in: this machine has no %s", pattern, lack)
	}
	dir := t.TempDir()
	initrd := filepath.Join(dir, "initrd.cpio")
	if err := writeVMInitramfs(initrd, mods, pattern); err != nil {
		t.Fatal(err)
	}
	o, err := bootVM(t, qemu, kernel, initrd)
	if err != nil && strings.Contains(o, "soft lockup") {
		// Once, on this machine's busiest minute (CI and a second VM
		// beside this one), the emulated CPUs stopped for good, each
		// "stuck" in the kernel: the emulator's, not the tests'. The
		// first report ends the boot (lockupWatch); one more, said.
		t.Logf("the VM hung in its kernel (soft lockup); booting it once more")
		o, err = bootVM(t, qemu, kernel, initrd)
	}
	if err != nil {
		t.Fatalf("qemu: %v", err)
	}
	root, user, _ := strings.Cut(o, "\n=== VM-USER")
	for _, run := range []struct{ who, out, exit string }{{"root", root, "\nVM-EXIT=0"}, {"an ordinary user", user, "\nVM-USER-EXIT=0"}} {
		if !strings.Contains(run.out, run.exit) {
			t.Errorf("the tests in the VM as %s failed, or did not end (no %s)", run.who, strings.TrimSpace(run.exit))
		}
		for _, name := range tests {
			if !strings.Contains(run.out, "--- PASS: "+name+" ") {
				t.Errorf("%s did not pass in the VM as %s", name, run.who)
			}
		}
		// Said again after the whole log, which a short view of it (CI's)
		// may cut in the middle.
		if f := failures(run.out); f != "" {
			t.Errorf("the failures in the VM as %s:\n%s", run.who, f)
		}
	}
	return o
}

// failures are what go test -v printed of each failed test: its "---
// FAIL:" line, and the lines printed between its "=== RUN" and the next
// test's (-v prints a test's logs as they come, and names it again when
// its logs come after another's).
func failures(out string) string {
	lines := strings.Split(out, "\n")
	var b strings.Builder
	for _, l := range lines {
		rest := strings.TrimLeft(l, " ")
		if !strings.HasPrefix(rest, "--- FAIL: ") {
			continue
		}
		b.WriteString(rest + "\n")
		name, _, _ := strings.Cut(strings.TrimPrefix(rest, "--- FAIL: "), " ")
		in := false
		for _, m := range lines {
			switch {
			case m == "=== RUN   "+name, m == "=== NAME  "+name, m == "=== CONT  "+name:
				in = true
			case strings.HasPrefix(m, "=== "), strings.HasPrefix(strings.TrimLeft(m, " "), "--- "):
				in = false
			case in:
				b.WriteString(m + "\n")
			}
		}
	}
	return b.String()
}

// bootVM boots the VM and returns what its tests printed, and qemu's
// error: its own, or its end at vmTimeout.
func bootVM(t *testing.T, qemu, kernel, initrd string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), vmTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu, "-accel", "tcg", "-cpu", "max", "-m", "1536", "-smp", "2",
		"-kernel", kernel, "-initrd", initrd,
		"-append", "console=ttyS0 cgroup_no_v1=all panic=-1 quiet loglevel=3",
		"-nographic", "-no-reboot", "-nic", "none")
	out := &lockupWatch{stop: cancel}
	cmd.Stdout, cmd.Stderr = out, out
	t0 := time.Now()
	err := cmd.Run()
	all := out.String()
	o := all
	if i := strings.Index(o, "=== RUN"); i >= 0 {
		o = o[i:] // after the firmware's and the kernel's boot
	}
	t.Logf("in a VM (%s, %s), %v:\n%s", filepath.Base(kernel), filepath.Base(qemu), time.Since(t0).Round(time.Second), o)
	if err != nil || !strings.Contains(o, "\nVM-EXIT=0") || !strings.Contains(o, "\nVM-USER-EXIT=0") {
		t.Logf("the VM's boot:\n%s", strings.TrimSuffix(all, o))
	}
	return o, err
}

// lockupWatch keeps qemu's output and ends the VM when its kernel reports
// a soft lockup (runInVM boots it once more).
type lockupWatch struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	stop func()
}

func (w *lockupWatch) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(b)
	const lockup = "soft lockup"
	if bytes.Contains(w.buf.Bytes()[max(0, w.buf.Len()-len(b)-len(lockup)):], []byte(lockup)) {
		w.stop()
	}
	return len(b), nil
}

func (w *lockupWatch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// vmTimeout bounds one boot, its tests as root and as an ordinary user:
// about 40 s on a quiet machine here, 113 s for root's alone beside six
// busy loops.
const vmTimeout = 4 * time.Minute

// vmModules are the kernel modules the VM loads (/init loads them in this
// order): overlayfs for containers' roots, and ext4 and a RAM disk for its
// /tmp, where the tests' state dirs and root file systems are (the
// initramfs is a tmpfs, which Linux before 6.3 cannot id-map).
var vmModules = []string{"fs/overlayfs/overlay.ko", "crypto/crc32c_generic.ko", "lib/crc16.ko", "fs/mbcache.ko", "fs/jbd2/jbd2.ko", "fs/ext4/ext4.ko", "drivers/block/brd.ko"}

// vmInit is the VM's /init: a busybox shell script.
const vmInit = `#!/bin/busybox sh
export PATH=/bin
# pivot_root refuses the initramfs's own root: move to a tmpfs first.
if [ ! -e /.switched ]; then
	busybox mkdir /newroot
	busybox mount -t tmpfs -o size=90% root /newroot
	for e in /*; do [ "$e" = /newroot ] || busybox cp -a "$e" /newroot/; done
	busybox touch /newroot/.switched
	exec busybox switch_root /newroot /init
fi
busybox mount -t proc proc /proc
busybox mount -t sysfs sys /sys
busybox mount -t devtmpfs dev /dev
busybox mount -t cgroup2 cgroup2 /sys/fs/cgroup
for m in overlay crc32c_generic crc16 mbcache jbd2 ext4; do busybox insmod /modules/$m.ko; done
busybox insmod /modules/brd.ko rd_nr=1 rd_size=524288
busybox mke2fs -q /dev/ram0 >/dev/null
busybox mount -t ext4 /dev/ram0 /tmp
busybox chmod 1777 /tmp
busybox ip link set lo up
cd /tmp
PLAYGROUND_TEST_STRICT=1 ` + inVMEnv + `=1 TMPDIR=/tmp /test.bin -test.run "$(busybox cat /pattern)" -test.v -test.count=1 -test.timeout=150s
echo "VM-EXIT=$?"
# Again as an ordinary user to whom a v2 subtree is delegated, as systemd's
# Delegate=yes does: the directory and its cgroup.procs,
# cgroup.subtree_control and cgroup.threads are the user's.
echo "+memory +pids +cpu" > /sys/fs/cgroup/cgroup.subtree_control
d=/sys/fs/cgroup/delegated
mkdir $d
chown 1000:1000 $d $d/cgroup.procs $d/cgroup.subtree_control $d/cgroup.threads
mkdir /tmp/user
chown 1000:1000 /tmp/user
echo "=== VM-USER"
# su runs /user.sh as the "shell", which execs the tests: no process of
# su's is left beside them in the cgroup (the server would refuse to share
# it).
sh -c "echo \$\$ > $d/cgroup.procs && exec su -s /user.sh tester"
echo "VM-USER-EXIT=$?"
busybox poweroff -f
`

// vmUser runs the tests as the VM's ordinary user, in its delegated cgroup.
const vmUser = `#!/bin/busybox sh
export PATH=/bin
cd /tmp/user
PLAYGROUND_TEST_STRICT=1 ` + inVMEnv + `=1 TMPDIR=/tmp/user HOME=/tmp/user exec /test.bin -test.run "$(cat /pattern)" -test.v -test.count=1 -test.timeout=150s
`

// writeVMInitramfs writes the VM's root file system, a newc cpio archive.
func writeVMInitramfs(path, mods, pattern string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	libs, err := elfLibraries(self)
	if err != nil {
		return err
	}
	w := &cpioWriter{}
	for _, d := range []string{"bin", "proc", "sys", "dev", "tmp", "etc", "root"} {
		w.dir(d)
	}
	files := map[string]string{"/bin/busybox": "/bin/busybox", "/test.bin": self}
	// newuidmap and newgidmap, setuid root below, for the ordinary user's
	// subordinate ids (/etc/subuid): its spawner then runs in a user
	// namespace of its own, and clones into its delegated cgroup from
	// there (spawnerNS).
	setuid := map[string]bool{}
	for _, tool := range []string{"/usr/bin/newuidmap", "/usr/bin/newgidmap"} {
		if _, err := os.Stat(tool); err != nil {
			continue // the user runs with the single-id map
		}
		in := "/bin/" + filepath.Base(tool) // the VM's PATH
		files[in], setuid[in] = tool, true
		// And the libraries' own (libaudit's libcap-ng, libselinux's pcre2).
		todo := []string{tool}
		for len(todo) > 0 {
			libs, err := elfLibraries(todo[0])
			if err != nil {
				return err
			}
			todo = todo[1:]
			for _, l := range libs {
				if _, ok := files[l]; !ok {
					files[l] = l
					todo = append(todo, l)
				}
			}
		}
	}
	for _, m := range vmModules {
		files["/modules/"+filepath.Base(m)] = filepath.Join(mods, "kernel", m)
	}
	for _, l := range libs {
		files[l] = l
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if d := filepath.Dir(n); d != "/" {
			w.dirs(d[1:])
		}
		b, err := os.ReadFile(files[n])
		if err != nil {
			return err
		}
		perm := uint32(0o755)
		if setuid[n] {
			perm |= 0o4000
		}
		w.file(n[1:], perm, b)
	}
	applets, err := exec.Command("/bin/busybox", "--list").Output()
	if err != nil {
		return fmt.Errorf("busybox --list: %w", err)
	}
	for _, a := range strings.Fields(string(applets)) {
		if a != "busybox" && !strings.Contains(a, "/") {
			w.symlink("bin/"+a, "busybox")
		}
	}
	w.file("init", 0o755, []byte(vmInit))
	w.file("user.sh", 0o755, []byte(vmUser))
	w.file("pattern", 0o644, []byte(pattern))
	w.file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\ntester:x:1000:1000:tester:/tmp/user:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n"))
	w.file("etc/group", 0o644, []byte("root:x:0:\ntester:x:1000:\nnogroup:x:65534:\n"))
	w.file("etc/subuid", 0o644, []byte("tester:100000:65536\n"))
	w.file("etc/subgid", 0o644, []byte("tester:100000:65536\n"))
	return os.WriteFile(path, w.close(), 0o644)
}

// elfLibraries lists the shared libraries a dynamically linked program
// needs, its interpreter first, at the host's paths; none for a static
// one. For the VM's initramfs and copyLibraries.
func elfLibraries(path string) ([]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err != nil {
				return nil, err
			}
			out = append(out, string(bytes.TrimRight(b, "\x00")))
		}
	}
	needed, err := f.ImportedLibraries()
	if err != nil {
		return nil, err
	}
	for _, n := range needed {
		found := ""
		for _, d := range []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu",
			"/usr/lib/aarch64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"} {
			if _, err := os.Stat(filepath.Join(d, n)); err == nil {
				found = filepath.Join(d, n)
				break
			}
		}
		if found == "" {
			return nil, fmt.Errorf("%s needs %s, which is in no library directory here", path, n)
		}
		out = append(out, found)
	}
	return out, nil
}

// cpioWriter writes a cpio archive in the newc format, which the kernel
// unpacks as an initramfs.
type cpioWriter struct {
	buf  bytes.Buffer
	ino  int
	seen map[string]bool
}

func (w *cpioWriter) has(name string) bool { return w.seen[name] }

func (w *cpioWriter) entry(name string, mode uint32, data []byte) {
	if w.seen == nil {
		w.seen = map[string]bool{}
	}
	w.seen[name] = true
	w.ino++
	fmt.Fprintf(&w.buf, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		w.ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
	w.buf.WriteString(name)
	w.buf.WriteByte(0)
	w.pad()
	w.buf.Write(data)
	w.pad()
}

func (w *cpioWriter) pad() {
	for w.buf.Len()%4 != 0 {
		w.buf.WriteByte(0)
	}
}

const (
	cpioDir  = 0o040000
	cpioFile = 0o100000
	cpioLink = 0o120000
)

func (w *cpioWriter) dir(name string) { w.entry(name, cpioDir|0o755, nil) }

// dirs writes name and every directory above it not yet written.
func (w *cpioWriter) dirs(name string) {
	if name == "." || name == "" || w.has(name) {
		return
	}
	w.dirs(filepath.Dir(name))
	w.dir(name)
}

func (w *cpioWriter) file(name string, perm uint32, data []byte) {
	w.entry(name, cpioFile|perm, data)
}

func (w *cpioWriter) symlink(name, target string) { w.entry(name, cpioLink|0o777, []byte(target)) }

func (w *cpioWriter) close() []byte {
	w.entry("TRAILER!!!", 0, nil)
	return w.buf.Bytes()
}

func TestVMFailures(t *testing.T) {
	out := `=== RUN   TestA
    a_test.go:1: fine
--- PASS: TestA (0.01s)
=== RUN   TestB
=== RUN   TestB/x
    b_test.go:2: a log
    b_test.go:3: broken
        and how
=== RUN   TestB/y
    b_test.go:4: fine
=== NAME  TestB/x
    b_test.go:5: later
--- FAIL: TestB (0.02s)
    --- FAIL: TestB/x (0.01s)
    --- PASS: TestB/y (0.01s)
FAIL`
	want := `--- FAIL: TestB (0.02s)
--- FAIL: TestB/x (0.01s)
    b_test.go:2: a log
    b_test.go:3: broken
        and how
    b_test.go:5: later
`
	if got := failures(out); got != want {
		t.Errorf("failures:\n%s\nwant:\n%s", got, want)
	}
}
