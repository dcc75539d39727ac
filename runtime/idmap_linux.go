package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Three id maps, as in DESIGN.md's privilege modes:
//
//   - as an ordinary user whom /etc/subuid and /etc/subgid grant a range,
//     container ids 0-65535 are one slice of it, shared by all sessions
//     (see subid_linux.go), for a rootfs owned by that slice's root;
//   - as an ordinary user otherwise, container root is the invoking user
//     and no other id exists inside (guntainer's map);
//   - as root, each container gets its own 65536-id range from a pool, so
//     container root is never host root and no two containers share a host
//     uid. The root file system, owned by host ids, is then shown to the
//     container through an id-mapped mount, so its root-owned files are
//     owned by container root.

const (
	// poolBase is the first host uid of the root-mode pool: far above the
	// ranges useradd hands out in /etc/subuid (100000 + 65536*n). 2^31 on
	// 64-bit machines; 2^30 on 32-bit ones, where Go's id maps hold an int
	// and the pool must end below 2^31.
	poolBase  = 1 << 30 << (^uint(0) >> 63)
	poolSlots = 4096
	rangeSize = 65536
)

type idPlan struct {
	uidMap, gidMap   []syscall.SysProcIDMap // in host ids (with sub, newuidmap's to write, or the spawner's)
	setgroups        bool
	hostUID, hostGID int     // the host ids of container root
	slot             *idSlot // root: the container's range of the pool
	sub              *SubIDs // subordinate ids: maps written by newuidmap after the start
	lower            string  // the overlay's lower layer: the rootfs, or the prepared host root
	mappedLower      bool    // root: the lower layer goes in as an id-mapped mount
}

// plan chooses the ids of a container of rootfs: root's own range from
// the pool; else the subordinate ids where the rootfs's owner fits them;
// else the single-id map.
func (h *Host) plan(rootfs string) (idPlan, error) {
	lower := rootfs
	hostRoot := h.hostRoot
	switch {
	case h.pool != nil:
		slot, err := h.pool.acquire()
		if err != nil {
			return idPlan{}, err
		}
		host := poolBase + slot.n*rangeSize
		m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: host, Size: rangeSize}}
		p := idPlan{uidMap: m, gidMap: m, setgroups: true, hostUID: host, hostGID: host, slot: slot, mappedLower: true, lower: lower}
		if rootfs == HostRootfs {
			if p.lower, err = hostRoot(); err != nil {
				slot.release()
				return idPlan{}, err
			}
		}
		return p, nil
	case h.subIDs != nil && h.fitsSubIDs(rootfs):
		s := h.subIDs
		p := idPlan{setgroups: true, hostUID: s.UIDBase, hostGID: s.GIDBase, sub: s, lower: lower,
			uidMap: []syscall.SysProcIDMap{{ContainerID: 0, HostID: s.UIDBase, Size: subIDSize}},
			gidMap: []syscall.SysProcIDMap{{ContainerID: 0, HostID: s.GIDBase, Size: subIDSize}}}
		if rootfs == HostRootfs {
			var err error
			if p.lower, err = h.subHostRoot(); err != nil {
				return idPlan{}, err
			}
		}
		return p, nil
	}
	p := idPlan{
		uidMap:  []syscall.SysProcIDMap{{ContainerID: 0, HostID: h.uid, Size: 1}},
		gidMap:  []syscall.SysProcIDMap{{ContainerID: 0, HostID: h.gid, Size: 1}},
		hostUID: h.uid,
		hostGID: h.gid,
		lower:   lower,
	}
	if rootfs == HostRootfs {
		var err error
		if p.lower, err = hostRoot(); err != nil {
			return idPlan{}, err
		}
	}
	return p, nil
}

// fitsSubIDs reports whether a container of rootfs can map the
// subordinate ids: its files must be owned by the slice's ids (the host
// rootfs's prepared layer is; a tree unpacked through the slice's map
// is). A tree of another owner, say one unpacked as the server's own user,
// would show as nobody's inside, and the overlay could not copy its files
// up (no chown to an unmapped id): its containers get the single-id map,
// and the server says so once.
func (h *Host) fitsSubIDs(rootfs string) bool {
	if rootfs == HostRootfs {
		return true
	}
	var st unix.Stat_t
	if err := unix.Stat(rootfs, &st); err != nil {
		return false // Start reports the rootfs's error itself
	}
	if int(st.Uid) == h.subIDs.UIDBase {
		return true
	}
	h.notice(fmt.Sprintf("rootfs %s is owned by uid %d, not by container root of the subordinate ids (host uid %d): its containers get the single-id map (container root = uid %d); unpack it through the subordinate ids to give them a full range", rootfs, st.Uid, h.subIDs.UIDBase, h.uid))
	return false
}

// initialUserNS reports whether this process is in the host's user
// namespace, where every id is mapped.
func initialUserNS() bool {
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return len(f) == 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295"
}

// idSlot is one range of the root-mode pool, held by an flock on its lock
// file so that several servers on one host never share a range. The flock
// goes with the server, but a dead server's containers may outlive it for
// a moment (until their inits see the sync socket close and end them), so
// the lock file also names the container's init (pid and start time): a
// range is free only when its flock is and that init no longer exists. An
// init exists until it is reaped, and the kernel lets it be reaped only
// after every other process of its pid namespace is gone (the exit of a
// namespace's init kills the rest and waits for them,
// zap_pid_ns_processes), so a gone init means a range with no process.
type idSlot struct {
	n    int
	lock *os.File
	pool *idPool
}

// tryslot takes range n when its lock file f is free and names no living
// init; false when another holds it.
func tryslot(f *os.File) (bool, error) {
	err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if err == nil && !slotInitAlive(f) {
		return true, nil
	}
	if err == nil {
		return false, nil // a dying container's: not yet (closing f unlocks it)
	}
	if !errors.Is(err, unix.EWOULDBLOCK) {
		return false, fmt.Errorf("id pool: lock: %w", err)
	}
	return false, nil
}

// slotInitAlive reports whether the init a lock file names still exists.
func slotInitAlive(f *os.File) bool {
	b := make([]byte, 64)
	n, _ := f.ReadAt(b, 0) // short or empty: names nobody
	var pid int
	var start uint64
	if _, err := fmt.Sscanf(string(b[:n]), "%d %d", &pid, &start); err != nil {
		return false
	}
	return processAlive(pid, start)
}

// slotRecordSize is the length of a lock file's record: a pid and a start
// time, padded with spaces, so that every claim overwrites the one before
// in place. A truncate first would cost a start more than the rest of its
// claim: ext4 (auto_da_alloc) allocates and writes out a file's pending
// blocks when it is truncated to nothing, in the truncate (1.9 ms once
// here, waiting on the disk).
const slotRecordSize = 48

// claim names the container's init in the lock file.
func (s *idSlot) claim(pid int) error {
	if s == nil {
		return nil
	}
	start, err := processStart(pid)
	if err == nil {
		_, err = s.lock.WriteAt(fmt.Appendf(nil, "%-*s\n", slotRecordSize-1, fmt.Sprintf("%d %d", pid, start)), 0)
	}
	if err != nil {
		return fmt.Errorf("id pool: %w", err)
	}
	return nil
}

// processStart is a process's start time in clock ticks since boot: with
// its pid, it names one process, never a later one that reuses the pid.
func processStart(pid int) (uint64, error) {
	st, err := procStat(pid)
	return st.Starttime, err
}

// processAlive reports whether the process pid that started at start
// still exists (a zombie too).
func processAlive(pid int, start uint64) bool {
	got, err := processStart(pid)
	return err == nil && got == start
}

func (s *idSlot) release() {
	if s != nil && s.lock != nil {
		s.pool.release(s)
		s.lock = nil
	}
}

// idmappedTree returns a detached mount of dir whose ids are shifted into
// the user namespace of pid, for init to attach as the overlay's lower
// layer.
func idmappedTree(dir string, pid int) (int, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, dir, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("open_tree %s: %w", dir, err)
	}
	ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", pid))
	if err != nil {
		_ = unix.Close(fd)
		return -1, fmt.Errorf("user namespace of init: %w", err)
	}
	defer ns.Close()
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP | unix.MOUNT_ATTR_RDONLY, Userns_fd: uint64(ns.Fd())}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &attr); err != nil {
		_ = unix.Close(fd)
		return -1, idmapError(dir, err)
	}
	return fd, nil
}

// DefaultStateDir is where containers' mount points live on the host:
// /run/playground as (real) root, else $XDG_RUNTIME_DIR/playground where
// others may pass through $XDG_RUNTIME_DIR, else $TMPDIR/playground-UID.
func DefaultStateDir() string {
	if os.Getuid() == 0 && initialUserNS() {
		return rootStateDir
	}
	// $XDG_RUNTIME_DIR only where others may pass through it: with
	// subordinate ids, container root is another host uid than ours and
	// must reach its mount point (systemd makes /run/user/UID 0700).
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o001 != 0 {
			return filepath.Join(d, "playground")
		}
	}
	return filepath.Join(os.TempDir(), "playground-"+strconv.Itoa(os.Getuid()))
}

// searchableByOthers checks that a pool uid can reach dir: every directory
// on the way must be searchable by others.
func searchableByOthers(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for p := abs; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("state dir: %w", err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("state dir %s: %s is not searchable by others (mode %o), and container root, another host uid than the server's (a pool range, subordinate ids), must reach it", dir, p, fi.Mode().Perm())
		}
		if p == "/" {
			return nil
		}
	}
}

// selfName is "PID-START" of this process, which the names of its mount
// points begin with, so that CleanStateDir can tell when it has gone.
var selfName = sync.OnceValue(func() string {
	start, _ := processStart(os.Getpid()) // /proc/self/stat of a live process
	return fmt.Sprintf("%d-%d", os.Getpid(), start)
})

// CleanStateDir removes what a crashed predecessor left in stateDir: the
// half-made prepared host roots, and the per-container mount points of
// earlier versions (today's containers share one, "mnt"): empty
// directories, since their mounts died with their mount namespaces. Each
// is named for the pid and start time of the process that made it, and
// only those of processes no longer running are touched (a pid alone
// could be a new process's). A dead server's containers end as soon as
// their inits see it gone. It returns how many it removed.
func CleanStateDir(stateDir string) (int, error) {
	entries, err := os.ReadDir(stateDir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("state dir: %w", err)
	}
	n := 0
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), "h-tmp-") {
			// A prepared host root a dead process was still making.
			f := strings.Split(strings.TrimPrefix(e.Name(), "h-tmp-"), "-")
			if len(f) == 2 {
				pid, _ := strconv.Atoi(f[0])
				start, err := strconv.ParseUint(f[1], 10, 64)
				if err == nil && pid > 0 && !processAlive(pid, start) && os.RemoveAll(filepath.Join(stateDir, e.Name())) == nil {
					n++
				}
			}
			continue
		}
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "c-") {
			continue
		}
		f := strings.Split(strings.TrimPrefix(e.Name(), "c-"), "-")
		pid, err := strconv.Atoi(f[0])
		if err != nil || pid <= 0 || len(f) < 2 || len(f) > 3 {
			continue // not ours
		}
		if len(f) == 2 {
			// c-PID-ID, as earlier versions named them: the pid alone.
			if unix.Kill(pid, 0) != unix.ESRCH {
				continue
			}
		} else if start, err := strconv.ParseUint(f[1], 10, 64); err != nil || processAlive(pid, start) {
			continue
		}
		if os.Remove(filepath.Join(stateDir, e.Name())) == nil {
			n++
		}
	}
	return n, nil
}
