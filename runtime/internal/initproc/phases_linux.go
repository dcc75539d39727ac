package initproc

import (
	"sync"

	"golang.org/x/sys/unix"
)

// A start's phases, for the log and the benchmarks: init stamps the end of
// each of its phases on CLOCK_MONOTONIC (one clock for every process on
// the machine; containers have no time namespace) and sends the stamps
// with its "ready", and the parent adds its own.

// Phase is the end of one phase of a start, in CLOCK_MONOTONIC nanoseconds.
type Phase struct {
	Name string `json:"n"`
	At   int64  `json:"t"`
}

// Monotonic is CLOCK_MONOTONIC now, in nanoseconds: the clock of every
// phase stamp, the parent's and init's alike.
func Monotonic() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) // cannot fail for this clock
	return ts.Nano()
}

// initPhases are init's stamps; init is one process, its setup one goroutine
// at a time but for the last step's, hence the lock.
var initPhases struct {
	mu sync.Mutex
	p  []Phase
}

// Mark stamps the end of init's phase name; the stamps go back to the
// parent with init's ready message.
func Mark(name string) {
	initPhases.mu.Lock()
	initPhases.p = append(initPhases.p, Phase{name, Monotonic()})
	initPhases.mu.Unlock()
}

func takePhases() []Phase {
	initPhases.mu.Lock()
	defer initPhases.mu.Unlock()
	return initPhases.p
}
