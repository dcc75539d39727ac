//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/guntainer/playground/internal/testenv"
	"github.com/prometheus/procfs"
)

// TestFloodProcess: the flooding sessions' clients run in a process of
// their own, fast and slow readers both receive, and ending it ends every
// session on the server.
func TestFloodProcess(t *testing.T) {
	tg := startTarget(t, "plain")
	ctx, cancel := context.WithTimeout(t.Context(), runTimeout)
	defer cancel()
	f, err := startFloodProc(ctx, tg, floodOptions{Fast: 1, Slow: 1})
	if err != nil {
		t.Fatal(err)
	}
	if f.cmd.Process.Pid == os.Getpid() || filepath.Base(f.cmd.Args[0]) != floodArg0 {
		t.Fatalf("the flood runs in %v, pid %d", f.cmd.Args, f.cmd.Process.Pid)
	}
	if sid, _ := sessionID(f.cmd.Process.Pid); sid != f.cmd.Process.Pid {
		t.Errorf("the flood process is in session %d, want one of its own", sid)
	}
	a, err := f.received()
	if err != nil {
		t.Fatal(err)
	}
	if a < 1<<20 {
		t.Errorf("received %d bytes once flowing, want at least the fast reader's megabyte", a)
	}
	total, err := f.end()
	if err != nil {
		t.Fatal(err)
	}
	if total < a {
		t.Errorf("received %d in all, less than the %d counted before", total, a)
	}
	if _, err := tg.waitMetric(ctx, "playground_sessions_active", func(v float64) bool { return v == 0 }); err != nil {
		t.Errorf("the flood's sessions did not end with it: %v", err)
	}
}

// TestHostileClients: hostile clients send from a process of their own at
// the lowest CPU priority, their messages reach the server (cat in their
// sessions sends their keystrokes back), and ending the process ends every
// session on the server.
func TestHostileClients(t *testing.T) {
	tg := startTarget(t, "plain")
	ctx, cancel := context.WithTimeout(t.Context(), runTimeout)
	defer cancel()
	f, err := startFloodProc(ctx, tg, floodOptions{Hostile: 2})
	if err != nil {
		t.Fatal(err)
	}
	pid := f.cmd.Process.Pid
	if sid, _ := sessionID(pid); sid != pid {
		t.Errorf("the hostile clients' process is in session %d, want one of its own", sid)
	}
	// Every thread, those made since too.
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil || len(tasks) == 0 {
		t.Fatalf("its threads: %v", err)
	}
	for _, e := range tasks {
		nice, err := threadNice(pid, e.Name())
		if err != nil && !errors.Is(err, os.ErrNotExist) { // a thread may end meanwhile
			t.Fatal(err)
		}
		if err == nil && nice != 19 {
			t.Errorf("thread %s at nice %d, want 19", e.Name(), nice)
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/autogroup", pid)); err == nil && !strings.HasSuffix(strings.TrimSpace(string(b)), "nice 19") {
		t.Errorf("its autogroup: %q, want nice 19", b)
	}
	got0, sent0, err := f.counts()
	if err != nil {
		t.Fatal(err)
	}
	if got0 <= 0 {
		t.Errorf("received %d bytes once flowing, want the keystrokes back", got0)
	}
	// Messages go on being sent: wait for more, as long as the test may.
	for {
		got, sent, err := f.counts()
		if err != nil {
			t.Fatal(err)
		}
		if sent > sent0 && got > got0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no more sent or received: %d and %d messages sent, %d and %d bytes received", sent0, sent, got0, got)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if _, err := f.end(); err != nil {
		t.Fatal(err)
	}
	if _, err := tg.waitMetric(ctx, "playground_sessions_active", func(v float64) bool { return v == 0 }); err != nil {
		t.Errorf("the hostile clients' sessions did not end with them: %v", err)
	}
}

// threadNice is one thread's nice value, from /proc/PID/task/TID/stat.
func threadNice(pid int, tid string) (int, error) {
	n, err := strconv.Atoi(tid)
	if err != nil {
		return 0, err
	}
	fs, err := procfs.NewFS(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, err
	}
	p, err := fs.Proc(n)
	if err != nil {
		return 0, err
	}
	st, err := p.Stat()
	return st.Nice, err
}

// TestParseCounts: the flood process's count line, and what is not one.
func TestParseCounts(t *testing.T) {
	if r, s, err := parseCounts("received 12 sent 3"); err != nil || r != 12 || s != 3 {
		t.Errorf("parseCounts = %d, %d, %v; want 12, 3", r, s, err)
	}
	for _, bad := range []string{"", "received 12", "received x sent 3", "received 1 sent", "sent 3 received 12", "received 1 sent 2 more"} {
		if _, _, err := parseCounts(bad); err == nil {
			t.Errorf("parseCounts(%q) took it", bad)
		}
	}
}

// sessionID is a process's session, from /proc/PID/stat.
func sessionID(pid int) (int, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return 0, err
	}
	st, err := p.Stat()
	return st.Session, err
}

// TestServeStartup builds the playground binary and times its start to
// /readyz 200, as bench.sh does.
func TestServeStartup(t *testing.T) {
	needContainers(t)
	goBin := testenv.NeedCommand(t, "go")
	bin := filepath.Join(t.TempDir(), "playground")
	// From the source, wherever the test binary runs.
	build := exec.Command(goBin, "build", "-buildvcs=false", "-o", bin, "./cmd/playground") // the copy CI builds from may be another user's git tree
	build.Dir = testenv.SourceRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/playground: %v\n%s", err, out)
	}
	rep := runShort(t, "--targets", "serve", "--measure", "startup", "--startup", "1", "--playground", bin)
	r := rep.find("serve")
	if r == nil || r.Startup == nil || r.Startup.Error != "" || r.Startup.P50ms <= 0 {
		t.Fatalf("serve startup = %+v", r)
	}
}

// TestPodFigure checks the sessions-per-pod arithmetic on figures given.
func TestPodFigure(t *testing.T) {
	r := &Report{podMemory: 160 << 20, podCPU: 0.25}
	r.Targets = []*TargetReport{{
		Name:    "self",
		Many:    &ManyResult{HostKiBPerSession: 2048, ServerRSSBeforeMiB: 10},
		Echo:    &EchoResult{IdleCPUPerKeyMs: 0.5},
		Startup: &StartupResult{P50ms: 40},
	}}
	p := r.podFigure()
	// Memory: (160 - 10) MiB / 2 MiB = 75; CPU: 0.25 / (5 × 0.5 ms/s) = 100.
	if p == nil || p.MemorySessions != 75 || p.CPUSessions != 100 || p.Sessions != 75 || p.StartupMs != 40 {
		t.Fatalf("pod figure = %+v, want 75 by memory, 100 by CPU, 75 in all, ready in 40 ms", p)
	}
	r.Targets[0].Echo.IdleCPUPerKeyMs = 1 // 0.25 / 0.005 = 50: CPU binds
	if p := r.podFigure(); p.Sessions != 50 {
		t.Fatalf("pod figure = %+v, want 50 (CPU)", p)
	}
	if lines := podLines(r.podFigure()); len(lines) != 4 || !strings.Contains(lines[0], "**50**") {
		t.Errorf("pod lines = %q", lines)
	}
}

// TestPhaseFigures checks the phase table's arithmetic.
func TestPhaseFigures(t *testing.T) {
	got := phaseFigures([]phaseTimes{{Name: "a", Ns: []int64{1e6, 3e6, 2e6}}, {Name: "empty"}})
	if len(got) != 1 || got[0].Name != "a" || got[0].P50ms != 2 || got[0].MeanMs != 2 {
		t.Fatalf("phaseFigures = %+v", got)
	}
}

// TestFloodMoved: a flood that did not move while the round trips were
// timed (a starved machine; a CI run once read 0 bytes in a short run's
// window) is waited for, and its rate taken over the longer window; one
// that never moves is an error, not a 0 MB/s figure.
func TestFloodMoved(t *testing.T) {
	counts := func(n ...int64) func() (int64, error) {
		return func() (int64, error) {
			c := n[0]
			if len(n) > 1 {
				n = n[1:]
			}
			return c, nil
		}
	}
	t0 := time.Now()
	got, d, err := floodMoved(counts(100, 100, 100, 4196), 100, t0, time.Minute)
	if err != nil || got != 4196 || d < 10*time.Millisecond {
		t.Errorf("a flood that moved on the fourth count: %d bytes in %v, %v; want 4196 in at least 10 ms, no error", got, d, err)
	}
	got, _, err = floodMoved(counts(5000), 100, time.Now(), time.Minute)
	if err != nil || got != 5000 {
		t.Errorf("a flood that moved at once: %d, %v; want 5000, no error", got, err)
	}
	got, d, err = floodMoved(counts(100), 100, time.Now(), 50*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "no byte flowed") || d < 50*time.Millisecond {
		t.Errorf("a flood that never moved: %d in %v, %v; want the error no byte flowed after 50 ms", got, d, err)
	}
	_, _, err = floodMoved(func() (int64, error) { return 0, errors.New("the flood process ended") }, 100, time.Now(), time.Minute)
	if err == nil || !strings.Contains(err.Error(), "ended") {
		t.Errorf("a flood process that ended: %v, want its error", err)
	}
}

// TestBenchmarksHasThisAnalysis: BENCHMARKS.md ends with analysis.md as
// bench.sh writes it. An edit to one alone (the analysis is often amended
// between runs, by hand in both) is caught here, not by the next reader.
func TestBenchmarksHasThisAnalysis(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(testenv.SourceRoot(), "BENCHMARKS.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, got, found := strings.Cut(string(b), "\n"+strings.SplitN(analysis, "\n", 2)[0]+"\n")
	if !found {
		t.Fatalf("BENCHMARKS.md has no %q heading", strings.SplitN(analysis, "\n", 2)[0])
	}
	if want := strings.SplitN(analysis, "\n", 2)[1]; got != want {
		g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
		for i := range min(len(g), len(w)) {
			if g[i] != w[i] {
				t.Fatalf("BENCHMARKS.md's analysis differs from cmd/playground-load/analysis.md at its line %d:\n  BENCHMARKS.md: %q\n  analysis.md:   %q\nrun bench.sh, or make the same edit in both", i+2, g[i], w[i])
			}
		}
		t.Fatalf("BENCHMARKS.md's analysis has %d lines, analysis.md %d", len(g), len(w))
	}
}
