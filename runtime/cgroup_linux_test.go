package runtime

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/guntainer/playground/internal/testenv"
	"golang.org/x/sys/unix"
)

func TestParseCgroupFiles(t *testing.T) {
	dir := t.TempDir()
	procCg := filepath.Join(dir, "cgroup")
	mi := filepath.Join(dir, "mountinfo")
	writeFile(t, procCg, "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/abc\n1:cpu,cpuacct:/a/b\n0::/user.slice/x.service\n")
	writeFile(t, mi, `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 /process_api /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/my\040unified rw,relatime - cgroup2 cgroup2 rw
`)
	own, err := parseProcCgroup(procCg)
	if err != nil {
		t.Fatal(err)
	}
	mounts, err := cgroupMounts(mi)
	if err != nil {
		t.Fatal(err)
	}
	if len(mounts) != 4 {
		t.Fatalf("cgroup mounts: got %d, want 4: %+v", len(mounts), mounts)
	}
	tests := []struct {
		name  string
		mount int
		path  string
		want  string
		ok    bool
	}{
		{"v1 at the root", 2, "/", "/sys/fs/cgroup/pids", true},
		{"v1 co-mounted", 0, "/a/b", "/sys/fs/cgroup/cpu,cpuacct/a/b", true},
		{"v1 mount of a sub-path", 1, "/process_api/abc", "/sys/fs/cgroup/memory/abc", true},
		{"path outside the sub-path", 1, "/other/abc", "", false},
		{"prefix is not a parent", 1, "/process_apix", "", false},
		{"v2, escaped mount point", 3, "/user.slice/x.service", "/sys/fs/cgroup/my unified/user.slice/x.service", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := cgroupDir(mounts[tt.mount], tt.path)
			if got != tt.want || ok != tt.ok {
				t.Errorf("cgroupDir(%+v, %q): -want %q %v +got %q %v", mounts[tt.mount], tt.path, tt.want, tt.ok, got, ok)
			}
		})
	}
	if len(own) != 5 || own[4].path != "/user.slice/x.service" || len(own[4].controllers) != 0 || !slices.Equal(own[3].controllers, []string{"cpu", "cpuacct"}) {
		t.Errorf("parseProcCgroup: got %+v", own)
	}
}

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// openCgroups opens the test's cgroups of version v, failing the test
// when root cannot, and returning nil for an ordinary user, after
// checking that it is refused with a reason.
func openCgroups(t *testing.T, v int, noControllers bool) *Cgroups {
	t.Helper()
	return openCgroupsNamed(t, v, noControllers, "")
}

// openCgroupsNamed is openCgroups with a parent of this name ("": the
// default, playground-PID, which the modes' shared Host also has: a test
// that runs after a mode's has started must take another).
func openCgroupsNamed(t *testing.T, v int, noControllers bool, name string) *Cgroups {
	t.Helper()
	m, err := NewCgroups(CgroupOptions{Version: v, NoControllers: noControllers, Name: name})
	// TestCgroupV2Limits's VM delegates a v2 subtree to its ordinary user.
	delegated := v == 2 && os.Getenv(inVMEnv) != ""
	if os.Getuid() != 0 && !delegated {
		// An ordinary user owns no cgroup on this machine (no systemd,
		// nothing delegated): sessions fall back to rlimits, and the
		// reason says why.
		if err == nil {
			_ = m.Close()
			t.Fatalf("cgroup v%d: an ordinary user without delegation got cgroups", v)
		}
		if !errors.Is(err, ErrNoCgroup) || !strings.Contains(err.Error(), "not writable") {
			t.Fatalf("cgroup v%d as uid %d: got %v, want ErrNoCgroup saying what is not writable", v, os.Getuid(), err)
		}
		line := LimitsModeLine(nil, err)
		if !strings.HasPrefix(line, "limits: rlimits only: memory and process counts are per process, CPU is not shared fairly") {
			t.Errorf("mode line: %q", line)
		}
		t.Logf("as uid %d: %s", os.Getuid(), line)
		return nil
	}
	if err != nil {
		t.Fatalf("cgroup v%d as root: %v", v, err)
	}
	t.Cleanup(func() {
		dirs := m.parentDirs()
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		for _, d := range dirs {
			if exists(d) {
				t.Errorf("cgroup %s left after Close", d)
			}
		}
	})
	return m
}

// ownCgroupDirs are the directories of this process's own cgroups: the
// only place the tests may create cgroups.
func ownCgroupDirs(t *testing.T) []string {
	own, err := parseProcCgroup("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	mounts, err := cgroupMounts("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, pc := range own {
		for _, m := range mounts {
			if m.v2 != (len(pc.controllers) == 0) {
				continue
			}
			if !m.v2 && !slices.ContainsFunc(pc.controllers, func(c string) bool { return slices.Contains(m.options, c) }) {
				continue
			}
			if d, ok := cgroupDir(m, pc.path); ok {
				dirs = append(dirs, d)
			}
		}
	}
	return dirs
}

func TestCgroupV1Limits(t *testing.T) {
	if !hasV1("memory") || !hasV1("pids") {
		testenv.Skipf(t, "cgroup v1 memory and pids are not mounted here")
	}
	m := openCgroups(t, 1, false)
	if m == nil {
		return
	}
	if got := LimitsModeLine(m, nil); got != "limits: cgroup v1 (memory, pids, cpu)" {
		t.Errorf("mode line: got %q", got)
	}
	// Every cgroup made is below this process's own cgroup, in each
	// hierarchy (memory is at a sub-path on this machine).
	for ctrl, d := range m.dirs {
		if !slices.ContainsFunc(ownCgroupDirs(t), func(own string) bool { return filepath.Dir(d) == own }) {
			t.Errorf("%s parent %s is not directly below an own cgroup %v", ctrl, d, ownCgroupDirs(t))
		}
	}

	t.Run("files", func(t *testing.T) {
		c := newCgroup(t, m, Limits{Memory: 64 << 20, Pids: 16, CPUs: 0.5}, nil)
		want := map[string]string{
			"memory/memory.limit_in_bytes": "67108864",
			"pids/pids.max":                "16",
			"cpu/cpu.cfs_quota_us":         "50000",
			"cpu/cpu.cfs_period_us":        "100000",
			"cpu/cpu.shares":               "1024",
		}
		if exists(filepath.Join(c.dirs["memory"], "memory.memsw.limit_in_bytes")) {
			want["memory/memory.memsw.limit_in_bytes"] = "67108864" // swap off
		}
		for f, w := range want {
			ctrl, name, _ := strings.Cut(f, "/")
			if got := readString(filepath.Join(c.dirs[ctrl], name)); got != w {
				t.Errorf("%s: -want %s +got %s", f, w, got)
			}
		}
		// The sessions' parent is one group beside the server, at twice
		// its weight (sessionsCPUShares).
		if got := readString(filepath.Join(m.dirs["cpu"], "cpu.shares")); got != "2048" {
			t.Errorf("parent cpu.shares: got %s, want 2048", got)
		}
		// All sessions together leave an eighth of the machine's pids,
		// and of its memory.
		if got, want := readString(filepath.Join(m.dirs["pids"], "pids.max")), sessionsPidsMax(); got != want || want == "" {
			t.Errorf("parent pids.max: got %s, want %q (kernel.pid_max %s less an eighth)", got, want, readString("/proc/sys/kernel/pid_max"))
		}
		if got, want := readString(filepath.Join(m.dirs["memory"], "memory.limit_in_bytes")), sessionsMemoryMax(); got != want || want == "" {
			t.Errorf("parent memory.limit_in_bytes: got %s, want %q (the machine's memory less an eighth)", got, want)
		}
	})

	t.Run("memory hog", func(t *testing.T) {
		limits := Limits{Memory: 48 << 20}
		hit := make(chan string, 2)
		c := newCgroup(t, m, limits, func(r string) { hit <- r })
		cmd := startIn(t, c, helperCmd(t, "hog", nil))
		var reason string
		select {
		case reason = <-hit:
		case <-time.After(time.Minute):
			t.Fatal("no limit reported within a minute of starting a memory hog")
		}
		if want := "memory limit 48 MiB reached"; reason != want || c.Reason() != want {
			t.Errorf("reason: got %q and Reason() %q, want %q", reason, c.Reason(), want)
		}
		// v1's OOM killer took the hog; the session would now be ended.
		if err := c.Kill(); err != nil {
			t.Fatal(err)
		}
		err := cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Errorf("hog: got %v, want killed by SIGKILL", err)
		}
		if oc := readKeyed(filepath.Join(c.dirs["memory"], "memory.oom_control")); oc["oom_kill"] < 1 {
			t.Errorf("memory.oom_control: no oom_kill counted: %v", oc)
		}
	})

	t.Run("fork bomb", func(t *testing.T) {
		hit := make(chan string, 2)
		c := newCgroup(t, m, Limits{Pids: 16, CPUs: 0.5}, func(r string) { hit <- r })
		bomb := exec.Command("/bin/sh", "-c", "read go; while :; do sleep 1000 & done")
		bomb.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		cmd := startIn(t, c, bomb)
		select {
		case r := <-hit:
			if want := "process limit 16 reached"; r != want || c.Reason() != want {
				t.Errorf("reason: got %q and Reason() %q, want %q", r, c.Reason(), want)
			}
		case <-time.After(time.Minute):
			t.Fatal("no limit reported within a minute of starting a fork bomb")
		}
		st, err := c.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if st.Processes < 2 || st.Processes > 16 || st.MemoryBytes <= 0 {
			t.Errorf("stats of a contained fork bomb: %+v, want 2 to 16 processes and some memory", st)
		}
		pids, _ := readPids(filepath.Join(c.dirs["pids"], "cgroup.procs"))
		if err := c.Remove(); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait() // killed
		for _, p := range pids {
			if alive(p) {
				t.Errorf("process %d of the fork bomb is alive after Remove", p)
			}
		}
		for _, d := range c.dirs {
			if exists(d) {
				t.Errorf("%s left after Remove", d)
			}
		}
	})
}

// alive reports whether pid runs (a zombie waiting for its parent does
// not).
func alive(pid int) bool {
	st, err := procStat(pid)
	return err == nil && st.State != "Z" && st.State != "X"
}

func hasV1(ctrl string) bool {
	ms, err := cgroupMounts("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	return slices.ContainsFunc(ms, func(m cgroupMount) bool { return !m.v2 && slices.Contains(m.options, ctrl) })
}

func newCgroup(t *testing.T, m *Cgroups, l Limits, onLimit func(string)) *Cgroup {
	t.Helper()
	c, err := m.New(newID(), l, onLimit)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Remove(); err != nil {
			t.Errorf("Remove: %v", err)
		}
	})
	return c
}

// startIn starts cmd, which waits for a line on stdin before it does
// anything, puts it in c (at clone on v2, by pid on v1) and lets it go.
func startIn(t *testing.T, c *Cgroup, cmd *exec.Cmd) *exec.Cmd {
	t.Helper()
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	fd, err := c.CloneInto(cmd.SysProcAttr)
	if err != nil {
		t.Fatal(err)
	}
	err = cmd.Start()
	if fd >= 0 {
		_ = unix.Close(fd)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	if c.m.version == 1 {
		if err := c.Enter(cmd.Process.Pid); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := io.WriteString(in, "go\n"); err != nil {
		t.Fatal(err)
	}
	return cmd
}

func TestCgroupV2EnterKillRemove(t *testing.T) {
	// This machine's cgroup2 has no controllers: what works without them
	// (entering at clone, cgroup.kill, removal, leftovers) is tested for
	// real; the limits themselves in TestCgroupV2Limits.
	m := openCgroups(t, 2, true)
	if m == nil {
		return
	}
	c := newCgroup(t, m, Limits{}, nil)
	cmd := helperCmd(t, "wait", nil)
	cmd = startIn(t, c, cmd)
	pid := cmd.Process.Pid
	// In its cgroup from clone on: /proc/PID/cgroup says so.
	rel := "/" + filepath.Base(m.dir) + "/" + c.id
	if got := procCgroupV2(t, pid); !strings.HasSuffix(got, rel) {
		t.Errorf("/proc/%d/cgroup v2 line: got %q, want it to end in %q", pid, got, rel)
	}
	st, err := c.Stats()
	if err != nil || st.Processes != 1 {
		t.Errorf("Stats: %+v, %v; want 1 process", st, err)
	}
	if err := c.Kill(); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("after Kill: got %v, want killed by SIGKILL", err)
	}
	if err := c.Remove(); err != nil {
		t.Fatal(err)
	}
	if exists(c.dir) {
		t.Errorf("%s left after Remove", c.dir)
	}
}

func procCgroupV2(t *testing.T, pid int) string {
	t.Helper()
	pcs, err := parseProcCgroup(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, pc := range pcs {
		if len(pc.controllers) == 0 {
			return pc.path
		}
	}
	return ""
}

// vmTests are the tests TestCgroupV2Limits runs in a VM (runInVM) where
// this machine's cgroup v2 has no controllers: itself, where they are, the
// other tests of v2's, and the limit tests' cgroup-v2 modes (the VM's root
// file system is busybox's, which their rlimits modes, tested here, do not
// expect). The VM's kernel is Debian 12's, 6.1, older than this machine's:
// the tests of what it lacks run there too.
var vmTests = []string{
	"TestCgroupV2Limits", "TestCgroupV2EnterKillRemove", "TestCgroupLeftoversCleaned", "TestCgroupV2EnterAtClone",
	"TestForkBomb", "TestMemoryBomb", "TestDiskFill", "TestOutputFlood", "TestCPUSpinners", "TestLimitsVisible",
	"TestNothingLeftBehindWithLimits", "TestInitUnderTheSmallestLimits", "TestLimitHitWhileStarting",
	"TestRootStateDirIDMappable", "TestSocketMemory", "TestPtyExhaustion",
	"TestSharedCountsPerSession", "TestForkBombAcrossUids", "TestOutOfMemoryAboveTheSessions",
	"TestOOMScoreAdj",
}

func TestCgroupV2Limits(t *testing.T) {
	m, err := NewCgroups(CgroupOptions{Version: 2})
	if err != nil && strings.Contains(err.Error(), "sessions need memory and pids") {
		if os.Getuid() != 0 {
			t.Logf("as uid %d, %v: the VM of the root run tests v2 (the same kernel code, as root inside either way)", os.Getuid(), err)
			return
		}
		// Cgroup v1 holds the controllers here: in a VM whose v2 has them.
		runInVM(t, vmTests, "cgroup-v2")
		return
	}
	if err != nil && os.Getuid() != 0 && strings.Contains(err.Error(), "not writable") {
		// An ordinary user without a delegated subtree: the rlimits mode,
		// tested in TestCgroupV1Limits's ordinary-user run and the
		// rlimits tests.
		t.Logf("as uid %d: %v", os.Getuid(), err)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	hit := make(chan string, 4)
	c := newCgroup(t, m, Limits{Memory: 48 << 20, Pids: 16, CPUs: 0.5}, func(r string) { hit <- r })
	for f, w := range map[string]string{"memory.max": "50331648", "memory.oom.group": "1", "pids.max": "16", "cpu.max": "50000 100000", "cpu.weight": "100"} {
		if got := readString(filepath.Join(c.dir, f)); got != w {
			t.Errorf("%s: -want %s +got %s", f, w, got)
		}
	}
	// The sessions' parent, at twice the server's weight.
	if got, want := readString(filepath.Join(m.dir, "pids.max")), sessionsPidsMax(); got != want || want == "" {
		t.Errorf("parent pids.max: got %s, want %q", got, want)
	}
	if got := readString(filepath.Join(m.dir, "cpu.weight")); got != "200" {
		t.Errorf("parent cpu.weight: got %s, want 200", got)
	}
	if got, want := readString(filepath.Join(m.dir, "memory.max")), sessionsMemoryMax(); got != want || want == "" {
		t.Errorf("parent memory.max: got %s, want %q", got, want)
	}
	cmd := startIn(t, c, helperCmd(t, "hog", nil))
	select {
	case r := <-hit:
		if want := "memory limit 48 MiB reached"; r != want {
			t.Errorf("reason: got %q, want %q", r, want)
		}
	case <-time.After(time.Minute):
		t.Fatal("no limit reported within a minute of starting a memory hog")
	}
	_ = cmd.Wait() // oom.group killed it
}

// TestCgroupLeftoversCleaned: a server killed with SIGKILL leaves its
// sessions' cgroups, and in them a process that outlived it; the next
// server kills it and removes them.
func TestCgroupLeftoversCleaned(t *testing.T) {
	if os.Getuid() != 0 {
		t.Log("ordinary user: no cgroups to leave behind (see TestCgroupV1Limits)")
		return
	}
	v := 1
	if !hasV1("memory") {
		v = 2
	}
	server := helperCmd(t, "cgserver", map[string]int{"version": v})
	out, err := server.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	server.Stderr = os.Stderr
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	var dirs []string
	var orphan int
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == "dir" {
			dirs = append(dirs, f[1])
		}
		if len(f) == 2 && f[0] == "pid" {
			orphan, _ = strconv.Atoi(f[1])
			break
		}
	}
	if orphan == 0 || len(dirs) == 0 {
		_ = server.Process.Kill()
		_ = server.Wait()
		t.Fatalf("the helper server did not make its cgroup: %v", sc.Err())
	}
	_ = server.Process.Kill()
	_ = server.Wait()
	t.Cleanup(func() { _ = unix.Kill(orphan, unix.SIGKILL) })
	if !alive(orphan) {
		t.Fatalf("the session process %d did not outlive its server: nothing to clean", orphan)
	}
	for _, d := range dirs {
		if !exists(d) {
			t.Fatalf("%s is gone with its server: nothing to clean", d)
		}
	}
	m := openCgroups(t, v, v == 2)
	_ = m
	for _, d := range dirs {
		if exists(d) {
			t.Errorf("%s left by a killed server is still there", d)
		}
	}
	if alive(orphan) {
		t.Errorf("process %d left in a killed server's cgroup is alive", orphan)
	}
}

// helperCgroupServer is a server that makes a session cgroup with a
// process in it, says where, and waits to be killed.
func helperCgroupServer() int {
	{
		var arg struct{ Version int }
		helperArg(&arg)
		m, err := NewCgroups(CgroupOptions{Version: arg.Version, NoControllers: arg.Version == 2})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		c, err := m.New("s1", Limits{}, nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		for _, d := range c.dirList() {
			fmt.Println("dir", filepath.Dir(d))
		}
		sleep := exec.Command("/bin/sleep", "1000") // no Pdeathsig: it outlives us
		if err := sleep.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if err := c.Enter(sleep.Process.Pid); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println("pid", sleep.Process.Pid)
		select {} // until killed
	}
}

// TestOOMNoticeOnlyWhenSignalled: an epoll event for an eventfd number
// that a removed session had and a new session's eventfd has now, which
// the kernel has not signalled, must not end the new session as out of
// memory; a signalled one must.
func TestOOMNoticeOnlyWhenSignalled(t *testing.T) {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(efd)
	r := &cgroupEvents{efd: efd}
	w := &cgroupWatcher{parentEfd: -1, byFD: map[int32]*cgroupEvents{int32(efd): r}}
	if got := w.oomNotice(int32(efd)); got != nil {
		t.Errorf("an eventfd the kernel did not signal was taken for an OOM notice")
	}
	if _, err := unix.Write(efd, []byte{1, 0, 0, 0, 0, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	if got := w.oomNotice(int32(efd)); got != r {
		t.Errorf("a signalled eventfd: %v, want its session", got)
	}
	if got := w.oomNotice(int32(efd)); got != nil {
		t.Errorf("the same notice counted twice")
	}
}

// TestOOMNoticeFromAbove: v1 signals a session's OOM eventfd also when
// memory ran out above it, after the parent's (the kernel walks the tree
// down): a notice is the session's own only beyond the parent's since the
// session was registered.
func TestOOMNoticeFromAbove(t *testing.T) {
	var fds [2]int
	for i := range fds {
		fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		fds[i] = fd
	}
	parent, session := fds[0], fds[1]
	signal := func(fd int) {
		t.Helper()
		if _, err := unix.Write(fd, []byte{1, 0, 0, 0, 0, 0, 0, 0}); err != nil {
			t.Fatal(err)
		}
	}
	w := &cgroupWatcher{parentEfd: parent}
	signal(parent) // before the session: not its
	w.mu.Lock()
	w.drainParentLocked()
	w.mu.Unlock()
	r := &cgroupEvents{efd: session, parentBase: w.parentOOMs}
	w.byFD = map[int32]*cgroupEvents{int32(session): r}

	signal(parent)
	signal(session)
	if got := w.oomNotice(int32(session)); got != nil {
		t.Errorf("a notice from above was taken for the session's own")
	}
	signal(parent) // the walk reached the parent, not the session yet
	signal(session)
	signal(session) // the walk's, and then the session's own
	if got := w.oomNotice(int32(session)); got != r {
		t.Errorf("the session's own notice, after one from above: %v, want its session", got)
	}
}

// TestPidsPollAfterAFailedWatch: the v1 pids.events poll goes on for the
// sessions watched after one whose watch failed part way. A failed watch
// took the timer's count down without having counted itself, and the
// next session's count then never reached one, so the timer never started
// again and no later v1 session learnt of its process limit. The poll
// reads a file it keeps open: a count that grows after the watch began is
// seen. Plain files stand in for the cgroup's here, so any user runs it.
func TestPidsPollAfterAFailedWatch(t *testing.T) {
	w, err := newCgroupWatcher("")
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	m := &Cgroups{version: 1}
	dir := func(files ...string) string {
		d := t.TempDir()
		for _, f := range files {
			if err := os.WriteFile(filepath.Join(d, f), []byte("max 0\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	// No memory.oom_control: the watch fails after pids.events is open.
	bad := &Cgroup{m: m, id: "bad", dirs: map[string]string{"pids": dir("pids.events"), "memory": dir()}}
	if err := w.add(bad, func(string) {}); err == nil {
		t.Fatal("a watch without memory.oom_control did not fail")
	}
	pids := dir("pids.events")
	good := &Cgroup{m: m, id: "good", limits: Limits{Pids: 16}, dirs: map[string]string{"pids": pids}}
	hit := make(chan string, 1)
	if err := w.add(good, func(reason string) { hit <- reason }); err != nil {
		t.Fatal(err)
	}
	defer w.remove(good)
	if err := os.WriteFile(filepath.Join(pids, "pids.events"), []byte("max 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case reason := <-hit:
		if want := "process limit 16 reached"; reason != want {
			t.Errorf("reason %q, want %q", reason, want)
		}
	case <-time.After(20 * cgroupPollInterval):
		t.Fatalf("no process limit seen in %v of polls after a failed watch (timer count %d)", 20*cgroupPollInterval, w.polled)
	}
}

// TestLimitHitWhileStarting: a program that hits its limit at once (a
// fork bomb) may do so before the server has the ready message: a resident
// init starts the program before it sends it, and on a busy machine the
// watcher's next look can come first. Its kill then failed the start with
// "container init ended before it was ready: signal KILL" (CI once,
// TestForkBomb/cgroup-v1). A limit hit while the session starts must end it
// once it has started, with the limit as its reason, as a limit hit a
// moment later does. Here the watcher's call is made as soon as the
// session's cgroup is watched, which is before init is forked.
func TestLimitHitWhileStarting(t *testing.T) {
	const reason = "process limit 64 reached"
	for _, m := range limitModes(t) {
		if !m.cgroups() {
			continue // no cgroup, no watcher
		}
		for _, programIsInit := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/programIsInit=%v", m.name, programIsInit), func(t *testing.T) {
				w := m.host.cgroups.watch
				w.mu.Lock()
				before := map[*Cgroup]bool{}
				for c := range w.regs {
					before[c] = true
				}
				w.mu.Unlock()
				fired := make(chan bool, 1)
				stop := make(chan struct{})
				defer close(stop)
				go func() {
					for {
						w.mu.Lock()
						var hit *cgroupEvents
						for c, r := range w.regs {
							if !before[c] {
								hit = r
							}
						}
						w.mu.Unlock()
						if hit != nil {
							// As the watcher's loop does.
							if hit.c.limitReached(reason) {
								hit.onLimit(reason)
							}
							fired <- true
							return
						}
						// A short sleep, not a spin: spinning took the
						// CPU the start needed (40 s for one start in the
						// VM beside CI); a start takes milliseconds.
						select {
						case <-stop:
							fired <- false
							return
						case <-time.After(20 * time.Microsecond):
						}
					}
				}()
				spec := Spec{Host: m.host, ProgramIsInit: programIsInit, Args: sh(`echo started; sleep 1000`)}
				c, err := Start(spec)
				if err != nil {
					t.Fatalf("Start with a limit hit while it started: %v", err)
				}
				defer c.Close()
				if !<-fired {
					t.Fatal("the session's cgroup was never watched")
				}
				_, _ = io.Copy(io.Discard, c)
				st, err := c.Wait()
				if err != nil {
					t.Fatal(err)
				}
				if st.Signal != 9 || st.Reason != reason {
					t.Errorf("exit %+v, want SIGKILL and reason %q", st, reason)
				}
			})
		}
	}
}

// TestSessionsInTheirV1Cgroups reads, from the host, the v1 cgroups of
// every thread of a live session's processes, the program and what it
// forked: all in the session's cgroup in every hierarchy used. A server's
// session (the program as init) gets there by init moving its own thread
// in, through the tasks files the parent opened, before it builds the
// container (its phase comes before the root's); a resident init is moved
// whole by the parent.
func TestSessionsInTheirV1Cgroups(t *testing.T) {
	if os.Getuid() != 0 {
		t.Log("no cgroups for an ordinary user here: covered by the root run")
		return
	}
	ran := false
	for _, m := range testModes(t) {
		if !m.cgroups() || m.host.cgroups.version != 1 {
			continue
		}
		ran = true
		t.Run(m.name, func(t *testing.T) {
			c := startMode(t, m, Spec{Args: sh(`sleep 1000 & echo started; wait`)})
			o := readAll(c)
			o.waitFor(t, "started")
			procs := descendants(programPid(t, c))
			if len(procs) < 2 {
				t.Fatalf("the program and its sleep: got processes %v", procs)
			}
			var diff []string
			for _, p := range procs {
				tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", p.pid))
				if err != nil {
					t.Fatal(err)
				}
				for _, task := range tasks {
					cg := readFile(t, fmt.Sprintf("/proc/%d/task/%s/cgroup", p.pid, task.Name()))
					for ctrl, d := range c.cg.dirs {
						rel := strings.TrimPrefix(d, m.host.cgroups.dirs[ctrl])
						if !slices.ContainsFunc(strings.Split(cg, "\n"), func(l string) bool {
							_, rest, _ := strings.Cut(l, ":")
							cs, path, _ := strings.Cut(rest, ":")
							return slices.Contains(strings.Split(cs, ","), ctrl) && strings.HasSuffix(path, "/"+filepath.Base(m.host.cgroups.dirs[ctrl])+rel)
						}) {
							diff = append(diff, fmt.Sprintf("pid %d thread %s: not in %s:\n%s", p.pid, task.Name(), d, cg))
						}
					}
				}
			}
			if len(diff) > 0 {
				t.Errorf("threads outside their session's cgroups:\n%s", strings.Join(diff, "\n"))
			}
			if m.programIsInit {
				names := make([]string, len(c.phases))
				for i, p := range c.phases {
					names[i] = p.Name
				}
				entered, root := slices.Index(names, "cgroup entered"), slices.Index(names, "root and mounts")
				if entered < 0 || root < 0 || entered > root {
					t.Errorf("phases %v: want init's own move (cgroup entered) before it builds the root", names)
				}
			}
		})
	}
	if !ran {
		testenv.Skipf(t, "as root, the sessions here have no v1 cgroups (cgroup v2 or none): the self-move into v1 tasks files is not used")
	}
}

// TestOutOfMemoryAboveTheSessions: memory can run out above the sessions,
// below no session's own limit: all sessions together at their parent's
// limit (sessionsMemoryMax), the server's own cgroup at its limit (a
// pod's, a unit's MemoryMax=) or the machine's. The kernel then kills in
// the session it picks, which ends with a reason that says the host's
// memory ran out, not the session's limit; every other session goes on,
// told nothing. The sessions' parent at a small limit stands in for all
// three here. (v1 tells every cgroup below one out of
// memory, the sessions' included: a session that took that for its own
// limit ended itself, and so did every other.)
func TestOutOfMemoryAboveTheSessions(t *testing.T) {
	v := 1
	if !hasV1("memory") {
		v = 2
	}
	m := openCgroupsNamed(t, v, false, testCgroupName()+"-oom")
	if m == nil {
		return
	}
	parent, limitFile := m.dir, "memory.max"
	if v == 1 {
		parent, limitFile = m.dirs["memory"], "memory.limit_in_bytes"
	}
	writeFile(t, filepath.Join(parent, limitFile), strconv.Itoa(96<<20))

	hitHog, hitIdle := make(chan string, 2), make(chan string, 2)
	hogCg := newCgroup(t, m, Limits{Memory: 512 << 20}, func(r string) { hitHog <- r })
	idleCg := newCgroup(t, m, Limits{Memory: 512 << 20}, func(r string) { hitIdle <- r })
	idle := exec.Command("/bin/sh", "-c", "read go; exec sleep 1000")
	idle.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	startIn(t, idleCg, idle)
	hog := startIn(t, hogCg, helperCmd(t, "hog", nil))
	select {
	case r := <-hitHog:
		if want := HostMemoryReason; r != want {
			t.Errorf("the hog's session: reason %q, want %q", r, want)
		}
	case <-time.After(time.Minute):
		t.Fatal("the hog's session was told nothing within a minute of its start")
	}
	if err := hogCg.Kill(); err != nil { // as its session ends
		t.Fatal(err)
	}
	_ = hog.Wait()
	if r := hogCg.Reason(); r != HostMemoryReason {
		t.Errorf("the hog's session: Reason() %q, want %q", r, HostMemoryReason)
	}
	// The other session: told nothing (a notice would have come with the
	// hog's), its process alive, no reason at its end.
	select {
	case r := <-hitIdle:
		t.Errorf("the idle session was told %q", r)
	case <-time.After(time.Second):
	}
	if !alive(idle.Process.Pid) {
		t.Error("the idle session's process is gone")
	}
	if r := idleCg.Reason(); r != "" {
		t.Errorf("the idle session: Reason() %q, want none", r)
	}
}
