package runtime

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/guntainer/playground/internal/testenv"
)

// BenchmarkStart times runtime.Start to the program's first output: the
// container's part of a session's start, without the server.
func BenchmarkStart(b *testing.B) {
	spec := Spec{Args: []string{"/bin/sh", "-c", "echo ready"}, StateDir: testStateDir(b)}
	if err := Check(spec); err != nil {
		b.Fatalf("cannot start containers here: %v", err)
	}
	for b.Loop() {
		c, err := Start(spec)
		if err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, 256)
		var out strings.Builder
		timer := time.AfterFunc(10*time.Second, func() { _ = c.Close() }) // the watchdog
		for !strings.Contains(out.String(), "ready") {
			n, err := c.Read(buf)
			if err != nil {
				b.Fatalf("read: %v; output so far %q", err, out.String())
			}
			out.Write(buf[:n])
		}
		timer.Stop()
		_ = c.Close()
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/start")
}

// BenchmarkColdStart times a start to the program's first output, as
// BenchmarkStart does, and reports its median beside a bare bubblewrap's
// in the same run (sub-benchmarks playground and bwrap; run both with
// -bench ColdStart), and, for the playground, what each layer of the start
// costs (the mean of each phase, from the stamps init sends with "ready").
// The sealed copy of the binary is made once per process, not per start:
// its one-time cost is reported as memfd-once-ms.
//
// playground-limits is the same with a Host as a server has (cgroups as
// root, subordinate ids for an ordinary user that has them): beside
// playground, what the limits add to a cold start.
func BenchmarkColdStart(b *testing.B) {
	b.Run("playground", func(b *testing.B) { coldStart(b, nil) })
	b.Run("playground-limits", func(b *testing.B) {
		h, err := NewHost(HostOptions{StateDir: testStateDir(b)})
		if err != nil {
			b.Fatal(err)
		}
		defer closeTestHost(h)
		b.Logf("%s", strings.Join(h.ModeLines(), "; "))
		coldStart(b, h)
	})
	b.Run("bwrap", coldStartBwrap)
}

func coldStart(b *testing.B, h *Host) {
	{
		spec := Spec{Args: []string{"/bin/sh", "-c", "echo ready"}, Host: h}
		if h == nil {
			spec.StateDir = testStateDir(b)
		}
		if err := Check(spec); err != nil {
			b.Fatalf("cannot start containers here: %v", err)
		}
		t0 := time.Now()
		f, err := sealExecutable()
		if err != nil {
			b.Fatal(err)
		}
		memfd := time.Since(t0)
		_ = f.Close()
		var totals []time.Duration
		sums := map[string]time.Duration{}
		var order []string
		for b.Loop() {
			t0 := time.Now()
			c, err := Start(spec)
			if err != nil {
				b.Fatal(err)
			}
			waitReady(b, c)
			totals = append(totals, time.Since(t0))
			for i := 1; i < len(c.phases); i++ {
				p := c.phases[i]
				if _, ok := sums[p.Name]; !ok {
					order = append(order, p.Name)
				}
				sums[p.Name] += time.Duration(p.At - c.phases[i-1].At)
			}
			_ = c.Close()
		}
		b.ReportMetric(median(totals), "p50-ms")
		b.ReportMetric(float64(memfd.Microseconds())/1000, "memfd-once-ms")
		for _, name := range order {
			b.Logf("%-28s %7.3f ms", name, float64(sums[name].Microseconds())/1000/float64(len(totals)))
		}
	}
}

func coldStartBwrap(b *testing.B) {
	{
		bwrap, err := exec.LookPath("bwrap")
		if err != nil {
			testenv.Skipf(b, "no bwrap: %v", err)
		}
		args := bwrapArgs(bwrap)
		var totals []time.Duration
		for b.Loop() {
			t0 := time.Now()
			cmd := exec.Command(args[0], args[1:]...)
			tty, err := pty.Start(cmd)
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, 256)
			var out strings.Builder
			for !strings.Contains(out.String(), "ready") {
				n, err := tty.Read(buf)
				if err != nil {
					b.Fatalf("bwrap: %v; output %q", err, out.String())
				}
				out.Write(buf[:n])
			}
			totals = append(totals, time.Since(t0))
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			_ = tty.Close()
		}
		b.ReportMetric(median(totals), "p50-ms")
	}
}

// bwrapArgs is bubblewrap running sh -c 'echo ready' in a root laid out
// as the runtime's host rootfs is (as cmd/playground-load's bwrap target).
func bwrapArgs(bwrap string) []string {
	args := []string{bwrap, "--unshare-all", "--die-with-parent", "--ro-bind", "/usr", "/usr"}
	for _, d := range []string{"/bin", "/lib", "/lib64", "/sbin", "/lib32", "/libx32"} {
		fi, err := os.Lstat(d)
		switch {
		case err != nil:
		case fi.Mode()&os.ModeSymlink != 0:
			if target, err := os.Readlink(d); err == nil {
				args = append(args, "--symlink", target, d)
			}
		default:
			args = append(args, "--ro-bind", d, d)
		}
	}
	return append(args, "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/root",
		"--dir", "/etc", "--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache",
		"--hostname", "playground", "--chdir", "/root", "/bin/sh", "-c", "echo ready")
}

func waitReady(b *testing.B, c *Container) {
	buf := make([]byte, 256)
	var out strings.Builder
	timer := time.AfterFunc(10*time.Second, func() { _ = c.Close() }) // the watchdog
	defer timer.Stop()
	for !strings.Contains(out.String(), "ready") {
		n, err := c.Read(buf)
		if err != nil {
			b.Fatalf("read: %v; output so far %q", err, out.String())
		}
		out.Write(buf[:n])
	}
}

func median(ds []time.Duration) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return float64(s[len(s)/2].Microseconds()) / 1000
}
