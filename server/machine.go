package server

// Per session, for the default session cap: a core runs this many mostly
// idle shells, and a session (its container's programs and page cache, the
// server's buffers) is reckoned at this much memory.
const (
	sessionsPerCore  = 64
	memoryPerSession = 128 << 20
	minSessions      = 4
)

// DefaultMaxSessions is the session cap for this machine when none is
// configured: 64 per core or one per 128 MiB of memory, whichever is
// fewer, and at least 4. Memory is the machine's or, when lower, the
// limit of the cgroup the server runs in; cores are those Go may use
// (CPU affinity and, since Go 1.25, the cgroup's CPU limit).
func DefaultMaxSessions() int {
	n := machineCores() * sessionsPerCore
	if mem := machineMemory(); mem > 0 {
		n = min(n, int(mem/memoryPerSession))
	}
	return max(n, minSessions)
}
