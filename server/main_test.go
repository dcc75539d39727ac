package server

import (
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	pgruntime "github.com/guntainer/playground/runtime"
)

// TestMain fails the run if goroutines outlive the tests: every session's
// pumps must be joined by the time its handler returns.
func TestMain(m *testing.M) {
	pgruntime.MaybeInit() // this test binary is also the containers' init
	before := len(goroutines())
	code := m.Run()
	if code == 0 {
		if err := checkGoroutines(before); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// checkGoroutines waits a little for goroutines that are on their way out,
// then reports any beyond the count from before the tests, with stacks.
func checkGoroutines(before int) error {
	http.DefaultClient.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for {
		g := goroutines()
		if len(g) <= before {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("goroutine leak: %d before the tests, %d after:\n\n%s", before, len(g), strings.Join(g, "\n\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// goroutines returns the stacks of all goroutines but the runtime's own
// that live for the rest of the process once started (os/signal's loop,
// which `go test -fuzz` starts).
func goroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var keep []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if !strings.Contains(g, "os/signal.signal_recv") {
			keep = append(keep, g)
		}
	}
	return keep
}
