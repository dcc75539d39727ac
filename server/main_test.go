package server

import (
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/guntainer/playground/internal/testenv"
	pgruntime "github.com/guntainer/playground/runtime"
)

// TestMain fails the run if goroutines, fds or child processes outlive
// the tests: every session's goroutines must be joined, and its
// container torn down, by the time the server has shut down.
func TestMain(m *testing.M) {
	pgruntime.MaybeInit() // this test binary is also the containers' init
	if os.Getenv(growEnv) == "1" {
		os.Exit(growUnderDataLimit())
	}
	// A plain pty's shell (plainStart) inherits this process's signal
	// dispositions. Started with SIGINT ignored (in the background of a
	// script: `go test ./... &`), its programs ignored Ctrl-C, and the
	// Ctrl-C tests failed; under the server they never do, as it handles
	// SIGINT, and a handled signal is the default again after exec. So
	// handle it here too.
	if signal.Ignored(syscall.SIGINT) {
		signal.Notify(make(chan os.Signal, 1), syscall.SIGINT)
	}
	// The Go runtime's poller opens its own fds on first use: let it, so
	// they are in the baseline.
	if r, w, err := os.Pipe(); err == nil {
		_, _ = r.Close(), w.Close()
	}
	fds := openFds()
	before := len(testenv.Goroutines())
	code := m.Run()
	if code == 0 {
		http.DefaultClient.CloseIdleConnections()
		if err := testenv.CheckGoroutines(before); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
		if err := checkLeaks(fds); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

func checkLeaks(fds int) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		kids, n := childPids(), openFds()
		if len(kids) == 0 && n <= fds {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("leak: %d fds open before the tests, %d after (%s); child processes %v", fds, n, fdList(), kids)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// openFds counts this process's open fds, but the runtime's sealed copy
// of the binary and its socket to the spawner, which it makes at the first
// container start and keeps for good.
func openFds() int {
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0 // not Linux: nothing to compare
	}
	_, spawnerFd := pgruntime.Spawner()
	n := 0
	for _, e := range es {
		if l, _ := os.Readlink("/proc/self/fd/" + e.Name()); !strings.HasPrefix(l, "/memfd:playground") && e.Name() != strconv.Itoa(spawnerFd) {
			n++
		}
	}
	return n
}

func fdList() string {
	es, _ := os.ReadDir("/proc/self/fd")
	var out []string
	for _, e := range es {
		l, _ := os.Readlink("/proc/self/fd/" + e.Name())
		out = append(out, e.Name()+"->"+l)
	}
	return strings.Join(out, " ")
}

// childPids lists the processes whose parent is this process, but the
// runtime's spawner, kept for good.
func childPids() []string {
	spawner, _ := pgruntime.Spawner()
	return testenv.Children(func(pid int) bool { return pid == spawner })
}

// waitNoChildren waits until this process has no child process.
func waitNoChildren(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		kids := childPids()
		if len(kids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("child processes left after %v: %v", waitTimeout, kids)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

const growEnv = "PLAYGROUND_SERVER_TEST_GROW"
