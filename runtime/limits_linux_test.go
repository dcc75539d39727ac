package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/guntainer/playground/internal/testenv"
	"github.com/guntainer/playground/runtime/internal/initproc"
	"golang.org/x/sys/unix"
)

// startInUserNS runs helper name in new user (root inside, the single-id
// map) and mount namespaces, as the container's init runs, and returns its
// output.
func runInUserNS(t *testing.T, name string, arg any) string {
	t.Helper()
	cmd := helperCmd(t, name, arg)
	u, g := singleMap()
	cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS
	cmd.SysProcAttr.UidMappings, cmd.SysProcAttr.GidMappings = u, g
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.ENOSPC) {
		testenv.Skipf(t, "no user namespaces here: %v", err)
	}
	if err != nil {
		t.Fatalf("helper %s: %v\n%s%s", name, err, out, stderr.String())
	}
	return string(out)
}

// TestRlimitsInsideTheContainer applies the rlimits-only mode's limits
// and priority as init does, in a user namespace, and reads them from
// /proc of a process the helper starts afterwards, from any of its threads.
func TestRlimitsInsideTheContainer(t *testing.T) {
	// Memory as DATA binds per process, thread stacks included: the
	// helper, a Go test binary with cgo, needs a few hundred MiB.
	l := Limits{Memory: 512 << 20, Pids: 64, Disk: 16 << 20, NoFile: 256}
	out := runInUserNS(t, "rlimits", l)
	limits, rest, _ := strings.Cut(out, "--\n")
	want := map[string]string{
		"Max core file size":    "0 0",
		"Max open files":        "256 256",
		"Max file size":         "16777216 16777216",
		"Max processes":         "64 64",
		"Max data size":         "536870912 536870912",
		"Max nice priority":     "0 0",
		"Max realtime priority": "0 0",
		"Max pending signals":   fmt.Sprintf("%d %d", sessionSigPending, sessionSigPending),
		"Max msgqueue size":     fmt.Sprintf("%d %d", sessionMsgQueue, sessionMsgQueue),
	}
	for _, line := range strings.Split(limits, "\n") {
		for name, w := range want {
			if strings.HasPrefix(line, name+" ") {
				f := strings.Fields(strings.TrimPrefix(line, name))
				if got := strings.Join(f[:2], " "); got != w {
					t.Errorf("%s: -want %s +got %s", name, w, got)
				}
				delete(want, name)
			}
		}
	}
	if len(want) > 0 {
		t.Errorf("not in /proc/PID/limits: %v\n%s", want, limits)
	}
	f := strings.Fields(rest)
	if len(f) != 2 || f[0] != strconv.Itoa(SessionNice) || f[1] != "EACCES" {
		t.Errorf("nice of a child, and raising it: got %q, want %d EACCES", rest, SessionNice)
	}
}

func helperRlimits() int {
	var l Limits
	helperArg(&l)
	if err := initproc.ApplyRlimits(RlimitsFor(l, false)); err != nil {
		fmt.Println(err)
		return 1
	}
	// The program, started as init starts the shell.
	var out []byte
	var raise error
	done := make(chan error)
	go func() {
		// As init's last step does (restrict): the priority is the
		// thread's, and the program, forked from it, inherits it.
		goruntime.LockOSThread() // never unlocked: the thread ends with this goroutine
		if err := unix.Setpriority(unix.PRIO_PROCESS, 0, SessionNice); err != nil {
			done <- err
			return
		}
		var err error
		out, err = exec.Command("/bin/sh", "-c", `cat /proc/self/limits; echo --; cut -d' ' -f19 /proc/self/stat`).Output()
		raise = unix.Setpriority(unix.PRIO_PROCESS, 0, SessionNice-1) // back up: refused
		done <- err
	}()
	if err := <-done; err != nil {
		fmt.Println(err)
		return 1
	}
	_, _ = os.Stdout.Write(out)
	fmt.Println(map[bool]string{true: "EACCES", false: fmt.Sprint(raise)}[errors.Is(raise, unix.EACCES)])
	return 0
}

// TestSessionDisk mounts a session's disk as DiskLayout says, binds its
// tmp and shm where /tmp and /dev/shm go, and fills them: the writable
// layer, /tmp and /dev/shm share one size and one inode count.
func TestSessionDisk(t *testing.T) {
	out := runInUserNS(t, "disk", Limits{Disk: 16 << 20})
	var got struct {
		Bytes, Files, Inodes int64
		Modes                map[string]string
		Err                  string
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%q: %v", out, err)
	}
	if got.Err != "" {
		t.Fatal(got.Err)
	}
	// 16 MiB written across the three places in 1 MiB files, then
	// ENOSPC: never three times 16.
	if got.Bytes < 14<<20 || got.Bytes > 16<<20 {
		t.Errorf("bytes written across upper, /tmp and /dev/shm before ENOSPC: %d, want about 16 MiB", got.Bytes)
	}
	if got.Files < 100 || got.Files > got.Inodes {
		t.Errorf("empty files made before ENOSPC: %d, want at most nr_inodes %d", got.Files, got.Inodes)
	}
	for d, m := range got.Modes {
		if m != "777 sticky true" {
			t.Errorf("%s mode %s, want 777 sticky true", d, m)
		}
	}
}

func helperDisk() int {
	var l Limits
	helperArg(&l)
	var res struct {
		Bytes, Files, Inodes int64
		Modes                map[string]string
		Err                  string
	}
	res.Inodes = l.DiskInodes()
	defer func() {
		b, _ := json.Marshal(res)
		_, _ = os.Stdout.Write(b)
	}()
	fail := func(err error) int { res.Err = err.Error(); return 0 }
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fail(err)
	}
	base, err := os.MkdirTemp("", "playground-disk-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(base)
	mp, tmpT, shmT := filepath.Join(base, "mp"), filepath.Join(base, "tmp"), filepath.Join(base, "shm")
	for _, d := range []string{mp, tmpT, shmT} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return fail(err)
		}
	}
	if err := initproc.MountSessionDisk(mp, l.WithDefaults().Disk, l.DiskInodes()); err != nil {
		return fail(err)
	}
	defer unix.Unmount(mp, unix.MNT_DETACH)
	dirs, err := initproc.OpenSessionDirs(mp)
	if err != nil {
		return fail(err)
	}
	defer dirs.Close()
	// Targets relative to the working directory, as init's are to the
	// new root.
	if err := os.Chdir(base); err != nil {
		return fail(err)
	}
	if err := initproc.AttachSessionDir(dirs.Tmp, "tmp", 0); err != nil {
		return fail(err)
	}
	defer unix.Unmount(tmpT, unix.MNT_DETACH)
	if err := initproc.AttachSessionDir(dirs.Shm, "shm", unix.MOUNT_ATTR_NOEXEC); err != nil {
		return fail(err)
	}
	defer unix.Unmount(shmT, unix.MNT_DETACH)
	res.Modes = map[string]string{}
	for _, d := range []string{tmpT, shmT} {
		fi, err := os.Stat(d)
		if err != nil {
			return fail(err)
		}
		res.Modes[filepath.Base(d)] = fmt.Sprintf("%o sticky %v", fi.Mode().Perm(), fi.Mode()&os.ModeSticky != 0)
	}
	// 6 MiB into the writable layer, 6 into /tmp, then /dev/shm until full.
	chunk := make([]byte, 1<<20)
	n := 0
	for i, dir := range []string{filepath.Join(mp, "upper"), tmpT, shmT} {
		for j := 0; i == 2 || j < 6; j++ {
			f, err := os.Create(filepath.Join(dir, fmt.Sprintf("f%d", n)))
			n++
			if err != nil {
				break
			}
			w, err := f.Write(chunk)
			_ = f.Close()
			res.Bytes += int64(w)
			if err != nil {
				if !errors.Is(err, unix.ENOSPC) {
					return fail(err)
				}
				break
			}
		}
	}
	// Free it, then fill the inodes with empty files in /tmp.
	for _, dir := range []string{filepath.Join(mp, "upper"), tmpT, shmT} {
		es, _ := os.ReadDir(dir)
		for _, e := range es {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	for {
		f, err := os.Create(filepath.Join(tmpT, fmt.Sprintf("e%d", res.Files)))
		if err != nil {
			if !errors.Is(err, unix.ENOSPC) {
				return fail(err)
			}
			break
		}
		_ = f.Close()
		res.Files++
	}
	return 0
}

// TestProcStats counts a real pid namespace's processes: init and the two
// it starts.
func TestProcStats(t *testing.T) {
	cmd := exec.Command("/bin/sh", "-c", "sleep 1000 & sleep 1000 & echo started; read x")
	u, g := singleMap()
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWPID,
		UidMappings: u, GidMappings: g,
		Credential: &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true},
		Pdeathsig:  syscall.SIGKILL,
	}
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		testenv.Skipf(t, "no user and pid namespaces here: %v", err)
	}
	defer func() { _ = in.Close(); _ = cmd.Wait() }() // init's end kills the sleeps
	b := make([]byte, 8)
	if _, err := out.Read(b); err != nil {
		t.Fatal(err)
	}
	st, err := ProcStats(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if st.Processes != 3 || st.MemoryBytes <= 0 {
		t.Errorf("ProcStats: %+v, want 3 processes and some memory", st)
	}
}

func TestHostChecks(t *testing.T) {
	var nofile unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &nofile); err != nil {
		t.Fatal(err)
	}
	if nofile.Max < 1<<30 {
		err := CheckRlimits(Limits{NoFile: int(nofile.Max) + 1})
		if err == nil || !strings.Contains(err.Error(), "above the server's own hard limit") {
			t.Errorf("CheckRlimits with nofile above the hard limit %d: got %v", nofile.Max, err)
		}
	}
	if err := CheckRlimits(Limits{NoFile: 64}); err != nil {
		t.Errorf("CheckRlimits with small limits: %v", err)
	}
	err := CheckNproc(1<<20, Limits{Pids: 256})
	if os.Getuid() == 0 && err != nil {
		t.Errorf("CheckNproc as root: %v", err)
	}
	if os.Getuid() != 0 && (err == nil || !strings.Contains(err.Error(), "need RLIMIT_NPROC of at least")) {
		t.Errorf("CheckNproc of a million sessions as uid %d: got %v", os.Getuid(), err)
	}
	if err := CheckNproc(1, Limits{Pids: 8}); err != nil {
		t.Errorf("CheckNproc of one small session: %v", err)
	}
}

// TestNprocChargedToTheServer: the processes of a container count against
// the RLIMIT_NPROC of the server's own uid, whatever the id map (with the
// subordinate ids they run as another host uid), because the kernel
// charges each to the uid that made its user namespace too (Linux 5.14
// on). What the server's uid is charged with is measured as the kernel
// sees it: the lowest RLIMIT_NPROC under which a shell of that uid can
// still fork. It grows by the container's processes while they live, and
// falls back once they are gone: that is why CheckNproc wants sessions ×
// pids below the server's own limit. (Counted, not listed: other processes
// of the same uid, other sessions' containers too, are in the figure, and
// the test asks only for the difference.)
func TestNprocChargedToTheServer(t *testing.T) {
	if os.Getuid() == 0 {
		t.Log("as root RLIMIT_NPROC binds nothing (the kernel exempts root), and a root server's containers are charged to root: the claim is an ordinary user's, checked by the run as one (playground-ci)")
		return
	}
	const procs = 64 // the container's sleeps, besides its init and shell
	for _, m := range testModes(t) {
		t.Run(m.name, func(t *testing.T) {
			before := nprocCharged(t)
			script := fmt.Sprintf("i=0; while [ $i -lt %d ]; do sleep 1000 & i=$((i+1)); done; echo started; read x", procs)
			c := startMode(t, m, Spec{Args: sh(script)})
			o := readAll(c)
			o.waitFor(t, "started")
			uid := hostUID(t, programPid(t, c))
			if m.subIDs() && uid == os.Getuid() {
				t.Fatalf("with subordinate ids the program runs as the server's uid %d", uid)
			}
			with := nprocCharged(t)
			_ = c.Close()
			after := nprocCharged(t)
			t.Logf("uid %d is charged with %d tasks before the container, %d while its %d sleeps live (as host uid %d), %d after", os.Getuid(), before, with, procs, uid, after)
			// Other processes of this uid may come and go meanwhile: half
			// the container's processes is the margin.
			if with < before+procs/2 {
				t.Errorf("the container's %d processes (host uid %d) are not charged to uid %d: %d tasks before, %d with them", procs, uid, os.Getuid(), before, with)
			}
			if after+procs/2 > with {
				t.Errorf("uid %d is still charged with the container's processes after its end: %d tasks with them, %d after", os.Getuid(), with, after)
			}
		})
	}
}

// nprocCharged is what this uid is charged with against RLIMIT_NPROC, as
// the kernel counts it: the lowest limit under which a shell of this uid
// forks, less one (the fork's child), found by bisection.
func nprocCharged(t *testing.T) uint64 {
	t.Helper()
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NPROC, &r); err != nil {
		t.Fatal(err)
	}
	hi := min(r.Max, 1<<20)
	if !forksUnderNproc(t, hi) {
		t.Fatalf("a shell of uid %d cannot fork even under RLIMIT_NPROC %d", os.Getuid(), hi)
	}
	lo := uint64(0) // a limit of 0 never lets it fork
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if forksUnderNproc(t, mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi - 1
}

// forksUnderNproc runs a shell of this uid under RLIMIT_NPROC limit and
// says whether it could fork.
func forksUnderNproc(t *testing.T, limit uint64) bool {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", "read x; /bin/true && echo forked")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lim := unix.Rlimit{Cur: limit, Max: limit}
	if err := unix.Prlimit(cmd.Process.Pid, unix.RLIMIT_NPROC, &lim, nil); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("prlimit: %v", err)
	}
	_, _ = stdin.Write([]byte("\n")) // a failed write shows in the shell's answer
	_ = stdin.Close()
	_ = cmd.Wait() // the answer is its output
	switch got := strings.TrimSpace(out.String()); {
	case got == "forked":
		return true
	case strings.Contains(got, "fork"):
		return false
	default:
		t.Fatalf("shell under RLIMIT_NPROC %d: %q", limit, got)
		return false
	}
}

// TestSessionPolicyIsBatch: SessionPolicy, which TestLimitsVisible reads
// back from /proc, is Linux's SCHED_BATCH.
func TestSessionPolicyIsBatch(t *testing.T) {
	if SessionPolicy != unix.SCHED_BATCH {
		t.Errorf("SessionPolicy is %d, SCHED_BATCH %d", SessionPolicy, unix.SCHED_BATCH)
	}
}

// TestSharedPoolNotes: the start-up notes on the kernel's counts that all
// sessions share, from the sysctls.
func TestSharedPoolNotes(t *testing.T) {
	sysctls := map[string]int{"kernel.pty.max": 4096, "kernel.pty.reserve": 1024, "fs.inotify.max_user_instances": 128, "kernel.pid_max": 32768}
	read := func(name string) int {
		if v, ok := sysctls[name]; ok {
			return v
		}
		return -1
	}
	for _, tt := range []struct {
		sessions   int
		l          Limits
		owner      nsOwner
		pidsCapped bool
		limits     map[string]int // beside sysctls
		want       []string
	}{
		{sessions: 4, owner: ownerSingleID, want: nil}, // 64 ptys, 64 instances
		// As root each session's namespace is its own uid's: no shared
		// inotify instances however many sessions.
		{sessions: 128, owner: ownerSession, pidsCapped: true, want: nil},
		// Subordinate ids, the spawner in no namespace of its own: one
		// session may take them all.
		{sessions: 1, owner: ownerServerSubIDs, pidsCapped: true, want: []string{subIDsOwnerNote}},
		// In its own, each session its share, all of them the server's.
		{sessions: 100, owner: ownerSpawnerNS, pidsCapped: true, want: []string{"inotify: each session may hold 16 inotify instances, and the kernel counts every one against the server's uid too, which fs.inotify.max_user_instances allows 128: 8 sessions at their limit take them all; for 100 sessions raise it (sysctl fs.inotify.max_user_instances=1728)"}},
		// The server's rlimits too, where its uid owns the namespaces.
		{sessions: 100, owner: ownerSpawnerNS, pidsCapped: true, limits: map[string]int{"ulimit -i": 96369, "ulimit -q": 819200, "fs.inotify.max_user_instances": -1}, want: []string{
			"queued signals: each session may hold 1024, and the kernel counts them all against the server's uid too, whose ulimit -i allows 96369: 95 sessions at their limit take them all; for 100 sessions raise it to 102400 (LimitSIGPENDING= in the systemd unit)",
			"message queue bytes: each session may hold 262144 bytes, and the kernel counts them all against the server's uid too, whose ulimit -q allows 819200: 4 sessions at their limit take them all; for 100 sessions raise it to 26214400 (LimitMSGQUEUE= in the systemd unit)",
		}},
		{sessions: 100, owner: ownerSession, pidsCapped: true, limits: map[string]int{"ulimit -i": 96369, "ulimit -q": 819200}, want: nil}, // root: each session's own
		{sessions: 200, l: Limits{Ptys: 16}, owner: ownerSingleID, pidsCapped: true, want: []string{
			"ptys: 200 sessions with --ptys 16 each could hold more than the 3072 ptys the kernel has for every container on this machine (kernel.pty.max 4096 less kernel.pty.reserve 1024), and then no new session gets its terminal; raise it (sysctl kernel.pty.max=4224) or lower --ptys",
			"inotify: each session may hold 16 inotify instances, and the kernel counts every one against the server's uid too, which fs.inotify.max_user_instances allows 128: 8 sessions at their limit take them all; for 200 sessions raise it (sysctl fs.inotify.max_user_instances=3328)",
		}},
		{sessions: 200, l: Limits{Ptys: NoLimit, Pids: 200}, owner: ownerSingleID, want: []string{
			"pids: 200 sessions with --pids 200 each could take every pid of the machine (kernel.pid_max 32768) but what the host keeps, with no cgroup to cap them together; raise it (sysctl kernel.pid_max=44096) or lower --pids",
			"inotify: each session may hold 16 inotify instances, and the kernel counts every one against the server's uid too, which fs.inotify.max_user_instances allows 128: 8 sessions at their limit take them all; for 200 sessions raise it (sysctl fs.inotify.max_user_instances=3328)",
		}},
		{sessions: 100, l: Limits{Pids: 100}, owner: ownerSingleID, want: []string{"inotify: each session may hold 16 inotify instances, and the kernel counts every one against the server's uid too, which fs.inotify.max_user_instances allows 128: 8 sessions at their limit take them all; for 100 sessions raise it (sysctl fs.inotify.max_user_instances=1728)"}}, // 10000 pids: room
	} {
		read := func(name string) int {
			if v, ok := tt.limits[name]; ok {
				return v
			}
			return read(name)
		}
		if got := sharedPoolNotes(tt.sessions, tt.l, tt.owner, tt.pidsCapped, read); !slices.Equal(got, tt.want) {
			t.Errorf("%d sessions, %+v: -want +got\n%q\n%q", tt.sessions, tt.l, tt.want, got)
		}
	}
	// Open files: 2 sessions of 256 processes with 4096 files each fit
	// this machine's fs.file-max, 3 do not.
	sysctls["fs.file-max"] = 2466286
	if got := sharedPoolNotes(2, Limits{}, ownerSession, true, read); len(got) != 0 {
		t.Errorf("2 sessions' files: %q", got)
	}
	want := "files: 3 sessions of 256 processes with 4096 open files each could open more than the 2466286 files the kernel allows the whole machine (fs.file-max), and then no process without CAP_SYS_ADMIN opens one (ENFILE), the server's accepts included; raise it (sysctl fs.file-max=9223372036854775807, which systemd sets by default)"
	if got := sharedPoolNotes(3, Limits{}, ownerSession, true, read); !slices.Equal(got, []string{want}) {
		t.Errorf("3 sessions' files: -want +got\n%q\n%q", want, got)
	}
	// With the single-id map the sessions share the server's uid, and the
	// kernel's counts per uid with it.
	if got := (&Host{}).SharedPoolNotes(1, Limits{}); !slices.Contains(got, singleIDNote) {
		t.Errorf("single-id host: %q, want the single-id note", got)
	}
	if got := (&Host{subIDs: &SubIDs{}}).SharedPoolNotes(1, Limits{}); slices.Contains(got, singleIDNote) {
		t.Errorf("a host with subordinate ids: %q", got)
	}
	// A machine where the sysctls cannot be read says nothing.
	if got := sharedPoolNotes(1000, Limits{}, ownerSingleID, false, func(string) int { return -1 }); got != nil {
		t.Errorf("unreadable sysctls: %q", got)
	}
}
