//go:build linux

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// target is one thing measured: a server reached over its WebSocket, or
// the raw pty.
type target struct {
	name     string
	url      string    // the server's ws:// URL; "" for raw
	pid      int       // the server's pid, for /proc; 0 when unknown
	statsURL string    // a child server's statsPath; "" for others
	httpURL  string    // a child server's http://ADDR, for /metrics and /readyz
	stateDir string    // self: its containers' mount points live here
	home     string    // raw: the shells' HOME
	logPath  string    // a started server's log, "" for others
	warm     bool      // the server keeps a warm pool (its stats say how full)
	readyURL string    // an HTTP URL that answers 200 once the server is ready
	began    time.Time // when a server this command started was executed
	// open starts a session.
	open func(ctx context.Context) (session, error)
	// stop stops a server this command started; a no-op for the others.
	stop func() error
}

// describe says what each target is, for the report.
var describe = map[string]string{
	"self":    "playground server, every session a container (all namespaces, host rootfs, cold start), limited as serve limits it: cgroups where the server has them",
	"rlimits": "the same, with cgroups off: sessions limited by rlimits and a nice level, as for an ordinary user without a delegated cgroup",
	"warm":    "the playground server with a warm pool of 4 containers, refilled in the background",
	"plain":   "same server code, every session an unisolated /bin/sh on a pty",
	"bwrap":   "same server code, every session `bwrap --unshare-all` running /bin/sh",
	"ttyd":    "ttyd running an unisolated /bin/sh (built from its source, outside the project)",
	"url":     "the server at --url",
	"raw":     "/bin/sh on a pty read by the load process: no server, no network",
	"serve":   "the playground binary itself (`playground serve`, --playground PATH) with the host rootfs, as an operator starts it: measured for startup only",
}

// launcher starts targets, each time afresh. Its work directory holds the
// state dirs, homes and logs of the servers it starts.
type launcher struct {
	cfg  *Config
	work string
	n    int // servers started, for unique names
}

func newLauncher(cfg *Config) (*launcher, error) {
	work, err := os.MkdirTemp("", "playground-load-")
	if err != nil {
		return nil, err
	}
	// Containers run as pool uids when we are root: they must reach their
	// mount points under here (/tmp is searchable by all).
	if err := os.Chmod(work, 0o711); err != nil {
		return nil, err
	}
	return &launcher{cfg: cfg, work: work}, nil
}

// cleanup removes the work directory. Every server must have been stopped.
func (l *launcher) cleanup() error { return os.RemoveAll(l.work) }

// start starts (or, for url, finds) a target for measurement m.
func (l *launcher) start(ctx context.Context, name, m string) (*target, error) {
	l.n++
	switch name {
	case "raw":
		home := filepath.Join(l.work, fmt.Sprintf("home-%d", l.n))
		if err := os.Mkdir(home, 0o700); err != nil {
			return nil, err
		}
		return &target{
			name: name,
			home: home,
			open: func(context.Context) (session, error) { return openRaw(home) },
			stop: func() error { return nil },
		}, nil
	case "url":
		t := &target{name: name, url: l.cfg.URL, pid: l.cfg.PID, stop: func() error { return nil }}
		if t.pid == 0 {
			t.pid = localListener(l.cfg.URL)
		}
		t.open = wsOpener(t.url)
		return t, nil
	case "ttyd":
		return l.startTTYD(ctx)
	case "serve":
		return l.startServe(ctx)
	case "self", "warm", "rlimits", "plain", "bwrap":
		return l.startChild(ctx, name, m)
	}
	return nil, fmt.Errorf("unknown target %q", name)
}

func wsOpener(u string) func(context.Context) (session, error) {
	return func(ctx context.Context) (session, error) { return dial(ctx, u) }
}

// startChild starts this binary as a server of the given kind.
func (l *launcher) startChild(ctx context.Context, kind, m string) (*target, error) {
	o := childOptions{Kind: kind, Rootfs: l.cfg.Rootfs, Bwrap: "bwrap", Sessions: l.cfg.atOnce(m)}
	if m == "resume" || m == "detached" {
		o.Grace = resumeGrace
	}
	if kind == "rlimits" {
		o.Kind, o.NoCgroups = "self", true
	}
	base := filepath.Join(l.work, fmt.Sprintf("%s-%d", kind, l.n))
	switch kind {
	case "self", "warm", "rlimits":
		// A directory of its own, reachable by pool uids, that the
		// runtime makes (0711) and leftovers can be counted in.
		o.StateDir = base + "-state"
	case "plain":
		o.Home = base + "-home"
		if err := os.Mkdir(o.Home, 0o700); err != nil {
			return nil, err
		}
	case "bwrap":
		p, err := exec.LookPath("bwrap")
		if err != nil {
			return nil, fmt.Errorf("bwrap baseline: %w (Debian: apt-get install bubblewrap)", err)
		}
		o.Bwrap = p
	}
	logPath := base + ".log"
	cmd := &exec.Cmd{
		Path: "/proc/self/exe",
		Args: append([]string{childArg0}, o.args()...),
		Env:  os.Environ(),
		// A session of its own, as a service runs: it competes for the CPU
		// as a process of its own, not inside this one's share (the
		// scheduler's autogroups); and it never outlives us.
		SysProcAttr: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setsid: true},
	}
	proc, addr, err := startServer(ctx, cmd, logPath, 60*time.Second, func(line string) (string, bool) {
		return strings.CutPrefix(line, "listening ")
	})
	if err != nil {
		return nil, fmt.Errorf("start %s server: %w", kind, err)
	}
	return &target{
		began:    proc.began,
		readyURL: "http://" + addr + "/readyz",
		name:     kind,
		url:      "ws://" + addr + "/ws",
		pid:      cmd.Process.Pid,
		statsURL: "http://" + addr + statsPath,
		httpURL:  "http://" + addr,
		stateDir: o.StateDir,
		logPath:  logPath,
		warm:     kind == "warm",
		open:     wsOpener("ws://" + addr + "/ws"),
		stop:     proc.stop,
	}, nil
}

var ttydPort = regexp.MustCompile(`Listening on port: (\d+)`)

// serveURL finds the address in the playground binary's "serving" line.
var serveURL = regexp.MustCompile(`"url":"http://([^/"]+)/`)

// startServe starts the playground binary itself, as an operator would,
// on loopback, with the host rootfs and its own state dir; the address it
// says in its log.
func (l *launcher) startServe(ctx context.Context) (*target, error) {
	if l.cfg.Playground == "" {
		return nil, errors.New("target serve needs --playground PATH")
	}
	base := filepath.Join(l.work, fmt.Sprintf("serve-%d", l.n))
	cmd := exec.Command(l.cfg.Playground, "serve", "--listen", "127.0.0.1:0", "--rootfs", l.cfg.Rootfs,
		"--state-dir", base+"-state", "--log-format", "json")
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+base+"-cache", "XDG_RUNTIME_DIR="+base+"-run")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setsid: true} // as startChild's
	proc, addr, err := startServer(ctx, cmd, base+".log", 60*time.Second, func(line string) (string, bool) {
		m := serveURL.FindStringSubmatch(line)
		if m == nil || !strings.Contains(line, `"message":"serving"`) {
			return "", false
		}
		return m[1], true
	})
	if err != nil {
		return nil, fmt.Errorf("start %s serve: %w", l.cfg.Playground, err)
	}
	return &target{
		name: "serve", url: "ws://" + addr + "/ws", pid: cmd.Process.Pid, logPath: base + ".log",
		httpURL: "http://" + addr, readyURL: "http://" + addr + "/readyz", began: proc.began,
		open: wsOpener("ws://" + addr + "/ws"),
		stop: proc.stop,
	}, nil
}

// startTTYD starts ttyd on loopback, on a port of its choosing, running
// /bin/sh writable, with the same prompt as every other shell.
func (l *launcher) startTTYD(ctx context.Context) (*target, error) {
	logPath := filepath.Join(l.work, fmt.Sprintf("ttyd-%d.log", l.n))
	home := filepath.Join(l.work, fmt.Sprintf("ttyd-%d-home", l.n))
	if err := os.Mkdir(home, 0o700); err != nil {
		return nil, err
	}
	cmd := exec.Command(l.cfg.ttydPath(), "--writable", "--interface", "lo", "--port", "0", "--cwd", home, shell)
	cmd.Env = shellEnv(home)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setsid: true} // as startChild's
	// ttyd says its port in its log, on stderr.
	proc, port, err := startServer(ctx, cmd, logPath, 30*time.Second, func(line string) (string, bool) {
		m := ttydPort.FindStringSubmatch(line)
		if m == nil {
			return "", false
		}
		return m[1], true
	})
	if err != nil {
		return nil, fmt.Errorf("start ttyd: %w", err)
	}
	u := "ws://127.0.0.1:" + port + "/ws"
	return &target{
		began: proc.began, readyURL: "http://127.0.0.1:" + port + "/",
		name: "ttyd", url: u, pid: cmd.Process.Pid, logPath: logPath,
		open: wsOpener(u),
		stop: proc.stop,
	}, nil
}

// serverProc is a server process this command started, and the goroutine
// that copies its output to its log.
type serverProc struct {
	cmd     *exec.Cmd
	logPath string
	began   time.Time // just before the exec
	copying sync.WaitGroup
}

// startServer starts cmd with its stdout and stderr going to a pipe that is
// scanned for the line that says where it listens (match returns it) and
// copied to logPath. It returns what match found.
func startServer(ctx context.Context, cmd *exec.Cmd, logPath string, timeout time.Duration, match func(string) (string, bool)) (*serverProc, string, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, "", err
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		_ = logf.Close()
		return nil, "", err
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	began := time.Now()
	err = cmd.Start()
	_ = pw.Close() // the child has its own copy
	if err != nil {
		_ = pr.Close()
		_ = logf.Close()
		return nil, "", err
	}
	p := &serverProc{cmd: cmd, logPath: logPath, began: began}
	found := make(chan string, 1)
	// Ends when the server's output closes, at its exit; stop joins it.
	p.copying.Go(func() {
		defer logf.Close()
		defer pr.Close()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logf, line)
			if !sent {
				if v, ok := match(line); ok {
					found <- v
					sent = true
				}
			}
		}
	})
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case v := <-found:
		return p, v, nil
	case <-timer.C:
		err = fmt.Errorf("no address within %v", timeout)
	case <-ctx.Done():
		err = ctx.Err()
	}
	_ = cmd.Process.Kill() // did not start in time; its log says why
	_ = cmd.Wait()
	p.copying.Wait()
	return nil, "", fmt.Errorf("%w; its log: %s", err, logTail(logPath))
}

// stop ends a server as an operator would: SIGTERM, a grace period, then
// SIGKILL. A server of ours that needed the SIGKILL, or exited with an
// error, is reported.
func (p *serverProc) stop() error {
	defer p.copying.Wait()
	_ = p.cmd.Process.Signal(syscall.SIGTERM) // it may have died already; Wait says
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		// ttyd exits with 1 on SIGTERM by design; only ours are checked.
		if err != nil && filepath.Base(p.cmd.Args[0]) != "ttyd" {
			return fmt.Errorf("server exited: %v; its log: %s", err, logTail(p.logPath))
		}
		return nil
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill() // the grace period is over
		<-done
		return fmt.Errorf("server did not stop within 20 s of SIGTERM; killed. Its log: %s", logTail(p.logPath))
	}
}

// logTail is the end of a log, for an error message.
func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	s := strings.TrimSpace(string(b))
	if len(s) > 1500 {
		s = "..." + s[len(s)-1500:]
	}
	if s == "" {
		return "(empty)"
	}
	return s
}

// stats asks a child server for its goroutines, sessions and memory;
// after a garbage collection when gc is set.
func (t *target) stats(ctx context.Context, gc bool) (serverStats, error) {
	q := ""
	if gc {
		q = "gc=1"
	}
	return t.statsQuery(ctx, q)
}

// phases asks a child server for its containers' start phases so far.
func (t *target) phases(ctx context.Context) ([]phaseTimes, error) {
	st, err := t.statsQuery(ctx, "phases=1")
	return st.Phases, err
}

func (t *target) statsQuery(ctx context.Context, query string) (serverStats, error) {
	var st serverStats
	if t.statsURL == "" {
		return st, errors.New("no stats")
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	u := t.statsURL
	if query != "" {
		u += "?" + query
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return st, err
	}
	resp, err := statsClient.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("%s: %s", t.statsURL, resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// statsClient does not keep connections, so that its requests leave no
// goroutine in the server to be counted as a leftover.
var statsClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// localListener finds the pid of the process listening on the URL's port,
// when the URL is on this machine; 0 otherwise.
func localListener(wsu string) int {
	u, err := url.Parse(wsu)
	if err != nil {
		return 0
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); !(host == "localhost" || ip != nil && ip.IsLoopback()) {
		return 0
	}
	p, err := strconv.Atoi(u.Port())
	if err != nil {
		p = port(wsu)
	}
	return listenerPid(p)
}
