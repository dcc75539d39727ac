package runtime

import "time"

// StartPhase is one phase of a container's start and how long it took:
// what each layer of the start costs (namespaces, the id maps, the init's
// own start, the root and its mounts, capabilities, seccomp, ...), for
// the load command's report and the benchmarks.
type StartPhase struct {
	Name     string
	Duration time.Duration
}
