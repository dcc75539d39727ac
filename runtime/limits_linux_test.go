package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/guntainer/playground/internal/testenv"
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
	if err := applyRlimits(RlimitsFor(l, false)); err != nil {
		fmt.Println(err)
		return 1
	}
	// The program, started as init starts the shell.
	var out []byte
	var raise error
	done := make(chan error)
	go func() {
		done <- withSessionPriority(SessionNice, false, func() error {
			var err error
			out, err = exec.Command("/bin/sh", "-c", `cat /proc/self/limits; echo --; cut -d' ' -f19 /proc/self/stat`).Output()
			raise = unix.Setpriority(unix.PRIO_PROCESS, 0, SessionNice-1) // back up: refused
			return err
		})
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
	if err := mountSessionDisk(mp, l); err != nil {
		return fail(err)
	}
	defer unix.Unmount(mp, unix.MNT_DETACH)
	tmp, shm, err := openSessionDirs(mp)
	if err != nil {
		return fail(err)
	}
	defer unix.Close(tmp)
	defer unix.Close(shm)
	// Targets relative to the working directory, as init's are to the
	// new root.
	if err := os.Chdir(base); err != nil {
		return fail(err)
	}
	if err := attachSessionDir(tmp, "tmp", 0); err != nil {
		return fail(err)
	}
	defer unix.Unmount(tmpT, unix.MNT_DETACH)
	if err := attachSessionDir(shm, "shm", unix.MOUNT_ATTR_NOEXEC); err != nil {
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
// on). A process of the server's uid, limited to the tasks the server's
// uid has outside any container plus a few, forks before a container
// starts, cannot fork while the container's processes live, and forks
// again once they are gone: that is why CheckNproc wants sessions × pids
// below the server's own limit.
func TestNprocChargedToTheServer(t *testing.T) {
	if os.Getuid() == 0 {
		t.Log("as root RLIMIT_NPROC binds nothing (the kernel exempts root), and a root server's containers are charged to root: the claim is an ordinary user's, checked by the run as one (playground-ci)")
		return
	}
	const procs = 64 // the container's processes, far above the slack
	const slack = 8  // the forking shell, its child, threads the test may add
	for _, m := range testModes(t) {
		t.Run(m.name, func(t *testing.T) {
			if got := forkUnderNproc(t, slack); got != "forked" {
				t.Fatalf("before the container, with RLIMIT_NPROC = own tasks + %d: %q, want a fork", slack, got)
			}
			script := fmt.Sprintf("i=0; while [ $i -lt %d ]; do sleep 1000 & i=$((i+1)); done; echo started; read x", procs)
			c := startMode(t, m, Spec{Args: sh(script)})
			o := readAll(c)
			o.waitFor(t, "started")
			uid := hostUID(t, programPid(t, c))
			t.Logf("the container's processes run as host uid %d, the server as uid %d", uid, os.Getuid())
			if m.subIDs() && uid == os.Getuid() {
				t.Fatalf("with subordinate ids the program runs as the server's uid %d", uid)
			}
			if got := forkUnderNproc(t, slack); got == "forked" {
				t.Errorf("with %d processes in a container, a process of uid %d limited to its own tasks + %d still forked: the container's processes are not charged to the server's uid", procs, os.Getuid(), slack)
			} else {
				t.Logf("with the container's processes alive: %q", got)
			}
			_ = c.Close()
			if got := forkUnderNproc(t, slack); got != "forked" {
				t.Errorf("after the container, with RLIMIT_NPROC = own tasks + %d: %q, want a fork", slack, got)
			}
		})
	}
}

// forkUnderNproc runs a shell of this uid whose RLIMIT_NPROC is the number
// of tasks this uid has outside any user namespace of its own, plus slack,
// and has it fork: "forked", or what the shell said.
func forkUnderNproc(t *testing.T, slack uint64) string {
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
	// Counted once the shell runs, so that it is among them.
	lim := unix.Rlimit{Cur: ownTasks(t) + slack, Max: ownTasks(t) + slack}
	if err := unix.Prlimit(cmd.Process.Pid, unix.RLIMIT_NPROC, &lim, nil); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("prlimit: %v", err)
	}
	_, _ = stdin.Write([]byte("\n")) // a failed write shows as the shell's answer
	_ = stdin.Close()
	_ = cmd.Wait() // the answer is its output
	return strings.TrimSpace(out.String())
}

// ownTasks counts the tasks (threads) whose real uid is this process's
// and that are in this process's user namespace: a container's processes,
// in user namespaces of their own, are not among them, even with the
// single-id map, where they run as this uid.
func ownTasks(t *testing.T) uint64 {
	t.Helper()
	self, err := os.Readlink("/proc/self/ns/user")
	if err != nil {
		t.Fatal(err)
	}
	me := strconv.Itoa(os.Getuid())
	es, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, e := range es {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		if ns, err := os.Readlink("/proc/" + e.Name() + "/ns/user"); err != nil || ns != self {
			continue // gone, another user's, or in a namespace of its own
		}
		uid, threads := statusField(e.Name(), "Uid"), statusField(e.Name(), "Threads")
		if f := strings.Fields(uid); len(f) == 0 || f[0] != me {
			continue
		}
		k, _ := strconv.ParseUint(threads, 10, 64)
		n += k
	}
	return n
}
