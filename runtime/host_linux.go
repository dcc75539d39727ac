package runtime

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/moby/sys/capability"
	"golang.org/x/sys/unix"

	"github.com/guntainer/playground/runtime/internal/initproc"
)

// Host is what a server prepares once, at start, for all its containers,
// so that a start does none of it: the sealed copy of the binary, the
// compiled seccomp program, the host's resolv.conf, the prepared lower
// layer of the host rootfs, the state dir's checks, the sessions' parent
// cgroup and its watcher, the subordinate ids and the network helper's
// path. Its methods are safe for concurrent use; Close removes the parent
// cgroup (killing what is still in it).
//
// A Spec without a Host gets a default one per state dir, made on first
// use and never closed: no cgroups (rlimits and a nice level instead), no
// subordinate ids, no outbound network. That is what a library user or a
// test that wants none of it gets.
type Host struct {
	opts      HostOptions
	stateDir  string
	stateNote string // why the state dir is not the default, or ""
	movedFrom string // the default state dir it replaces, or ""
	mountDir  string // the containers' mount point, one for all
	uid, gid  int
	// oomFloor: this process holds CAP_SYS_RESOURCE, so the
	// ContainerOOMScoreAdj it writes for a container's init is a floor
	// the container cannot lower.
	oomFloor bool

	exe        *os.File // this binary, sealed: its helpers' executable
	initExe    *os.File // what init is executed from: exe, or the embedded init
	seccomp    []byte
	resolvConf string

	cgroups *Cgroups
	cgErr   error // why there are none
	subIDs  *SubIDs
	subErr  error // why there are none (an ordinary user)
	pool    *idPool

	netKind, netPath string
	hostAddrs        []netip.Prefix

	hostRoot    func() (string, error) // the host rootfs's lower layer, made once
	subHostRoot func() (string, error) // the same, owned by the subordinate ids' root

	notices   sync.Map    // notice text -> struct{}: each is logged once
	started   atomic.Bool // a container has started here: namespaces work
	closeOnce sync.Once
	closeErr  error
}

// NewHost prepares this host for containers as o says, and fails for a
// configuration that cannot work here: limits above the server's own hard
// rlimits, too many sessions for RLIMIT_NPROC, outbound network without a
// helper, a state dir that is not this user's. What it cannot have but can
// do without (cgroups for an ordinary user, subordinate ids) it falls back
// from, and ModeLines says so.
func NewHost(o HostOptions) (*Host, error) {
	if err := o.Limits.Validate(); err != nil {
		return nil, fmt.Errorf("limits: %w", err)
	}
	if _, err := ParseNetMode(string(o.Net)); err != nil {
		return nil, err
	}
	if err := CheckRlimits(o.Limits); err != nil {
		return nil, err
	}
	if o.Sessions > 0 {
		if err := CheckNproc(o.Sessions, o.Limits); err != nil {
			return nil, err
		}
	}
	if o.Net == NetOutbound {
		if _, _, err := FindNetHelper(); err != nil {
			return nil, err
		}
	}
	h, err := newHost(o)
	if err != nil {
		return nil, err
	}
	if o.Net == NetOutbound {
		h.netKind, h.netPath, _ = FindNetHelper() // found above
		h.hostAddrs = HostAddrs()
	}
	if o.NoCgroups {
		h.cgErr = fmt.Errorf("%w: turned off", ErrNoCgroup)
	} else if h.cgroups, h.cgErr = NewCgroups(CgroupOptions{Name: o.CgroupName, PidNamespaces: true}); h.cgErr != nil {
		h.cgroups = nil
	}
	if h.pool == nil && !o.NoSubIDs {
		h.useSubIDs()
	}
	if _, err := h.hostRoot(); err != nil {
		_ = h.Close()
		return nil, err
	}
	if h.pool != nil && o.PrepareIDs > 0 {
		// Last, so that it does not compete with what NewHost waits for.
		h.pool.prepare(o.PrepareIDs)
	}
	return h, nil
}

// newHost is a Host without cgroups, subordinate ids or network: Start's
// default, and NewHost's start.
func newHost(o HostOptions) (*Host, error) {
	exe, err := sealedExecutable()
	if err != nil {
		return nil, err
	}
	initExe, err := initExecutable()
	if err != nil {
		return nil, err
	}
	filter, err := programFilter()
	if err != nil {
		return nil, err
	}
	h := &Host{
		opts:       o,
		stateDir:   o.StateDir,
		uid:        os.Getuid(),
		gid:        os.Getgid(),
		exe:        exe,
		initExe:    initExe,
		seccomp:    filter.Bytes(),
		resolvConf: hostResolvConf(),
		cgErr:      fmt.Errorf("%w: none asked for", ErrNoCgroup),
		subErr:     fmt.Errorf("%w: none asked for", ErrNoSubIDs),
	}
	if h.stateDir == "" {
		h.stateDir = DefaultStateDir()
	}
	if h.stateDir, err = filepath.Abs(h.stateDir); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	if err := checkStateDir(h.stateDir); err != nil {
		return nil, err
	}
	// Init mounts its session disk on this empty directory in its own
	// mount namespace, where no other container's mount is: one mount
	// point serves them all, and a start makes and removes no directory.
	h.mountDir = filepath.Join(h.stateDir, "mnt")
	if err := os.Mkdir(h.mountDir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	h.oomFloor = hasCapability(capability.CAP_SYS_RESOURCE)
	if h.uid == 0 && initialUserNS() {
		if err := h.idmappableStateDir(); err != nil {
			return nil, err
		}
		h.pool = &idPool{dir: filepath.Join(h.stateDir, "ids"), held: map[int]bool{}}
		h.pool.next = int(uint(os.Getpid()*7919) % poolSlots) // spread servers over the pool
		if err := os.MkdirAll(h.pool.dir, 0o700); err != nil {
			return nil, fmt.Errorf("id pool: %w", err)
		}
		// Container root, a pool uid, must reach its mount point.
		if err := othersMayEnter(h.stateDir); err != nil {
			return nil, err
		}
	}
	h.hostRoot = sync.OnceValues(func() (string, error) { return preparedHostRoot(h.stateDir, nil) })
	return h, nil
}

// idmappableStateDir makes sure root's containers can id-map what is
// prepared in the state dir (checkIDMap), moving from the default state
// dir to rootStateFallback where they cannot.
func (h *Host) idmappableStateDir() error {
	err := checkIDMap(h.stateDir, h.exe)
	if err == nil {
		return nil
	}
	if def, _ := filepath.Abs(DefaultStateDir()); h.stateDir != def {
		return fmt.Errorf("state dir: %w", err)
	}
	fb := rootStateFallback
	if ferr := checkStateDir(fb); ferr != nil {
		return fmt.Errorf("state dir: %w (and the fallback: %v)", err, ferr)
	}
	if ferr := checkIDMap(fb, h.exe); ferr != nil {
		return fmt.Errorf("state dir: %w (and the fallback %s: %v)", err, fb, ferr)
	}
	_, _ = CleanStateDir(fb) // what a dead server left there (the caller cleaned the default)
	h.movedFrom = h.stateDir
	h.stateNote = fmt.Sprintf("state dir: %s, not %s (%s, which Linux %s cannot id-map)", fb, h.stateDir, fsOf(h.stateDir), kernelRelease())
	h.stateDir, h.mountDir = fb, filepath.Join(fb, "mnt")
	if err := os.Mkdir(h.mountDir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("state dir: %w", err)
	}
	return nil
}

// useSubIDs switches to the subordinate-id map when /etc/subuid grants a
// range and everything it needs works: the state dir reachable by the
// slice's root, and the host rootfs's lower layer owned by it.
func (h *Host) useSubIDs() {
	s, err := LookupSubIDs()
	if err == nil {
		err = othersMayEnter(h.stateDir)
	}
	if err == nil {
		h.subHostRoot = sync.OnceValues(func() (string, error) {
			return preparedHostRoot(h.stateDir, &shifter{exe: h.exe, ids: s})
		})
		if _, err = h.subHostRoot(); err != nil {
			err = fmt.Errorf("%w: prepare the host rootfs for them: %v", ErrNoSubIDs, err)
		}
	}
	if err != nil {
		h.subErr = err
		return
	}
	h.subIDs, h.subErr = s, nil
}

var defaultHosts sync.Map // state dir -> *Host

// defaultHost is the Host of Specs without one.
func defaultHost(stateDir string) (*Host, error) {
	if stateDir == "" {
		stateDir = DefaultStateDir()
	}
	if h, ok := defaultHosts.Load(stateDir); ok {
		return h.(*Host), nil
	}
	h, err := newHost(HostOptions{StateDir: stateDir, NoCgroups: true, NoSubIDs: true})
	if err != nil {
		return nil, err
	}
	got, _ := defaultHosts.LoadOrStore(stateDir, h)
	return got.(*Host), nil
}

// StateDir is the directory of the containers' mount points.
func (h *Host) StateDir() string { return h.stateDir }

// Cgroups is the sessions' parent cgroup, or nil where they have rlimits.
func (h *Host) Cgroups() *Cgroups { return h.cgroups }

// SubIDs is the subordinate-id slice containers map, or nil.
func (h *Host) SubIDs() *SubIDs { return h.subIDs }

// ModeLines are what the server logs at start, once: how limits are
// enforced and what is not, which ids containers get, and their network.
func (h *Host) ModeLines() []string {
	lines := []string{LimitsModeLine(h.cgroups, h.cgErr)}
	switch {
	case h.pool != nil:
		lines = append(lines, fmt.Sprintf("ids: each session its own 65536-id range from a pool at host uid %d (root), rootfs shown through an id-mapped mount", poolBase))
		if h.stateNote != "" {
			lines = append(lines, h.stateNote)
		}
	case h.subIDs != nil:
		lines = append(lines, h.subIDs.String()+"; a rootfs of another owner than the slice's root runs with the single-id map")
	default:
		lines = append(lines, fmt.Sprintf("ids: single-id map, container root = uid %d and no other user inside (%s)",
			h.uid, strings.TrimPrefix(h.subErr.Error(), ErrNoSubIDs.Error()+": ")))
	}
	if h.netKind != "" {
		lines = append(lines, fmt.Sprintf("net: outbound through %s (%s); the host's loopback, private, link-local and own addresses unreachable", h.netKind, h.netPath))
	} else {
		lines = append(lines, "net: none (loopback only)")
	}
	lines = append(lines, h.initLine())
	return lines
}

// initLine says what each container's init is executed from.
func (h *Host) initLine() string {
	size := "?"
	if fi, err := h.initExe.Stat(); err == nil {
		size = fmt.Sprintf("%.1f MB", float64(fi.Size())/1e6)
	}
	if EmbeddedInit() {
		return "init: the embedded init binary (" + size + ", build " + initproc.BuildStamp + "), from a sealed copy in memory"
	}
	return "init: this binary (" + size + "), from a sealed copy in memory; deploy/build.sh embeds a smaller init that starts containers faster"
}

// notice logs msg once.
func (h *Host) notice(msg string) {
	if _, seen := h.notices.LoadOrStore(msg, struct{}{}); !seen && h.opts.Log != nil {
		h.opts.Log(msg)
	}
}

// Close removes the sessions' parent cgroup, killing whatever is still in
// it; containers started from h must have been closed. Idempotent.
func (h *Host) Close() error {
	h.closeOnce.Do(func() {
		if h.pool != nil {
			h.pool.stopPreparing()
		}
		if h.cgroups != nil {
			h.closeErr = h.cgroups.Close()
		}
	})
	return h.closeErr
}

// RemoveStateDir removes the Host's state dir and all in it, the prepared
// host roots included, also the one the subordinate ids' root owns, which
// the server's user could not remove by itself: for a state dir that was
// only this Host's (a test's, a measurement's). It closes the Host first;
// its containers must have ended.
func (h *Host) RemoveStateDir() error {
	err := h.Close()
	if h.subIDs != nil && h.subHostRoot != nil {
		if dir, serr := h.subHostRoot(); serr == nil {
			sh := &shifter{exe: h.exe, ids: h.subIDs}
			if rerr := sh.remove(dir); rerr != nil && err == nil {
				err = rerr
			}
		}
	}
	if rerr := os.RemoveAll(h.stateDir); rerr != nil && err == nil {
		err = rerr
	}
	return err
}

// checkStateDir makes the state dir, once per Host: it must be a directory
// of this user's, written by no one else (in a shared /tmp, another user
// could have planted it).
func checkStateDir(stateDir string) error {
	if err := os.MkdirAll(stateDir, 0o711); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(stateDir, &st); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || int(st.Uid) != os.Getuid() {
		return fmt.Errorf("state dir %s: not a directory owned by uid %d", stateDir, os.Getuid())
	}
	if st.Mode&0o022 != 0 {
		return fmt.Errorf("state dir %s: writable by others (mode %o)", stateDir, st.Mode&0o777)
	}
	return nil
}

// othersMayEnter makes sure container root, when it is a host uid other
// than ours (a pool range, subordinate ids), can reach its mount point:
// the state dir is made searchable by others, and every directory above
// it must be.
func othersMayEnter(stateDir string) error {
	fi, err := os.Stat(stateDir)
	if err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	if fi.Mode().Perm()&0o011 != 0o011 {
		if err := os.Chmod(stateDir, fi.Mode().Perm()|0o011); err != nil {
			return fmt.Errorf("state dir: %w", err)
		}
	}
	return searchableByOthers(stateDir)
}

// idPool hands out the root-mode id ranges of one state dir. What this
// process holds it knows without a system call, and the lock is held only
// to choose a range to try, never across a system call: a burst of starts
// tries distinct ranges at once. A lock file is opened without O_CREAT
// first (it exists after the first use of its range), which takes no
// write lock on the directory every start reads.
//
// The ranges this process let go are tried first, the latest first: their
// lock files exist, so a server whose sessions come and go creates a lock
// file only for the most sessions it had at once, not for each start
// until it has gone round all poolSlots ranges. On the ext4 of
// BENCHMARKS.md's VM an acquire that made the file took 227 µs, one whose
// file was there 5.5 µs (14 and 7 µs on a tmpfs). Past them the search
// goes on from where the last one ended, so that servers sharing the
// state dir do not all try the same ranges.
type idPool struct {
	dir  string
	mu   sync.Mutex
	held map[int]bool
	let  []int // ranges let go, the latest last
	next int

	stop      chan struct{} // closed: prepare's goroutine stops
	preparing sync.WaitGroup
}

// prepare makes, in the background, the lock files of the n ranges the
// pool tries first (from next on) that the directory lacks (O_EXCL leaves
// one that exists as it is), so that the acquires of a burst on a new
// state dir find them made: "a start does no work that can be done once
// at server start". An acquire that comes first makes its file itself, as
// without prepare; the two only meet at O_EXCL. It stops at the first
// error other than a file that exists (the acquires then make their
// files, and report the error), and at stopPreparing. Once per pool.
func (p *idPool) prepare(n int) {
	n = min(n, poolSlots)
	p.mu.Lock()
	first := p.next
	p.mu.Unlock()
	p.stop = make(chan struct{})
	p.preparing.Add(1)
	go func() {
		defer p.preparing.Done()
		for i := range n {
			select {
			case <-p.stop:
				return
			default:
			}
			c := (first + i) % poolSlots
			fd, err := unix.Open(filepath.Join(p.dir, strconv.Itoa(c)), unix.O_CREAT|unix.O_EXCL|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
			if err == nil {
				_ = unix.Close(fd)
			} else if !errors.Is(err, unix.EEXIST) {
				return
			}
		}
	}()
}

// stopPreparing stops prepare's goroutine, if any, and waits for it: the
// state dir may then be removed.
func (p *idPool) stopPreparing() {
	if p.stop != nil {
		close(p.stop)
	}
	p.preparing.Wait()
}

func (p *idPool) acquire() (*idSlot, error) {
	for tries := 0; tries < poolSlots; tries++ {
		p.mu.Lock()
		n := -1
		for n < 0 && len(p.let) > 0 {
			c := p.let[len(p.let)-1]
			p.let = p.let[:len(p.let)-1]
			if !p.held[c] { // else taken again since: passed over
				n = c
			}
		}
		for i := 0; n < 0 && i < poolSlots; i++ {
			if c := (p.next + i) % poolSlots; !p.held[c] {
				n = c
				p.next = n + 1
			}
		}
		if n < 0 {
			p.mu.Unlock()
			break
		}
		p.held[n] = true
		p.mu.Unlock()
		name := filepath.Join(p.dir, strconv.Itoa(n))
		f, err := os.OpenFile(name, os.O_RDWR|syscall.O_CLOEXEC, 0)
		if errors.Is(err, os.ErrNotExist) {
			f, err = os.OpenFile(name, os.O_CREATE|os.O_RDWR|syscall.O_CLOEXEC, 0o600)
		}
		if err != nil {
			p.unhold(n)
			return nil, fmt.Errorf("id pool: %w", err)
		}
		ok, err := tryslot(f)
		if ok && err == nil {
			return &idSlot{n: n, lock: f, pool: p}, nil
		}
		_ = f.Close() // held by another container, or by a dying one
		p.unhold(n)
		if err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("id pool: all %d uid ranges are in use", poolSlots)
}

func (p *idPool) unhold(n int) {
	p.mu.Lock()
	delete(p.held, n)
	p.mu.Unlock()
}

// release frees a range once its init has been reaped: closing its lock
// file drops the flock. The range is the first the next acquire tries.
func (p *idPool) release(s *idSlot) {
	_ = s.lock.Close()
	p.mu.Lock()
	delete(p.held, s.n)
	p.let = append(p.let, s.n)
	p.mu.Unlock()
}

// hasCapability reports whether this process holds c in its effective set.
func hasCapability(c capability.Cap) bool {
	caps, err := capability.NewPid2(0)
	if err != nil || caps.Load() != nil {
		return false
	}
	return caps.Get(capability.EFFECTIVE, c)
}
