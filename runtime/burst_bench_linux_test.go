package runtime

import (
	"fmt"
	"os"
	"os/exec"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/guntainer/playground/internal/testenv"
)

// BenchmarkBurst starts N containers at once (N is PLAYGROUND_BURST, 300
// by default), each running sh -c 'echo ready' on a pty, and times the
// burst until every one has printed; beside it in the same run, N bare
// bubblewraps at once, laid out as the host rootfs is (bwrapArgs). What a
// burst serialises on shows in a mutex or block profile of the
// playground sub-benchmarks (-mutexprofile, -blockprofile), and in the
// kernel (perf). Sub-benchmarks: playground (the default Host: no
// cgroups), playground-program-as-init (the same, the program as PID 1 in
// init's place, as the server's sessions run), playground-limits (that,
// with a Host as a server has: cgroups as root, subordinate ids as an
// ordinary user that has them), playground-v2 (that, with v2 cgroups, as
// root), the last two again with init forked by this process rather than
// the spawner (-no-spawner), bwrap.
func BenchmarkBurst(b *testing.B) {
	n := 300
	if s := os.Getenv("PLAYGROUND_BURST"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	if s := os.Getenv("PLAYGROUND_BURST_BALLAST"); s != "" {
		mib, fds, _ := strings.Cut(s, ",")
		m, _ := strconv.Atoi(mib)
		f, _ := strconv.Atoi(fds)
		ballast, files := serverBallast(b, m, f)
		defer func() {
			for _, f := range files {
				_ = f.Close()
			}
			goruntime.KeepAlive(ballast)
		}()
	}
	b.Run("playground", func(b *testing.B) { burstContainers(b, n, nil, false) })
	b.Run("playground-program-as-init", func(b *testing.B) { burstContainers(b, n, nil, true) })
	limits := func(b *testing.B) {
		h, err := NewHost(HostOptions{StateDir: testStateDir(b), PrepareIDs: n}) // as a server for n sessions
		if err != nil {
			b.Fatal(err)
		}
		defer closeTestHost(h)
		b.Logf("%s", strings.Join(h.ModeLines(), "; "))
		burstContainers(b, n, h, true)
	}
	b.Run("playground-limits", limits)
	// The same, init forked by this process instead of the spawner (as
	// before it): with
	// PLAYGROUND_BURST_BALLAST=MiB,FDS this process holds that much heap
	// and that many more descriptors, as a server with sessions does.
	b.Run("playground-limits-no-spawner", func(b *testing.B) {
		noSpawner = true
		defer func() { noSpawner = false }()
		limits(b)
	})
	// A server's starts into v2 cgroups, as with a delegated subtree: here
	// the v2 hierarchy has no controllers, so this is the fork into a
	// cgroup (CLONE_INTO_CGROUP), its enter and its removal, without
	// limits; by the spawner (cloneInit), and by this process.
	v2 := func(b *testing.B) {
		if os.Getuid() != 0 {
			testenv.Skipf(b, "cgroup v2 starts: an ordinary user owns no v2 cgroup here")
		}
		h, err := NewHost(HostOptions{StateDir: testStateDir(b), PrepareIDs: n, NoCgroups: true})
		if err != nil {
			b.Fatal(err)
		}
		defer closeTestHost(h)
		if h.cgroups, err = NewCgroups(CgroupOptions{Version: 2, NoControllers: true, Name: testCgroupName() + "-burst"}); err != nil {
			b.Fatal(err)
		}
		burstContainers(b, n, h, true)
	}
	b.Run("playground-v2", v2)
	b.Run("playground-v2-no-spawner", func(b *testing.B) {
		noSpawner = true
		defer func() { noSpawner = false }()
		v2(b)
	})
	b.Run("bwrap", func(b *testing.B) {
		bwrap, err := exec.LookPath("bwrap")
		if err != nil {
			testenv.Skipf(b, "no bwrap: %v", err)
		}
		args := bwrapArgs(bwrap)
		var kids0, kids1 unix.Rusage
		_ = unix.Getrusage(unix.RUSAGE_CHILDREN, &kids0)
		defer func() {
			_ = unix.Getrusage(unix.RUSAGE_CHILDREN, &kids1)
			ns := unix.TimevalToNsec(kids1.Utime) - unix.TimevalToNsec(kids0.Utime) + unix.TimevalToNsec(kids1.Stime) - unix.TimevalToNsec(kids0.Stime)
			b.ReportMetric(float64(ns)/1e6/float64(n*b.N), "container-cpu-ms/start")
		}()
		burst(b, n, func() (func(), error) {
			cmd := exec.Command(args[0], args[1:]...)
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Pdeathsig: syscall.SIGKILL}
			tty, err := pty.Start(cmd)
			if err != nil {
				return nil, err
			}
			stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); _ = tty.Close() }
			if err := readyOn(tty.Read); err != nil {
				stop()
				return nil, err
			}
			return stop, nil
		})
	})
}

func burstContainers(b *testing.B, n int, h *Host, programIsInit bool) {
	spec := Spec{Args: []string{"/bin/sh", "-c", "echo ready; exec sleep 1000"}, Host: h, ProgramIsInit: programIsInit}
	if h == nil {
		spec.StateDir = testStateDir(b)
	}
	if err := Check(spec); err != nil {
		b.Fatalf("cannot start containers here: %v", err)
	}
	var mu sync.Mutex
	sums := map[string]time.Duration{}
	var order []string
	var self0, kids0 unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &self0)
	_ = unix.Getrusage(unix.RUSAGE_CHILDREN, &kids0)
	spawner0 := spawnerCPU(b)
	burst(b, n, func() (func(), error) {
		c, err := Start(spec)
		if err != nil {
			return nil, err
		}
		if err := readyOn(c.Read); err != nil {
			_ = c.Close()
			return nil, err
		}
		mu.Lock()
		for i := 1; i < len(c.phases); i++ {
			p := c.phases[i]
			if _, ok := sums[p.Name]; !ok {
				order = append(order, p.Name)
			}
			sums[p.Name] += time.Duration(p.At - c.phases[i-1].At)
		}
		mu.Unlock()
		return func() { _ = c.Close() }, nil
	})
	// CPU per container: this process's and the spawner's (the server's
	// part), and its reaped children's (init and the program).
	spawner1 := spawnerCPU(b)
	var self1, kids1 unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &self1)
	_ = unix.Getrusage(unix.RUSAGE_CHILDREN, &kids1)
	cpu := func(a, b unix.Rusage) float64 {
		return float64(unix.TimevalToNsec(b.Utime)-unix.TimevalToNsec(a.Utime)+unix.TimevalToNsec(b.Stime)-unix.TimevalToNsec(a.Stime)) / 1e6
	}
	starts := float64(n * b.N)
	b.ReportMetric((cpu(self0, self1)+float64(spawner1-spawner0)/1e6)/starts, "server-cpu-ms/start")
	b.ReportMetric(float64(spawner1-spawner0)/1e6/starts, "of-which-spawner-ms/start")
	b.ReportMetric(cpu(kids0, kids1)/starts, "container-cpu-ms/start")
	for _, name := range order {
		b.Logf("%-28s %8.2f ms (mean in the burst)", name, float64(sums[name].Microseconds())/1000/starts)
	}
}

// burst runs n starts at once, b.N times, and reports the time until all
// n were ready (the median of the bursts), and each start's p50 and p99.
func burst(b *testing.B, n int, start func() (stop func(), err error)) {
	var walls, each []time.Duration
	for b.Loop() {
		var wg sync.WaitGroup
		var mu sync.Mutex
		var stops []func()
		var errs []string
		t0 := time.Now()
		for range n {
			wg.Go(func() {
				s0 := time.Now()
				stop, err := start()
				d := time.Since(s0)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err.Error())
					return
				}
				stops = append(stops, stop)
				each = append(each, d)
			})
		}
		wg.Wait()
		walls = append(walls, time.Since(t0))
		b.StopTimer()
		var cw sync.WaitGroup
		for _, s := range stops {
			cw.Go(s)
		}
		cw.Wait()
		b.StartTimer()
		if len(errs) > 0 {
			b.Fatalf("%d of %d starts failed; first: %s", len(errs), n, errs[0])
		}
	}
	slices.Sort(walls)
	slices.Sort(each)
	b.ReportMetric(walls[len(walls)/2].Seconds(), "s/burst")
	b.ReportMetric(float64(each[len(each)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(each[len(each)*99/100].Microseconds())/1000, "p99-ms")
	b.Logf("%d at once: all ready in %v (each: p50 %v, p99 %v)", n, walls[len(walls)/2].Round(time.Millisecond), each[len(each)/2].Round(time.Millisecond), each[len(each)*99/100].Round(time.Millisecond))
}

// readyOn reads until "ready" has come, or fails after 60 s.
func readyOn(read func([]byte) (int, error)) error {
	buf := make([]byte, 256)
	var out strings.Builder
	done := make(chan error, 1)
	go func() {
		for !strings.Contains(out.String(), "ready") {
			n, err := read(buf)
			out.Write(buf[:n])
			if err != nil {
				done <- fmt.Errorf("read: %v; output %q", err, out.String())
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(60 * time.Second):
		return fmt.Errorf("not ready after 60 s; output %q", out.String())
	}
}

// spawnerCPU is the CPU time the spawner has used, in nanoseconds (0 with
// none): it is a child of this process that is never reaped while it runs,
// so RUSAGE_CHILDREN leaves it out.
func spawnerCPU(b *testing.B) int64 {
	pid, _ := Spawner()
	if pid == 0 {
		return 0
	}
	st := mustStat(b, pid)
	return int64(st.UTime+st.STime) * int64(time.Second) / 100 // clock ticks: USER_HZ is 100 on Linux
}

// serverBallast makes this process hold mib MiB of heap, every page
// touched, and fds more open descriptors, as a server with sessions does.
func serverBallast(b *testing.B, mib, fds int) ([][]byte, []*os.File) {
	ballast := make([][]byte, mib)
	for i := range ballast {
		ballast[i] = make([]byte, 1<<20)
		for j := 0; j < len(ballast[i]); j += 4096 {
			ballast[i][j] = 1
		}
	}
	var files []*os.File
	for range fds {
		f, err := os.Open(os.DevNull)
		if err != nil {
			b.Fatal(err)
		}
		files = append(files, f)
	}
	return ballast, files
}
