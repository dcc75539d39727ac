package testenv

import (
	"fmt"
	"runtime"
	"strings"
	"time"
)

// Goroutines returns the stacks of all goroutines but those that live for
// the rest of the process once started: os/signal's loop (`go test -fuzz`
// starts it), and the two of the runtime's spawner (the first container
// start starts it). A TestMain takes len(Goroutines()) before m.Run and
// hands it to CheckGoroutines after.
func Goroutines() []string {
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
		if !strings.Contains(g, "os/signal.signal_recv") && !strings.Contains(g, "playground/runtime.startSpawner") &&
			!strings.Contains(g, "playground/runtime.(*spawner).readReplies") {
			keep = append(keep, g)
		}
	}
	return keep
}

// CheckGoroutines waits a little for goroutines on their way out, then
// reports any beyond the count from before the tests, with their stacks.
// Callers close their HTTP clients' idle connections first.
func CheckGoroutines(before int) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		g := Goroutines()
		if len(g) <= before {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("goroutine leak: %d before the tests, %d after:\n\n%s", before, len(g), strings.Join(g, "\n\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
