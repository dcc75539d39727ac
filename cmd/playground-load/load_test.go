//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/guntainer/playground/internal/testenv"
	"github.com/guntainer/playground/runtime"
)

// The test binary is also the containers' init and the child servers:
// the same entry points as main's, so the tests measure the real thing.
func TestMain(m *testing.M) {
	runtime.MaybeInit()
	maybeServe()
	maybeFlood()
	before := len(testenv.Goroutines())
	code := m.Run()
	if code == 0 {
		if err := checkGoroutines(before); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// runTimeout is the watchdog on each run of the command in a test.
const runTimeout = 2 * time.Minute

// runShort runs the command with --short --json and the given flags, and
// returns the decoded report. A run that fails, or whose output does not
// decode, fails the test with the command's stderr.
func runShort(t *testing.T, args ...string) *Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), runTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	args = append([]string{"--short", "--json"}, args...)
	err := run(ctx, args, &stdout, &stderr)
	var rep Report
	if derr := json.Unmarshal(stdout.Bytes(), &rep); derr != nil {
		t.Fatalf("playground-load %s: the JSON does not decode: %v\nrun: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), derr, err, stdout.String(), stderr.String())
	}
	if err != nil {
		t.Fatalf("playground-load %s: %v\nstderr:\n%s\nreport:\n%s", strings.Join(args, " "), err, stderr.String(), stdout.String())
	}
	return &rep
}

// needContainers skips (or fails, under PLAYGROUND_TEST_STRICT=1) where
// this machine cannot start containers.
func needContainers(t *testing.T) {
	t.Helper()
	// Not t.TempDir: as root a pool uid must reach the state dir, and
	// TempDir's parent is private.
	dir, err := os.MkdirTemp("", "playground-load-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := runtime.Check(runtime.Spec{Args: []string{shell}, StateDir: dir + "/state"}); err != nil {
		testenv.Skipf(t, "cannot start containers here: %v", err)
	}
}

// needBwrap skips where bubblewrap is missing or cannot make its
// namespaces here.
func needBwrap(t *testing.T) string {
	t.Helper()
	p := testenv.NeedCommand(t, "bwrap")
	args := bwrapArgs(p)
	args = append(args[:len(args)-1], "/bin/true")
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		testenv.Skipf(t, "bwrap cannot make its namespaces here: %v: %s", err, out)
	}
	return p
}

// checkServerTarget checks what every server target must show in a short
// run: every session answered, every measurement made, nothing left over.
func checkServerTarget(t *testing.T, rep *Report, name string) {
	t.Helper()
	tr := rep.find(name)
	if tr == nil {
		t.Fatalf("no %s in the report", name)
	}
	if r := tr.Ready; r == nil || r.Error != "" || r.Failed != 0 || r.P50ms <= 0 || r.P99ms < r.P50ms {
		t.Errorf("%s ready = %+v, want %d sessions answered, 0 < p50 <= p99", name, r, rep.Sizes.Ready)
	}
	if r := tr.Many; r == nil || r.Error != "" || r.Answered != rep.Sizes.Many || r.Failed != 0 {
		t.Errorf("%s many = %+v, want all %d answered", name, r, rep.Sizes.Many)
	} else if r.ServerRSSMiB <= 0 || r.Processes < rep.Sizes.Many {
		t.Errorf("%s many: server RSS %.1f MiB with %d processes under it, want > 0 and at least one per session", name, r.ServerRSSMiB, r.Processes)
	}
	if r := tr.Burst; r == nil || r.Error != "" || r.Answered != rep.Sizes.Burst || r.AllReadyS <= 0 || (tr.Name == "warm") != (r.Drained > 0) {
		t.Errorf("%s burst = %+v, want all %d answered (after draining the pool, for warm)", name, r, rep.Sizes.Burst)
	}
	if r := tr.Throughput; r == nil || r.Error != "" || r.MBps <= 0 {
		t.Errorf("%s throughput = %+v, want MB/s > 0", name, r)
	}
	// The flood's bytes, not its MB/s: a short run on a busy machine once
	// rounded a flowing flood to 0.0 MB/s.
	if r := tr.Echo; r == nil || r.Error != "" || r.IdleP50ms <= 0 || r.FloodP50ms <= 0 || r.FloodBytes <= 0 {
		t.Errorf("%s echo = %+v, want idle and flood round trips, and the flood flowing", name, r)
	}
	if r := tr.Echo; r != nil && rep.Sizes.Slow > 0 && (r.Slow != rep.Sizes.Slow || r.SlowP50ms <= 0 || r.SlowRSSPeakMiB <= 0) {
		t.Errorf("%s echo with slow readers = %+v, want %d slow readers, round trips and the server's memory", name, r, rep.Sizes.Slow)
	}
	if r := tr.Echo; r != nil && rep.Sizes.Hostile > 0 && (r.Hostile != rep.Sizes.Hostile || r.HostileP50ms <= 0 || r.HostileMsgsPerS <= 0) {
		t.Errorf("%s echo beside hostile clients = %+v, want %d hostile clients, round trips and their messages", name, r, rep.Sizes.Hostile)
	}
	if r := tr.Resume; r == nil || r.Error != "" || r.Failed != 0 || r.P50ms <= 0 || r.P99ms < r.P50ms || r.NewP50ms <= 0 {
		t.Errorf("%s resume = %+v, want %d resumes and new sessions beside", name, r, rep.Sizes.Resume)
	}
	if r := tr.Detached; r == nil || r.Error != "" || r.Opened != rep.Sizes.Detached || r.RSSDetachedMiB <= 0 {
		t.Errorf("%s detached = %+v, want %d sessions detached and the server's memory", name, r, rep.Sizes.Detached)
	}
	if r := tr.Watch; r == nil || r.Error != "" || r.Watched != rep.Sizes.Watch || r.ServerWatchers < float64(rep.Sizes.Watch) {
		t.Errorf("%s watch = %+v, want all %d sessions watched and answered, and the server counting the watchers", name, r, rep.Sizes.Watch)
	}
	if r := tr.Startup; r == nil || r.Error != "" || r.P50ms <= 0 {
		t.Errorf("%s startup = %+v, want the time to /readyz 200", name, r)
	}
	if r := tr.Churn; r == nil || r.Error != "" || r.Failed != 0 || r.Leftover == nil {
		t.Errorf("%s churn = %+v, want %d cycles and the leftovers counted", name, r, rep.Sizes.Churn)
	} else if !r.Leftover.zero() {
		t.Errorf("%s churn left over %s (before %s, after %s)", name, r.Leftover, r.Before, r.After)
	}
	if len(tr.Errors) > 0 {
		t.Errorf("%s: %v", name, tr.Errors)
	}
}

// checkRaw checks that the raw baseline was measured beside a server.
func checkRaw(t *testing.T, rep *Report) {
	t.Helper()
	raw := rep.find("raw")
	if raw == nil {
		t.Fatal("no raw in the report")
	}
	if r := raw.Ready; r == nil || r.Error != "" || r.P50ms <= 0 {
		t.Errorf("raw ready = %+v", r)
	}
	if r := raw.Throughput; r == nil || r.Error != "" || r.MBps <= 0 || len(r.RunMBps) != r.Rounds {
		t.Errorf("raw throughput = %+v", r)
	}
	if r := raw.Echo; r == nil || r.Error != "" || r.IdleP50ms <= 0 || r.FloodP50ms <= 0 {
		t.Errorf("raw echo = %+v", r)
	}
}

// TestRawIsTheLimit checks that the raw pty baseline behaves as the limit of the
// throughput figure should: it moves bytes through a real pty with nothing between
// the pty and its reader, and its reader gathers what the pty holds (reads larger
// than one 4 KiB pty read), as the server does. How fast it is beside the server is
// a figure for the load command and BENCHMARKS.md, measured beside its baseline in
// one run; a unit test on a busy 2-core machine cannot compare speeds fairly, so it
// checks behaviour only.
func TestRawIsTheLimit(t *testing.T) {
	rep := runShort(t, "--targets", "plain,raw", "--measure", "throughput", "--rounds", "3")
	raw, plain := rep.find("raw").Throughput, rep.find("plain").Throughput
	if raw == nil || plain == nil || raw.Error != "" || plain.Error != "" {
		t.Fatalf("throughput: raw %+v, plain %+v", raw, plain)
	}
	for name, r := range map[string]*ThroughputResult{"raw": raw, "plain": plain} {
		if r.MBps <= 0 || len(r.RunMBps) != r.Rounds {
			t.Errorf("%s: %.1f MB/s over rounds %v: no bytes moved", name, r.MBps, r.RunMBps)
		}
	}
	if raw.ChunkBytes <= 4096 {
		t.Errorf("raw pty: %d bytes per read: the baseline does not gather what the pty holds", raw.ChunkBytes)
	}
	if raw.ServerCPUPerMB != 0 || plain.ServerCPUPerMB <= 0 {
		t.Errorf("server CPU per MB: raw %.2f (has no server), plain %.2f (has one)", raw.ServerCPUPerMB, plain.ServerCPUPerMB)
	}
}

func TestPlainAndRaw(t *testing.T) {
	rep := runShort(t, "--targets", "plain,raw")
	checkServerTarget(t, rep, "plain")
	checkRaw(t, rep)
	if rep.Machine.CPUs < 1 || rep.Machine.Kernel == "" || rep.Machine.Go == "" {
		t.Errorf("machine = %+v, want CPUs, kernel and Go version", rep.Machine)
	}
}

func TestSelf(t *testing.T) {
	needContainers(t)
	rep := runShort(t, "--targets", "self,raw")
	checkServerTarget(t, rep, "self")
	checkRaw(t, rep)
	self := rep.find("self")
	if self.Ready != nil && self.Ready.StartP50ms <= 0 {
		t.Errorf("self ready: no start time from the server's log: %+v", self.Ready)
	}
	if c := self.Churn; c != nil && c.Leftover != nil && c.Leftover.StateDirs == unknown {
		t.Errorf("self churn: container mount points not counted: %+v", c.Leftover)
	}
	var names []string
	for _, g := range rep.Goals {
		names = append(names, g.Goal)
		if g.Status != "met" && g.Status != "missed" && g.Status != "not measured" {
			t.Errorf("goal %q: status %q", g.Goal, g.Status)
		}
	}
	if len(rep.Goals) != 11 {
		t.Errorf("goals = %q, want the issues' 11", names)
	}
	var phases []string
	for _, p := range self.Ready.Phases {
		phases = append(phases, p.Name)
		if p.P50ms < 0 || p.MeanMs < 0 {
			t.Errorf("phase %q: p50 %.3f, mean %.3f ms", p.Name, p.P50ms, p.MeanMs)
		}
	}
	for _, want := range []string{"namespaces, exec of init", "root and mounts", "capabilities", "no_new_privs, seccomp", "ready"} {
		if !slices.Contains(phases, want) {
			t.Errorf("self's start phases %q: no %q", phases, want)
		}
	}
	// The pod figure rests on the host's MemAvailable drop, which other
	// work on a shared machine can hide (a figure of 0 or less): then
	// there is no pod figure, and that is a finding, not a failure.
	if m := self.Many; m != nil && m.HostKiBPerSession > 0 {
		if rep.Pod == nil || rep.Pod.Sessions <= 0 && rep.Pod.MemorySessions != 0 {
			t.Errorf("sessions per pod = %+v (host KiB per session %.1f)", rep.Pod, m.HostKiBPerSession)
		}
	} else if rep.Pod != nil {
		t.Errorf("sessions per pod = %+v without a host memory figure", rep.Pod)
	}
}

func TestWarm(t *testing.T) {
	needContainers(t)
	rep := runShort(t, "--targets", "warm,plain")
	checkServerTarget(t, rep, "warm")
	found := false
	for _, g := range rep.Goals {
		if strings.Contains(g.Goal, "warm pool") {
			found = true
			if g.Status == "not measured" {
				t.Errorf("goal %q not measured: %s", g.Goal, g.Got)
			}
		}
	}
	if !found {
		t.Error("no warm pool goal in the report")
	}
}

// TestRlimits: the self server with cgroups off, and the goal of its echo
// under flood.
func TestRlimits(t *testing.T) {
	needContainers(t)
	rep := runShort(t, "--targets", "rlimits,raw", "--flood", "8", "--measure", "burst,echo")
	tr := rep.find("rlimits")
	if tr == nil || tr.Burst == nil || tr.Burst.Answered != rep.Sizes.Burst || tr.Echo == nil || tr.Echo.Error != "" || tr.Echo.FloodP99ms <= 0 {
		t.Fatalf("rlimits: %+v", tr)
	}
	found := false
	for _, g := range rep.Goals {
		if strings.Contains(g.Goal, "without cgroups") {
			found = g.Status != "not measured"
		}
	}
	if !found {
		t.Errorf("no measured goal for the echo without cgroups: %+v", rep.Goals)
	}
}

func TestBwrap(t *testing.T) {
	needBwrap(t)
	rep := runShort(t, "--targets", "bwrap,raw")
	checkServerTarget(t, rep, "bwrap")
	checkRaw(t, rep)
}

// TestBwrapIsBwrap checks that the bwrap baseline really runs its shells
// under bubblewrap, in namespaces of their own.
func TestBwrapIsBwrap(t *testing.T) {
	bwrap := needBwrap(t)
	tg := startTarget(t, "bwrap")
	s := openSession(t, tg)
	defer s.close()

	var sawBwrap bool
	var shells []int
	for _, pid := range descendants(tg.pid) {
		args := cmdline(pid)
		if exe(pid) == bwrap || len(args) > 0 && strings.HasSuffix(args[0], "bwrap") {
			sawBwrap = true
		} else if len(args) > 0 && args[0] == shell {
			shells = append(shells, pid)
		}
	}
	if !sawBwrap {
		t.Fatalf("no bwrap process under the bwrap server (pid %d): %v", tg.pid, descendants(tg.pid))
	}
	if len(shells) != 1 {
		t.Fatalf("shells under the bwrap server: %v, want one", shells)
	}
	for _, ns := range []string{"user", "pid", "mnt", "net", "uts", "ipc"} {
		mine, _ := os.Readlink("/proc/self/ns/" + ns)
		its, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", shells[0], ns))
		if err != nil {
			t.Fatalf("%s namespace of the shell: %v", ns, err)
		}
		if its == mine {
			t.Errorf("the bwrap baseline's shell shares our %s namespace", ns)
		}
	}
}

// TestPlainIsUnisolated checks the other side: the plain baseline's shell
// shares every namespace with the server.
func TestPlainIsUnisolated(t *testing.T) {
	tg := startTarget(t, "plain")
	s := openSession(t, tg)
	defer s.close()
	kids := descendants(tg.pid)
	if len(kids) != 1 || !slices.Equal(cmdline(kids[0]), []string{shell}) {
		t.Fatalf("processes under the plain server: %v, want one shell", kids)
	}
	for _, ns := range []string{"user", "pid", "mnt", "net"} {
		mine, _ := os.Readlink("/proc/self/ns/" + ns)
		its, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", kids[0], ns))
		if its != mine {
			t.Errorf("the plain baseline's shell is in its own %s namespace", ns)
		}
	}
}

// TestURL measures a server the command did not start, as it would ttyd:
// through --url only, finding its pid from its port.
func TestURL(t *testing.T) {
	tg := startTarget(t, "plain")
	if got := localListener(tg.url); got != tg.pid {
		t.Errorf("localListener(%s) = %d, want the server's pid %d", tg.url, got, tg.pid)
	}
	httpURL := "http" + strings.TrimSuffix(strings.TrimPrefix(tg.url, "ws"), "/ws") + "/"
	rep := runShort(t, "--url", httpURL, "--measure", "ready,many,churn", "--ready", "3")
	u := rep.find("url")
	if u == nil || u.Ready == nil || u.Ready.Failed != 0 || u.Ready.P50ms <= 0 {
		t.Fatalf("url ready = %+v", u)
	}
	if u.Many == nil || u.Many.Answered != rep.Sizes.Many || u.Many.ServerRSSMiB <= 0 {
		t.Errorf("url many = %+v, want all answered and the server's RSS", u.Many)
	}
	if u.Churn == nil || u.Churn.Leftover == nil || !u.Churn.Leftover.zero() {
		t.Errorf("url churn = %+v", u.Churn)
	}
}

func TestFormats(t *testing.T) {
	for _, tc := range []struct {
		name string
		flag string
		want []string
	}{
		{"table", "--format=table", []string{"ready p50 / p90 / p99 (ms), 2 sessions", "plain", "raw", "goals:", "ratios (same run):"}},
		{"markdown", "--markdown", []string{"# Benchmarks", "## Machine", "| ready p50 / p90 / p99 (ms), 2 sessions |", "## Goals", "## Analysis", "| plain |"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), runTimeout)
			defer cancel()
			var out, errs bytes.Buffer
			if err := run(ctx, []string{tc.flag, "-q", "--targets", "plain,raw", "--measure", "ready,throughput", "--ready", "2", "--bytes", "100000"}, &out, &errs); err != nil {
				t.Fatalf("run: %v\n%s", err, errs.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		inStderr string
	}{
		{"help", []string{"--help"}, 0, "Usage: playground-load"},
		{"unknown flag", []string{"--no-such-flag"}, 2, "flag provided but not defined"},
		{"argument", []string{"extra"}, 2, "no arguments expected"},
		{"unknown target", []string{"--targets", "self,docker"}, 2, `unknown target "docker"`},
		{"unknown measurement", []string{"--measure", "speed"}, 2, `unknown measurement "speed"`},
		{"url target without url", []string{"--targets", "url"}, 2, "target url needs --url"},
		{"bad url", []string{"--url", "ftp://x"}, 2, "want ws://"},
		{"two formats", []string{"--json", "--markdown"}, 2, "give one"},
		{"zero sessions", []string{"--ready", "0"}, 2, "--ready 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errs bytes.Buffer
			if code := mainArgs(tc.args, &out, &errs); code != tc.code {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tc.code, errs.String())
			}
			if !strings.Contains(errs.String(), tc.inStderr) {
				t.Errorf("stderr lacks %q:\n%s", tc.inStderr, errs.String())
			}
		})
	}
}

// TestHelpIsTrue checks that --help names every flag and measurement.
func TestHelpIsTrue(t *testing.T) {
	var out, errs bytes.Buffer
	mainArgs([]string{"--help"}, &out, &errs)
	for _, w := range append(slices.Clone(allMeasurements), "-targets", "-url", "-server-pid", "-json", "-markdown", "-short", "-all", "self", "plain", "bwrap", "raw", "ttyd") {
		if !strings.Contains(errs.String(), w) {
			t.Errorf("--help does not mention %q", w)
		}
	}
}

func TestHasLine(t *testing.T) {
	for _, tc := range []struct {
		out  string
		want bool
	}{
		{"$ echo $((6*7))\r\n42\r\n$ ", true},
		{"echo $((6*7))\r\n$ 42\r\n", true},
		{"echo $((6*7))\r\n42", false}, // not complete yet
		{"$ echo 42\r\n", false},       // the echo of a line, not the answer
		{"142\r\n", false},
		// bash's prompt and bracketed paste mode, a server's default shell
		{"\x1b[?2004h\x1b[1;32mroot@playground\x1b[0m:\x1b[1;34m~\x1b[0m# echo $((6*7))\r\n\x1b[?2004l\r42\r\n\x1b[?2004h", true},
		{"\x1b]0;root@playground: ~\x07root@playground:~# echo $((6*7))\r\n\x1b[?2004l\r42\r\n", true},
		{"\x1b[?2004l\r142\r\n", false},
		{"\x1b[1;32m# echo 42\x1b[0m\r\n", false},
	} {
		if got := hasLine([]byte(tc.out), "42"); got != tc.want {
			t.Errorf("hasLine(%q) = %v, want %v", tc.out, got, tc.want)
		}
	}
}

func TestPct(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(101-i)*time.Millisecond)
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {90, 90 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {0, time.Millisecond}} {
		if got := pct(ds, tc.p); got != tc.want {
			t.Errorf("pct(1..100 ms, %v) = %v, want %v", tc.p, got, tc.want)
		}
	}
	if pct(nil, 50) != 0 {
		t.Error("pct(nil) != 0")
	}
}

func TestWSURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"http://127.0.0.1:7681/", "ws://127.0.0.1:7681/ws"},
		{"http://127.0.0.1:7681", "ws://127.0.0.1:7681/ws"},
		{"https://example.com/tty/ws", "wss://example.com/tty/ws"},
		{"ws://[::1]:8080/ws", "ws://[::1]:8080/ws"},
	} {
		if got, err := wsURL(tc.in); err != nil || got != tc.want {
			t.Errorf("wsURL(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// startTarget starts a server target for a test and stops it after.
func startTarget(t *testing.T, name string) *target {
	t.Helper()
	cfg := defaultConfig()
	l, err := newLauncher(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), runTimeout)
	defer cancel()
	tg, err := l.start(ctx, name, "")
	if err != nil {
		_ = l.cleanup()
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := tg.stop(); err != nil {
			t.Errorf("stop %s: %v", name, err)
		}
		if err := l.cleanup(); err != nil {
			t.Error(err)
		}
	})
	return tg
}

// openSession opens a session that has answered.
func openSession(t *testing.T, tg *target) session {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), sessionTimeout)
	defer cancel()
	s, _, err := openAndAsk(ctx, tg)
	if err != nil {
		t.Fatalf("open a session on %s: %v", tg.name, err)
	}
	return s
}

// checkGoroutines closes this package's idle HTTP connections, then checks.
func checkGoroutines(before int) error {
	http.DefaultClient.CloseIdleConnections()
	statsClient.CloseIdleConnections()
	return testenv.CheckGoroutines(before)
}
