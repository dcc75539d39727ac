package runtime

import (
	"os/exec"
	goruntime "runtime"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// BenchmarkSpinnersNice measures what SessionNice buys without cgroups:
// the server's wakeup latency (a 1 ms timer, p99 of the oversleep) while
// two CPU spinners per CPU run as a flooding session's processes would, at
// nice 0 (the baseline: what landed) and at SessionNice, in the same run.
func BenchmarkSpinnersNice(b *testing.B) {
	for _, nice := range []int{0, SessionNice} {
		b.Run("nice="+strconv.Itoa(nice), func(b *testing.B) {
			var spinners []*exec.Cmd
			for range 2 * goruntime.NumCPU() {
				cmd := exec.Command("nice", "-n", strconv.Itoa(nice), "/bin/sh", "-c", "while :; do :; done")
				cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
				if err := cmd.Start(); err != nil {
					b.Fatal(err)
				}
				spinners = append(spinners, cmd)
			}
			defer func() {
				for _, c := range spinners {
					_ = c.Process.Kill()
					_ = c.Wait()
				}
			}()
			time.Sleep(100 * time.Millisecond) // let them spin up (a benchmark, not a test)
			var late []time.Duration
			b.ResetTimer()
			for range b.N {
				for range 200 {
					t0 := time.Now()
					time.Sleep(time.Millisecond)
					late = append(late, time.Since(t0)-time.Millisecond)
				}
			}
			b.StopTimer()
			slices.Sort(late)
			p := func(q float64) float64 { return float64(late[int(q*float64(len(late)-1))].Microseconds()) / 1000 }
			b.ReportMetric(p(0.5), "p50-ms")
			b.ReportMetric(p(0.99), "p99-ms")
			b.Logf("%d wakeups beside %d spinners at nice %d: p50 %.2f ms, p99 %.2f ms", len(late), len(spinners), nice, p(0.5), p(0.99))
		})
	}
}
