package initproc

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"unsafe"

	"github.com/guntainer/playground/runtime/seccomp/filter"
	"golang.org/x/sys/unix"
)

const syncFd = 3

// init enters a container's init, which never returns, when this process
// was started as one (see the package's comment for why from here). The
// init path is entered only when argv[0] is Arg0, this process is PID 1 of
// its pid namespace, and fd 3 is the sync socket. A process so named that
// is not all three is refused, so no flag or environment variable alone
// can make the server's binary skip to init.
func init() {
	if path.Base(os.Args[0]) != Arg0 {
		return
	}
	typ, err := unix.GetsockoptInt(syncFd, unix.SOL_SOCKET, unix.SO_TYPE)
	if os.Getpid() != 1 || err != nil || typ != unix.SOCK_SEQPACKET {
		fmt.Fprintln(os.Stderr, "playground-init: internal entry point of a container; not for direct use")
		os.Exit(2)
	}
	os.Exit(initMain())
}

// stepError names the setup step that failed, for the parent to report.
type stepError struct {
	step string
	err  error
}

func (e *stepError) Error() string { return e.step + ": " + e.err.Error() }

func step(name string, err error) error {
	if err == nil {
		return nil
	}
	return &stepError{step: name, err: err}
}

func initMain() int {
	Mark("init running")
	// A crash of init is reported: Go writes a fatal error's report to fd
	// 2, which is made the sync socket here, where the parent reads it as
	// init's last words (syncConn.recv). (runtime/debug's SetCrashOutput
	// would do it without touching fd 2, but importing runtime/debug puts
	// this package 28 packages later: see the package's comment.) Init's
	// own fd 2 (/dev/null, as the spawner or the server gave it) comes
	// back once the report's reader is gone (quiet).
	quiet := func() {}
	if null, err := unix.FcntlInt(2, unix.F_DUPFD_CLOEXEC, 3); err == nil {
		if unix.Dup3(syncFd, 2, unix.O_CLOEXEC) == nil {
			quiet = func() { _ = unix.Dup3(null, 2, unix.O_CLOEXEC); _ = unix.Close(null) }
		}
	}
	// "exe" is all ps would show otherwise.
	_ = unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&[]byte(Arg0 + "\x00")[0])), 0, 0, 0) // cosmetic
	var cfg Config
	fds, err := recvMsg(syncFd, &cfg)
	if err != nil {
		return 1 // the parent is gone or broken: nobody to report to
	}
	// With the configuration come the lower layer's fd, when it says so,
	// and (v1, a server's session) the session's tasks files.
	nLower := btoi(cfg.MappedLower || cfg.LowerFD)
	if len(fds) != nLower+cfg.CgroupTasks {
		CloseFds(fds)
		_ = sendMsg(syncFd, Message{Kind: "error", Step: "receive configuration", Err: fmt.Sprintf("%d descriptors came, not the %d it announced", len(fds), nLower+cfg.CgroupTasks)})
		return 1
	}
	lower, tasks := -1, fds[nLower:]
	if nLower == 1 {
		lower = fds[0]
	}
	// Released: the parent has written the id maps and placed init in its
	// cgroup, or handed over its tasks files for init to move itself in
	// (below). Init started as a uid the namespace did not map yet
	// (holding its capabilities as ambient ones: the parent writes the
	// maps after its exec) and becomes container root now.
	if err := BecomeRoot(cfg.IDRange); err != nil {
		_ = sendMsg(syncFd, Message{Kind: "error", Step: "become container root", Err: err.Error()})
		return 1
	}
	// The first the kernel kills when memory runs out above the
	// container (OOMScoreAdj); raising it takes no privilege.
	if err := WriteOOMScoreAdj("self"); err != nil {
		_ = sendMsg(syncFd, Message{Kind: "error", Step: "set oom_score_adj", Err: err.Error()})
		return 1
	}
	// From here on no one but root of the container's user
	// namespace with CAP_SYS_PTRACE (which the program never has) may
	// ptrace init, read its memory or take its fds, and /proc/1/* is root's.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		_ = sendMsg(syncFd, Message{Kind: "error", Step: "make init non-dumpable", Err: err.Error()})
		return 1
	}
	stdio, err := recvStdio(&cfg) // stdio_linux.go: Spec.Stdio's files, or nil for a pty
	if err != nil {
		_ = sendMsg(syncFd, Message{Kind: "error", Step: "receive stdio", Err: err.Error()})
		return 1
	}

	Mark("released")
	if len(tasks) > 0 {
		err := enterCgroups(tasks)
		CloseFds(tasks)
		if err != nil {
			_ = sendMsg(syncFd, Message{Kind: "error", Step: "enter cgroup", Err: err.Error()})
			return 1
		}
		Mark("cgroup entered")
	}
	var sigs chan os.Signal
	if !cfg.ProgramIsInit {
		sigs = make(chan os.Signal, 16)
		signal.Notify(sigs) // before the program starts; forwarded to it by reapUntil
	}
	files, prog, err := setup(&cfg, lower, stdio)
	if err == nil && cfg.Check {
		_ = sendMsg(syncFd, Message{Kind: "checked"}) // the parent kills us next
		return 0
	}
	if err != nil {
		reportError(err)
		return 1
	}
	master := files.master
	if cfg.EnterLater {
		// The parent has moved init into its cgroups once this comes: the
		// program, and the cgroup namespace made for it, start there.
		var msg Message
		if fds, err := recvMsg(syncFd, &msg); err != nil || msg.Kind != "entered" {
			CloseFds(fds)
			files.closeAll()
			return 1 // the parent is gone or broken: nobody to report to
		}
		Mark("cgroup entered")
	}
	if cfg.ProgramIsInit {
		return execProgram(prog, master) // returns only if the exec failed
	}
	shell, err := startProgram(prog)
	files.closeChild() // the program has its own copies
	if err != nil {
		_ = master.Close()
		reportError(err)
		return 1
	}
	// No crash report from here on: the parent reads the sync socket
	// again only once init has exited, so a long one would block init.
	quiet()
	if err := sendMsg(syncFd, Message{Kind: "ready", Phases: takePhases()}, readyFds(master)...); err != nil {
		return 1
	}
	_ = master.Close() // the parent holds it now; init must not keep the pty alive
	go endWithParent()

	status := reapUntil(shell, sigs)
	_ = sendMsg(syncFd, status) // best effort: the parent falls back to init's status
	if status.Signal != 0 {
		return 128 + status.Signal
	}
	return status.Code
}

// enterCgroups moves the calling thread into the session's v1 cgroups,
// one tasks file per hierarchy (Config.CgroupTasks), before the container
// is built: what the kernel allocates for it is the session's. Init runs
// on its first thread (see the package's comment), which is the one that
// later executes the program in its place: the program starts there, and
// init's other threads, left where init started, end with the exec.
// Writing "0" moves the writer alone, which the kernel does without its
// threadgroup lock, and so without waiting for an RCU grace period.
func enterCgroups(tasks []int) error {
	for _, fd := range tasks {
		for {
			_, err := unix.Write(fd, []byte("0"))
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				return err
			}
			break
		}
	}
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// reportError tells the parent which setup step failed and why.
func reportError(err error) {
	msg := Message{Kind: "error", Step: "container setup", Err: err.Error()}
	var se *stepError
	if errors.As(err, &se) {
		msg.Step, msg.Err = se.step, errText(se.err)
		msg.Cause = programCause(se.step, se.err) // stdio_linux.go
	}
	_ = sendMsg(syncFd, msg) // if the parent is gone, there is nobody to tell
}

// errText is an error's text without Go's "operation path:" clutter where
// the step already says what was done.
func errText(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err.Error()
	}
	return err.Error()
}

// endWithParent waits for the parent's end of the sync socket to close,
// which happens when the parent dies however it dies (SIGKILL included;
// Go's Pdeathsig fires on the exit of the parent's thread that started
// init, not of the parent, golang/go#27505), and then ends the container:
// it kills every other process of the pid namespace and exits, which
// leaves the namespace empty. The parent itself never closes its end
// before init has exited.
func endWithParent() {
	buf := make([]byte, 1)
	for {
		n, _, err := unix.Recvfrom(syncFd, buf, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if n > 0 {
			continue // nothing is sent after the start; ignore, keep waiting
		}
		break
	}
	_ = syscall.Kill(-1, syscall.SIGKILL) // every process of the namespace but init
	os.Exit(128 + int(syscall.SIGKILL))
}

// reapUntil is PID 1's loop: it forwards signals to the program, reaps every
// orphan that the kernel hands it, and returns when the program has exited.
// Init then exits, and the kernel kills what is left of the pid namespace.
//
// sigs has been catching every signal since before the program started: a
// SIGTERM sent as soon as the program shows it runs must reach it, not
// end init by Go's default.
func reapUntil(pid int, sigs chan os.Signal) Message {
	go func() {
		for s := range sigs {
			sig, ok := s.(syscall.Signal)
			if !ok || sig == syscall.SIGCHLD || sig == syscall.SIGURG {
				continue // SIGURG is the Go runtime's own preemption signal
			}
			_ = syscall.Kill(pid, sig) // the program may be gone already
		}
	}()
	for {
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return Message{Kind: "exit", Code: -1, Signal: int(syscall.SIGKILL)}
		}
		if got != pid {
			continue
		}
		if ws.Signaled() {
			return Message{Kind: "exit", Code: -1, Signal: int(ws.Signal())}
		}
		return Message{Kind: "exit", Code: ws.ExitStatus()}
	}
}

// setup builds the container and prepares its program on a fresh pty, or
// on the caller's files (stdio), for startProgram or execProgram. It
// returns the program's files (with the pty master, nil with stdio) and
// the program.
func setup(cfg *Config, lower int, stdio []int) (*programFiles, program, error) {
	if err := buildRoot(cfg, lower); err != nil {
		return nil, program{}, err
	}
	Mark("root and mounts")
	if err := step("sethostname", unix.Sethostname([]byte(cfg.Hostname))); err != nil {
		return nil, program{}, err
	}
	if err := step("bring up lo", LoopbackUp()); err != nil {
		return nil, program{}, err
	}
	// The outbound network's rules, while init still has CAP_NET_ADMIN in
	// the container's net namespace (the program never has it).
	if err := step("install network rules", InstallNetRules(cfg.NetRules)); err != nil {
		return nil, program{}, err
	}
	if err := writeEtc(cfg); err != nil {
		return nil, program{}, err
	}

	if err := checkMapped(cfg.UID, cfg.GID); err != nil {
		return nil, program{}, err
	}
	user, err := lookupUser(cfg.UID)
	if err != nil {
		return nil, program{}, err
	}
	env := containerEnv(cfg, user)
	args := cfg.Args
	if len(args) == 0 {
		sh, err := defaultShell()
		if err != nil {
			return nil, program{}, err
		}
		args = []string{sh, "-l"}
	}
	path, err := lookPath(args[0], envValue(env, "PATH"))
	if err != nil {
		return nil, program{}, step("exec "+args[0], err)
	}
	env = setEnv(env, "SHELL", path)
	if cfg.Check {
		return nil, program{}, nil
	}
	dir := cfg.Dir
	if dir == "" {
		dir = envValue(env, "HOME")
		if cfg.UID < 0 {
			_ = os.MkdirAll(dir, 0o700) // a rootfs without /root still gets a home
		}
	}
	if err := step("working directory "+dir, checkDir(dir)); err != nil {
		return nil, program{}, err
	}
	Mark("etc, hostname, lo")
	filter, err := filter.FromBytes(cfg.Seccomp)
	if err != nil {
		return nil, program{}, step("seccomp filter", err)
	}

	// Nothing of init's may reach the program: not the sync socket, and
	// not an fd the server inherited without close-on-exec and passed on
	// (Go's exec does not close those).
	if err := step("close inherited fds", CloseOnExecFrom(3)); err != nil {
		return nil, program{}, err
	}
	files, err := openProgramFiles(cfg, stdio) // stdio_linux.go: a pty, or the caller's files
	if err != nil {
		return nil, program{}, err
	}
	Mark("pty")
	// Rlimits on init, which the program and all it starts inherit; a
	// limit can only be lowered from here. DATA and NPROC come last, just
	// before the program starts (lastRlimits).
	first, last := lastRlimits(cfg.Rlimits)
	if err := step("set rlimits", ApplyRlimits(first)); err != nil {
		files.closeAll()
		return nil, program{}, err
	}
	return files, program{
		path: path, args: args, env: env, dir: dir, fds: files.fds(), ctty: files.master != nil,
		uid: cfg.UID, gid: cfg.GID, setgroups: cfg.IDRange, filter: filter, nice: cfg.Nice,
		timerSlack: cfg.TimerSlack, rlimits: last,
	}, nil
}

// CloseOnExecFrom marks every fd from lowfd on close-on-exec.
func CloseOnExecFrom(lowfd int) error {
	err := unix.CloseRange(uint(lowfd), ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	if err == nil {
		return nil
	}
	// Before Linux 5.11: every open fd, one by one. /proc is the
	// container's own by now, and shows this process's fds.
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd >= lowfd {
			unix.CloseOnExec(fd)
		}
	}
	return nil
}

func defaultShell() (string, error) {
	for _, sh := range []string{"/bin/bash", "/bin/sh"} {
		if fi, err := os.Stat(sh); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return sh, nil
		}
	}
	return "", step("find a shell", errors.New("the rootfs has neither /bin/bash nor /bin/sh"))
}

// lookPath finds file in the container's PATH (not init's, which is empty).
func lookPath(file, pathList string) (string, error) {
	if strings.Contains(file, "/") {
		if err := executable(file); err != nil {
			return "", err
		}
		return file, nil
	}
	if pathList == "" {
		return "", notFound(errors.New("executable file not found in $PATH"))
	}
	for _, d := range strings.Split(pathList, ":") { // filepath.SplitList's, on Linux
		p := path.Join(d, file)
		if executable(p) == nil {
			return p, nil
		}
	}
	return "", notFound(errors.New("executable file not found in $PATH"))
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
		return notFound(err)
	}
	if err != nil {
		return notExecutable(err)
	}
	if fi.IsDir() {
		return notExecutable(errors.New("is a directory"))
	}
	if fi.Mode()&0o111 == 0 {
		return notExecutable(errors.New("permission denied"))
	}
	return nil
}

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// checkMapped fails clearly for a Spec.User whose ids this container's
// user namespace does not map (uid < 0 is root, always mapped).
func checkMapped(uid, gid int) error {
	if uid < 0 {
		return nil
	}
	for _, m := range []struct {
		file string
		id   int
	}{{"/proc/self/uid_map", uid}, {"/proc/self/gid_map", gid}} {
		b, err := os.ReadFile(m.file)
		if err != nil {
			return step("read "+m.file, err)
		}
		mapped := false
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var in, out, n int
			if _, err := fmt.Sscanf(line, "%d %d %d", &in, &out, &n); err == nil && m.id >= in && m.id < in+n {
				mapped = true
			}
		}
		if !mapped {
			return step(fmt.Sprintf("user %d:%d", uid, gid), fmt.Errorf("id %d is not mapped in this container: only root is, unless the server runs as root", m.id))
		}
	}
	return nil
}

// account is a user of the container as its /etc/passwd tells.
type account struct{ name, home string }

// lookupUser finds uid in the container's /etc/passwd; root (uid < 0) is
// root at /root whatever the file says, and a uid the file does not name
// is "uid" + number at /.
func lookupUser(uid int) (account, error) {
	if uid < 0 {
		return account{"root", "/root"}, nil
	}
	a := account{"uid" + strconv.Itoa(uid), "/"}
	b, err := os.ReadFile("/etc/passwd")
	if err != nil {
		return a, nil
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) >= 6 && f[2] == strconv.Itoa(uid) {
			a.name = f[0]
			if fi, err := os.Stat(f[5]); err == nil && fi.IsDir() {
				a.home = f[5]
			}
			return a, nil
		}
	}
	return a, nil
}

func containerEnv(cfg *Config, user account) []string {
	env := []string{
		"TERM=xterm-256color",
		"HOME=" + user.home,
		"PATH=" + defaultPath,
		"USER=" + user.name,
		"LOGNAME=" + user.name,
		"HOSTNAME=" + cfg.Hostname,
		"LANG=C.UTF-8",
		`PS1=\u@\h:\w\$ `,
	}
	for _, kv := range cfg.Env {
		if k, _, ok := strings.Cut(kv, "="); ok {
			env = setEnv(env, k, kv[len(k)+1:])
		}
	}
	return env
}

func setEnv(env []string, k, v string) []string {
	for i, kv := range env {
		if strings.HasPrefix(kv, k+"=") {
			env[i] = k + "=" + v
			return env
		}
	}
	return append(env, k+"="+v)
}

func envValue(env []string, k string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, k+"="); ok {
			return v
		}
	}
	return ""
}

// WriteOOMScoreAdj sets the oom_score_adj of process proc ("self", or a
// pid), which its children inherit, to OOMScoreAdj. Init writes its own
// through the host's /proc, which is still its mount namespace's; the
// runtime writes init's from outside where that makes it a floor.
func WriteOOMScoreAdj(proc string) error {
	fd, err := unix.Open("/proc/"+proc+"/oom_score_adj", unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	_, err = unix.Write(fd, []byte(strconv.Itoa(OOMScoreAdj)))
	return err
}

// LoopbackUp sets IFF_UP on lo, the only interface of the new net namespace.
func LoopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// reserveThreads makes sure the Go runtime has n more OS threads than it
// needs now: each of n goroutines holds a thread of its own at once, then
// lets it go, and the runtime keeps idle threads for later use rather than
// ending them.
func reserveThreads(n int) {
	var held, release sync.WaitGroup
	held.Add(n)
	release.Add(1)
	var done sync.WaitGroup
	for range n {
		done.Go(func() {
			goruntime.LockOSThread()
			held.Done()
			release.Wait()
			goruntime.UnlockOSThread()
		})
	}
	held.Wait()
	release.Done()
	done.Wait()
}
