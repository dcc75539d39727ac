package runtime

import (
	"slices"
	"time"

	"github.com/guntainer/playground/runtime/internal/initproc"
)

// StartPhases is the container's start, phase by phase, in the order the
// phases ended: each from the end of the one before, whichever process's
// (the parent's and init's work overlap while init's Go runtime starts:
// what shows is the start's critical path), the first from the start's
// beginning. Init stamps its phases on CLOCK_MONOTONIC, which every
// process shares.
func (c *Container) StartPhases() []StartPhase {
	if len(c.phases) < 2 {
		return nil
	}
	ps := slices.Clone(c.phases)
	slices.SortStableFunc(ps, func(a, b initproc.Phase) int {
		switch {
		case a.At < b.At:
			return -1
		case a.At > b.At:
			return 1
		}
		return 0
	})
	out := make([]StartPhase, 0, len(ps)-1)
	for i := 1; i < len(ps); i++ {
		out = append(out, StartPhase{Name: ps[i].Name, Duration: time.Duration(ps[i].At - ps[i-1].At)})
	}
	return out
}
