package runtime

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/guntainer/playground/internal/testenv"
)

// TestMain makes the test binary the containers' init too, and fails the
// run if the tests as a whole left an fd open or a child process behind.
func TestMain(m *testing.M) {
	MaybeInit()     // this test binary is also the containers' init
	maybeAttacker() // and the escape suite's attacker inside them
	// The Go runtime's poller opens its own fds on first use: let it, so
	// they are in the baseline.
	if r, w, err := os.Pipe(); err == nil {
		_, _ = r.Close(), w.Close()
	}
	// The sealed copy of the binary is made once and kept for good.
	if err := beforeTests(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fds := openFds()
	code := m.Run()
	if err := closeSharedHosts(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	if code == 0 {
		if err := checkLeaks(fds); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	afterTests()
	os.Exit(code)
}

func checkLeaks(fds int) error {
	deadline := time.Now().Add(3 * time.Second)
	for {
		kids, n := childPids(), openFds()
		if len(kids) == 0 && n <= fds {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("leak: %d fds open before the tests, %d after; child processes %v", fds, n, kids)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func openFds() int {
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0 // not Linux: nothing to compare
	}
	return len(es)
}

// childPids lists the processes whose parent is this process, as
// "PID (comm)".
func childPids() []string { return testenv.Children(notLeftover) }
