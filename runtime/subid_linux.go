package runtime

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Subordinate ids: an ordinary user's containers get a full 65536-id range
// from /etc/subuid and /etc/subgid, written with the setuid helpers
// newuidmap and newgidmap (Debian: uidmap), so that container root and
// every other container id run as host ids that are not the server's.
//
// One shared slice, not a slice per session. All sessions share one
// read-only lower layer (the environment's rootfs), whose files are owned
// by fixed host ids. A session mapped to another slice would see them as
// nobody, and overlayfs copy-up (apt writing /var/lib/dpkg) would fail
// to chown the copies. Root gets around that with an id-mapped mount of
// the rootfs per session; an ordinary user cannot make one (idmapping a
// mount needs CAP_SYS_ADMIN over the file system's own user namespace,
// the host's). Rootless podman and docker map every container of a user
// to the same range for the same reason. So: container ids 0-65535 are
// host ids BASE..BASE+65535 for every session of the server, BASE being
// the start of the user's first range of at least 65536 ids. A rootfs for
// this mode is unpacked through the same map (MapForUnpack), so its root
// is owned by BASE.
//
// What it buys: no container process ever runs as the server's uid (a
// process that gets out of its namespaces holds none of the server's
// files, /proc entries or signals), and a container has real users (apt
// drops to _apt, chown works). What it does not buy: RLIMIT_NPROC stays
// charged to the server's uid (Linux 5.14 on counts a user namespace's
// processes against its creator too, whatever the map: see RlimitsFor and
// CheckNproc). Sessions sharing the slice share host ids, not files,
// processes or keys: each has its own user, pid, mount, ipc and net
// namespaces.
//
// The seam in the start path: newuidmap must run after the child exists,
// so the child cannot be made root by Go's SysProcAttr.Credential (no map
// yet at that point) and would lose its capabilities at execve as an
// unmapped uid. It holds every capability as ambient instead, which
// survive the execve of init; the parent runs Map(pid) before it releases
// init over the sync socket; init's first act is initproc.BecomeRoot.
// Every start goes so now, whatever writes its maps (initProcAttr);
// Prepare sets up another process the same way (the shift of a rootfs).

// SubIDs is the server user's slice of /etc/subuid and /etc/subgid.
type SubIDs struct {
	User                 string // the user's name (or uid, when it has none)
	UID, GID             int    // the server's own ids
	UIDBase, GIDBase     int    // host ids of container root
	newuidmap, newgidmap string
}

// subIDSize is how many ids a container gets: 0-65535, nobody included.
const subIDSize = 65536

// ErrNoSubIDs wraps why the subordinate-id mode does not apply; the server
// then uses the single-id map (container root is the server's user) and
// says so at start.
var ErrNoSubIDs = errors.New("no subordinate ids")

// LookupSubIDs finds the server user's subordinate range. It fails,
// wrapping ErrNoSubIDs, as root (root has its own per-session ranges), when
// /etc/subuid or /etc/subgid grant no 65536 ids by name or uid, or when
// newuidmap and newgidmap are missing or not privileged.
func LookupSubIDs() (*SubIDs, error) {
	return lookupSubIDs("/etc/subuid", "/etc/subgid")
}

func lookupSubIDs(subuid, subgid string) (*SubIDs, error) {
	uid, gid := os.Getuid(), os.Getgid()
	if uid == 0 && initialUserNS() {
		return nil, fmt.Errorf("%w: running as root, every session gets its own 65536-id range from the pool instead", ErrNoSubIDs)
	}
	if noNewPrivs() {
		// newuidmap and newgidmap are setuid (or file-capability) helpers,
		// and no_new_privs, which a container's allowPrivilegeEscalation:
		// false sets, takes their privilege away.
		return nil, fmt.Errorf("%w: no_new_privs is set on this process, so newuidmap and newgidmap cannot gain their privileges", ErrNoSubIDs)
	}
	s := &SubIDs{User: strconv.Itoa(uid), UID: uid, GID: gid}
	names := []string{strconv.Itoa(uid)}
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		s.User = u.Username
		names = append(names, u.Username)
	}
	var err error
	if s.UIDBase, err = subIDRange(subuid, names); err != nil {
		return nil, err
	}
	gnames := []string{strconv.Itoa(gid)}
	gnames = append(gnames, names...) // subgid is keyed by user name too
	if s.GIDBase, err = subIDRange(subgid, gnames); err != nil {
		return nil, err
	}
	for _, p := range []*string{&s.newuidmap, &s.newgidmap} {
		name := "newuidmap"
		if p == &s.newgidmap {
			name = "newgidmap"
		}
		if *p, err = exec.LookPath(name); err != nil {
			return nil, fmt.Errorf("%w: %s not installed (Debian: apt-get install uidmap)", ErrNoSubIDs, name)
		}
		if err := privilegedHelper(*p); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNoSubIDs, err)
		}
	}
	return s, nil
}

// subIDRange returns the start of the first range in file, for any of
// names, that holds subIDSize ids.
func subIDRange(file string, names []string) (int, error) {
	f, err := os.Open(file)
	if errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("%w: no %s", ErrNoSubIDs, file)
	}
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrNoSubIDs, err)
	}
	defer f.Close()
	var short []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(strings.TrimSpace(sc.Text()), ":")
		if len(fields) != 3 || !contains(names, fields[0]) {
			continue
		}
		start, err1 := strconv.Atoi(fields[1])
		count, err2 := strconv.Atoi(fields[2])
		if err1 != nil || err2 != nil || start <= 0 {
			continue
		}
		if count >= subIDSize {
			return start, nil
		}
		short = append(short, fields[1]+":"+fields[2])
	}
	if len(short) > 0 {
		return 0, fmt.Errorf("%w: %s grants %s only %v, and a container needs %d ids", ErrNoSubIDs, file, names[len(names)-1], short, subIDSize)
	}
	return 0, fmt.Errorf("%w: %s has no range for %s (add one: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 %s)", ErrNoSubIDs, file, names[len(names)-1], names[len(names)-1])
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// privilegedHelper checks that newuidmap (or newgidmap) can do its job:
// setuid root, or file capabilities (security.capability).
func privilegedHelper(p string) error {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_ISUID != 0 && st.Uid == 0 {
		return nil
	}
	if sz, err := unix.Getxattr(p, "security.capability", nil); err == nil && sz > 0 {
		return nil
	}
	return fmt.Errorf("%s is neither setuid root nor has file capabilities", p)
}

// String is the mode line the server logs: "ids: container 0-65535 = host
// 100000-165535 (/etc/subuid of playground-ci), shared by all sessions".
func (s *SubIDs) String() string {
	return fmt.Sprintf("ids: container 0-%d = host uids %d-%d, gids %d-%d (/etc/subuid of %s), one slice shared by all sessions",
		subIDSize-1, s.UIDBase, s.UIDBase+subIDSize-1, s.GIDBase, s.GIDBase+subIDSize-1, s.User)
}

// Prepare sets up attr for a child whose maps Map writes after it started:
// no id maps or credentials for Go to write, and every capability as
// ambient, so that init keeps them across its execve as a still unmapped
// uid (until Map and initproc.BecomeRoot). The child must be cloned with
// CLONE_NEWUSER: it holds the capabilities of its new user namespace
// only. Init gives them up before the program runs, as always.
func (s *SubIDs) Prepare(attr *syscall.SysProcAttr) error {
	attr.UidMappings, attr.GidMappings, attr.Credential = nil, nil, nil
	attr.GidMappingsEnableSetgroups = false
	caps, err := allCaps()
	if err != nil {
		return err
	}
	attr.AmbientCaps = caps
	return nil
}

func lastCap() (int, error) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, fmt.Errorf("cap_last_cap: %w", err)
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// Map writes the user namespace of pid's id maps with newuidmap and
// newgidmap: container ids 0-65535 to the slice. It runs in the parent,
// after the child started and before it is released.
func (s *SubIDs) Map(pid int) error {
	return s.mapIDs(pid, false)
}

// MapForUnpack is Map plus the server's own uid and gid as container id
// 65536, for a process that unpacks a rootfs for this mode: as container
// root it can then create files owned by any container id, in a directory
// the server owns.
func (s *SubIDs) MapForUnpack(pid int) error {
	return s.mapIDs(pid, true)
}

func (s *SubIDs) mapIDs(pid int, withServer bool) error {
	return s.runIDMapTools(pid, func(own, base int) []string {
		args := []string{"0", strconv.Itoa(base), strconv.Itoa(subIDSize)}
		if withServer {
			args = append(args, strconv.Itoa(subIDSize), strconv.Itoa(own), "1")
		}
		return args
	})
}

// runIDMapTools runs newgidmap, then newuidmap, for pid with the ranges
// ranges gives from the server's own id and the slice's first.
func (s *SubIDs) runIDMapTools(pid int, ranges func(own, base int) []string) error {
	for _, m := range []struct {
		tool      string
		base, own int
	}{{s.newgidmap, s.GIDBase, s.GID}, {s.newuidmap, s.UIDBase, s.UID}} {
		if err := runIDMapTool(m.tool, append([]string{strconv.Itoa(pid)}, ranges(m.own, m.base)...)...); err != nil {
			return err
		}
	}
	return nil
}

// runIDMapTool runs newuidmap or newgidmap with args; its error says what
// the tool said.
func runIDMapTool(tool string, args ...string) error {
	cmd := exec.Command(tool, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", tool, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// noNewPrivs reports whether no_new_privs is set on this process.
func noNewPrivs() bool {
	v, err := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)
	return err == nil && v == 1
}
