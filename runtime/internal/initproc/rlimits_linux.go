package initproc

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// RlimitResources are the RLIMIT_* resources by Rlimit.Name: the ones init
// sets, and the server checks against its own hard limits.
var RlimitResources = map[string]int{
	"as": unix.RLIMIT_AS, "core": unix.RLIMIT_CORE, "data": unix.RLIMIT_DATA, "fsize": unix.RLIMIT_FSIZE,
	"nofile": unix.RLIMIT_NOFILE, "nproc": unix.RLIMIT_NPROC, "nice": unix.RLIMIT_NICE, "rtprio": unix.RLIMIT_RTPRIO,
	"sigpending": unix.RLIMIT_SIGPENDING, "msgqueue": unix.RLIMIT_MSGQUEUE,
}

// ApplyRlimits sets the limits on init itself, so that every process of
// the session inherits them. It runs inside the container, after the user
// namespace is set up. A limit can only be lowered there (raising a hard
// limit needs CAP_SYS_RESOURCE in the host's user namespace): one above
// the server's own hard limit is clamped to it (CheckRlimits refuses such
// a configuration at server start).
func ApplyRlimits(rl []Rlimit) error {
	for _, r := range rl {
		res, ok := RlimitResources[r.Name]
		if !ok {
			return fmt.Errorf("rlimit %q: unknown", r.Name)
		}
		var old unix.Rlimit
		if err := unix.Getrlimit(res, &old); err != nil {
			return fmt.Errorf("getrlimit %s: %w", r.Name, err)
		}
		nl := unix.Rlimit{Cur: min(r.Cur, old.Max), Max: min(r.Max, old.Max)}
		nl.Cur = min(nl.Cur, nl.Max)
		if err := unix.Setrlimit(res, &nl); err != nil {
			return fmt.Errorf("setrlimit %s %d:%d: %w", r.Name, nl.Cur, nl.Max, err)
		}
	}
	return nil
}

// lastRlimits splits off, from the rlimits of a session, those set
// last before the program starts: DATA and NPROC, which bind init's own Go
// runtime too. Init's address space is larger than the smallest memory
// limit before the program starts (its binary's bss, Go's arena index, and
// 8 MiB of stack for each thread where the binary uses cgo: about 160 MiB,
// VmData), so under RLIMIT_DATA it could map nothing more, and Go ends a
// process that is refused memory or a thread
// (TestInitUnderTheSmallestLimits). Init in the program's place
// (Spec.ProgramIsInit, a server's sessions) sets them as its last act
// before the exec. A resident init forks the program under them and lives
// on under them, having made its threads first (startProgram); its memory
// limit must leave it room: checkResidentMemory.
func lastRlimits(rl []Rlimit) (first, last []Rlimit) {
	for _, r := range rl {
		if r.Name == "data" || r.Name == "nproc" {
			last = append(last, r)
		} else {
			first = append(first, r)
		}
	}
	return first, last
}
