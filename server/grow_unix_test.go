//go:build unix

package server

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	pgruntime "github.com/guntainer/playground/runtime"
)

// growUnderDataLimit is TestInitGrowsUnderItsDataLimit's child: it takes
// the RLIMIT_DATA a session without a cgroup gets by default, as the
// container's init (this binary) does, and then grows its heap.
func growUnderDataLimit() int {
	for _, r := range pgruntime.RlimitsFor(pgruntime.Limits{}, false) {
		if r.Name != "data" {
			continue
		}
		var lim syscall.Rlimit
		setLimit(&lim.Cur, &lim.Max, r.Cur, r.Max)
		if err := syscall.Setrlimit(syscall.RLIMIT_DATA, &lim); err != nil {
			fmt.Println(err)
			return 1
		}
	}
	var keep [][]byte
	for range 128 {
		b := make([]byte, 1<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		keep = append(keep, b)
	}
	fmt.Println("grew", len(keep), "MiB")
	return 0
}

// setLimit sets an Rlimit's fields, whose type is the system's: uint64 on
// Linux and macOS, int64 on FreeBSD (where RLIM_INFINITY is -1, as the
// conversion makes it).
func setLimit[T ~int64 | ~uint64](cur, max *T, c, m uint64) { *cur, *max = T(c), T(m) }

// TestInitGrowsUnderItsDataLimit: a resident init (Spec.ProgramIsInit
// unset: playground run's, and this package's tests' until they started
// sessions as serve does) of a session without a cgroup is this binary
// under the session's RLIMIT_DATA (512 MiB by default), and it must be
// able to grow its heap there. Built with the race detector, whose runtime
// maps some 300 MiB at start and shadow memory for every heap it grows, it
// could not: in CI's go test -race, TestConnectStorm once lost a session
// to "container init ended before it was ready: exit code 66"
// (ThreadSanitizer failing to allocate).
func TestInitGrowsUnderItsDataLimit(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), growEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "grew 128 MiB") {
		t.Fatalf("a binary like init under the default RLIMIT_DATA grew no 128 MiB of heap: %v\n%s", err, out)
	}
}
