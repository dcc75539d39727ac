package runtime

import (
	"errors"
	"os"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// An ordinary user's server can make a session's user namespace only as
// its own uid, and the kernel charges what it counts per user (inotify
// instances, queued signals, message queue bytes, processes) to a
// namespace's owner as well as to the user inside it: every session's
// user ids added up at the server's uid, and a session that switched
// among its subordinate ids could take all of it (TestSharedCountsPerSession).
// Root makes each namespace as the session's own uid (spawnOwner); an
// ordinary user with subordinate ids gets the same one level down: its
// spawner runs in a user namespace of its own (newuidmap maps the
// server's uid to its 0 and the 65536 subordinate ids to its 1 to 65536),
// where it is root, and makes each init's namespace as one of its uids
// that no other live session's is. The counts of all of a session's user
// ids then add up at that uid, which the spawner's namespace caps (its
// user.max_inotify_*) and its soft rlimits at the clone cap (the kernel
// keeps them as the new namespace's, create_user_ns); above it, at the
// server's uid, only the sessions together. The server, outside the
// spawner's namespace, may no longer write init's maps: the spawner does,
// in its own ids, after init's exec.

// spawnUserNSArg tells a spawner it runs in a user namespace of its own.
const spawnUserNSArg = "--userns"

// spawnerNS is the server's view of its spawner's user namespace.
type spawnerNS struct {
	sub    *SubIDs
	owners ownerIDs
}

// newSpawnerNS is the namespace for this process's spawner: one for an
// ordinary user in the host's user namespace with subordinate ids, else
// nil.
func newSpawnerNS() *spawnerNS {
	if os.Geteuid() == 0 || !initialUserNS() || noSpawnerNS {
		return nil
	}
	sub, err := LookupSubIDs()
	if err != nil {
		return nil
	}
	return &spawnerNS{sub: sub}
}

// noSpawnerNS keeps the spawner in the server's user namespace: a test's
// comparison.
var noSpawnerNS bool

// mapSpawner writes the spawner's maps: the server's own id as 0, the
// subordinate ids as 1 to 65536.
func (s *SubIDs) mapSpawner(pid int) error {
	return s.runIDMapTools(pid, func(own, base int) []string {
		return []string{"0", strconv.Itoa(own), "1", "1", strconv.Itoa(base), strconv.Itoa(subIDSize)}
	})
}

// translate turns maps of host ids into the spawner's namespace's ids:
// own is its 0, base its 1. false when an id is not in it.
func (n *spawnerNS) translate(m []syscall.SysProcIDMap, own, base int) ([]syscall.SysProcIDMap, bool) {
	out := make([]syscall.SysProcIDMap, 0, len(m))
	for _, e := range m {
		switch {
		case e.HostID == own && e.Size == 1:
			e.HostID = 0
		case e.HostID >= base && e.HostID+e.Size <= base+subIDSize:
			e.HostID = 1 + e.HostID - base
		default:
			return nil, false
		}
		out = append(out, e)
	}
	return out, true
}

// ownerIDs hands out the ids of the spawner's namespace that own the live
// sessions' namespaces (1 + k for k from acquire), one each.
type ownerIDs struct {
	mu   sync.Mutex
	next int
	free []int
}

var errNoOwnerID = errors.New("spawner: every id of its namespace owns a live session's")

func (o *ownerIDs) acquire() (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if n := len(o.free); n > 0 {
		k := o.free[n-1]
		o.free = o.free[:n-1]
		return k, nil
	}
	if o.next == subIDSize {
		return 0, errNoOwnerID
	}
	o.next++
	return o.next - 1, nil
}

func (o *ownerIDs) release(k int) {
	o.mu.Lock()
	o.free = append(o.free, k)
	o.mu.Unlock()
}

// spawnerSetup is the spawner's at its start, where each init's namespace
// is its session's own (a spawner as root, or in a namespace of its own):
// its soft RLIMIT_SIGPENDING and RLIMIT_MSGQUEUE at a session's share,
// which the kernel keeps as the most all of a session's user ids may hold
// together; in its own namespace, that namespace's inotify caps, which
// bind each uid of it, so each session. Elsewhere the level above a
// session is the server's uid, shared by all, and nothing changes.
func spawnerSetup(ownNS bool) {
	if !ownNS && !(os.Geteuid() == 0 && initialUserNS()) {
		return
	}
	for _, r := range []struct {
		res int
		cur uint64
	}{{unix.RLIMIT_SIGPENDING, sessionSigPending}, {unix.RLIMIT_MSGQUEUE, sessionMsgQueue}} {
		var l unix.Rlimit
		if unix.Getrlimit(r.res, &l) == nil && r.cur < l.Cur {
			l.Cur = r.cur
			_ = unix.Setrlimit(r.res, &l)
		}
	}
	if ownNS {
		// Its new namespace's capabilities (CAP_SYS_RESOURCE) make these
		// its own to write, mapped or not yet.
		_ = os.WriteFile("/proc/sys/user/max_inotify_instances", []byte(strconv.Itoa(sessionInotifyInstances)), 0)
		_ = os.WriteFile("/proc/sys/user/max_inotify_watches", []byte(strconv.Itoa(sessionInotifyWatches)), 0)
	}
}

// nproc is the spawner's soft RLIMIT_NPROC, which each clone's namespace
// takes as the most processes of all its user ids together.
var nproc nprocGate

// nprocGate sets the soft RLIMIT_NPROC a clone asks for (0: the one the
// spawner started with) while it runs, and lets clones that ask for the
// one in force run at once.
type nprocGate struct {
	mu     sync.RWMutex
	cur    uint64 // what is in force; 0: the spawner's own
	orig   unix.Rlimit
	origOK bool
}

func (g *nprocGate) run(want uint64, fn func() error) error {
	g.mu.RLock()
	if g.cur == want {
		defer g.mu.RUnlock()
		return fn()
	}
	g.mu.RUnlock()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cur != want {
		if !g.origOK {
			if err := unix.Getrlimit(unix.RLIMIT_NPROC, &g.orig); err != nil {
				return err
			}
			g.origOK = true
		}
		l := g.orig
		if want > 0 {
			l.Cur = min(want, l.Max)
		}
		if err := unix.Setrlimit(unix.RLIMIT_NPROC, &l); err != nil {
			return err
		}
		g.cur = want
	}
	return fn()
}
