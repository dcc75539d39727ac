package runtime

// HostOptions say how NewHost prepares this host for a server's
// containers. The zero value is what a server wants: cgroups where this
// process owns some, subordinate ids where /etc/subuid grants them, no
// outbound network.
type HostOptions struct {
	// StateDir is where containers' mount points live, as Spec.StateDir;
	// DefaultStateDir when empty. Specs that name another state dir
	// cannot use this Host.
	StateDir string
	// Limits are the sessions' limits (zero fields: the defaults), checked
	// at once against what this host allows: the server's own hard
	// rlimits, and, as an ordinary user, RLIMIT_NPROC for Sessions
	// sessions.
	Limits Limits
	// Sessions is the most sessions the server runs at once, for the
	// RLIMIT_NPROC check; 0 skips it (no bound is known).
	Sessions int
	// PrepareIDs is how many of root's id ranges to make ready ahead of
	// the starts that take them: their lock files, where the state dir
	// lacks them, made in the background after NewHost returns, so that a
	// burst of starts on a new state dir creates none (on an ext4 without
	// a journal, 0.2 to 0.8 ms of the server's CPU each). The server
	// passes its most sessions; 0 prepares none. Only root, in the
	// initial user namespace, has the pool.
	PrepareIDs int
	// Net is the network sessions get: with NetOutbound, NewHost finds the
	// helper (pasta, else slirp4netns) and fails when there is none.
	Net NetMode
	// NoCgroups gives sessions rlimits and a nice level even where this
	// process could have cgroups (measurements of that mode, tests).
	NoCgroups bool
	// NoSubIDs keeps the single-id map even where /etc/subuid grants a
	// range.
	NoSubIDs bool
	// NoSpawner has this process fork every init itself, as it does where
	// the spawner cannot start. The spawner saves a large process (a
	// server) the copy of its page tables at each start; a process that
	// starts one container and is small (the run command) would pay the
	// spawner's own exec and Go start for nothing.
	NoSpawner bool
	// CgroupName names the sessions' parent cgroup; "playground-PID" when
	// empty.
	CgroupName string
	// Log receives the notices the runtime has while it runs, each once:
	// a rootfs whose owner does not fit the subordinate ids, say. Nil
	// discards them.
	Log func(msg string)
}
