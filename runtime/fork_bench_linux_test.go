package runtime

import (
	"fmt"
	"os/exec"
	goruntime "runtime"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/guntainer/playground/internal/testenv"
)

// BenchmarkForkCost is what a start's fork costs the process that forks:
// Go's os/exec forks with CLONE_VM|CLONE_VFORK (the child shares the
// parent's memory until it executes) only when no new user namespace is
// asked for; with one, as every container start asks, it forks a copy of
// the parent: its page tables, and its descriptor table, grow with the
// server's heap and sessions. Each sub-benchmark starts true, with
// and without CLONE_NEWUSER, from this process made to hold a heap of
// 0 or 60 MiB (touched) and 100 or 7,000 more descriptors (a server with
// 1,000 sessions holds about that much), and reports this process's CPU
// time per start (parent-cpu-ms/start).
func BenchmarkForkCost(b *testing.B) {
	trueCmd := testenv.NeedCommand(b, "true")
	for _, size := range []struct{ heapMiB, fds int }{{0, 100}, {60, 7000}} {
		for _, userns := range []bool{false, true} {
			name := fmt.Sprintf("heap-%dMiB-fds-%d/userns-%v", size.heapMiB, size.fds, userns)
			b.Run(name, func(b *testing.B) {
				ballast, files := serverBallast(b, size.heapMiB, size.fds)
				defer func() {
					for _, f := range files {
						_ = f.Close()
					}
				}()
				var r0, r1 unix.Rusage
				_ = unix.Getrusage(unix.RUSAGE_SELF, &r0)
				for b.Loop() {
					cmd := exec.Command(trueCmd)
					if userns {
						cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER}
					}
					if err := cmd.Run(); err != nil {
						b.Fatal(err)
					}
				}
				_ = unix.Getrusage(unix.RUSAGE_SELF, &r1)
				ns := unix.TimevalToNsec(r1.Utime) - unix.TimevalToNsec(r0.Utime) + unix.TimevalToNsec(r1.Stime) - unix.TimevalToNsec(r0.Stime)
				b.ReportMetric(float64(ns)/1e6/float64(b.N), "parent-cpu-ms/start")
				b.ReportMetric(float64(r1.Minflt-r0.Minflt)/float64(b.N), "minflt/start")
				goruntime.KeepAlive(ballast)
			})
		}
	}
}
