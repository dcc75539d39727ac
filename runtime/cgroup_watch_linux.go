package runtime

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// cgroupWatcher tells sessions when they hit a limit, with one goroutine
// and one epoll set for all sessions of the server, so an idle session
// costs a few fds and no goroutine:
//
//   - pids.events (v1 and v2) and memory.events (v2) change when a fork is
//     refused at pids.max or the OOM killer acts: the kernel signals that
//     as an inotify IN_MODIFY; the watcher then reads the counters;
//   - v1 has no memory.events: an eventfd registered for memory.oom_control
//     through cgroup.event_control fires when the cgroup runs out of
//     memory. v1's OOM killer kills one process, not the group, so the
//     session learns of it here and ends itself, as oom.group does on v2;
//   - v1 tells an out of memory to every cgroup below the one out of
//     memory, not only to that one: memory that runs out above the sessions
//     (the server's cgroup at its limit, a pod's) would reach every
//     session's eventfd. The sessions' parent has an eventfd too, which the
//     kernel signals first (it walks the tree from the top): a session's
//     notice is its own only beyond the parent's since it was registered
//     (ownOOMLocked). When memory runs out above, the kernel kills a
//     process of the session it picks (the largest, a session's first:
//     ContainerOOMScoreAdj); for the next two seconds the timer then reads
//     each session's oom_kill count, and the one that lost a process ends
//     with HostMemoryReason, as oom.group ends it on v2;
//   - v1's pids.events counts refused forks but never notifies (the kernel
//     notifies a pids.events.local that v1 does not have), so a timer
//     reads it for v1 sessions, four times a second: a few thousand small
//     reads a second for a full server, each a pread(2) of an fd kept
//     open (1.7 µs here, against 7.9 µs to open, read and close the file).
type cgroupWatcher struct {
	epfd, inotify, wake, timer int
	polled                     int // registrations that need the timer
	// parentEfd is v1's OOM eventfd of the sessions' parent, or -1, and
	// parentOOMs the count read from it (under mu). hostOOMUntil is when
	// the loop stops looking for the session an out of memory above the
	// sessions killed in (loop only).
	parentEfd    int
	parentOOMs   uint64
	hostOOMUntil time.Time

	mu   sync.Mutex
	byWD map[int32]*cgroupEvents // inotify watch → session
	byFD map[int32]*cgroupEvents // v1 oom eventfd → session
	regs map[*Cgroup]*cgroupEvents

	done      chan struct{}
	closeOnce sync.Once
}

type cgroupEvents struct {
	c       *Cgroup
	onLimit func(string)
	wds     []int32
	efd     int // v1: the oom eventfd, or -1
	// pids is v1's pids.events, open for the timer's reads, or -1;
	// polled says the timer counts it (cgroupWatcher.polled).
	pids   int
	polled bool
	// v1: the count read from efd, the parent's count when efd was
	// registered, and memory.oom_control's oom_kill when last read.
	notices, parentBase uint64
	oomKills            int64
}

// hostOOMWatch is how long after an out of memory above the sessions
// (v1) the timer looks for the session whose process the kernel killed:
// the kill follows the notice by microseconds to milliseconds.
const hostOOMWatch = 2 * time.Second

const cgroupPollInterval = 250 * time.Millisecond

// newCgroupWatcher starts a watcher; parentV1 is the sessions' parent in
// the v1 memory hierarchy, or "".
func newCgroupWatcher(parentV1 string) (*cgroupWatcher, error) {
	w := &cgroupWatcher{epfd: -1, inotify: -1, wake: -1, timer: -1, parentEfd: -1, byWD: map[int32]*cgroupEvents{}, byFD: map[int32]*cgroupEvents{}, regs: map[*Cgroup]*cgroupEvents{}, done: make(chan struct{})}
	var err error
	if w.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, fmt.Errorf("cgroup watcher: epoll: %w", err)
	}
	if w.inotify, err = unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK); err != nil {
		w.closeFds()
		return nil, fmt.Errorf("cgroup watcher: inotify: %w", err)
	}
	if w.wake, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		w.closeFds()
		return nil, fmt.Errorf("cgroup watcher: eventfd: %w", err)
	}
	if w.timer, err = unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_CLOEXEC|unix.TFD_NONBLOCK); err != nil {
		w.closeFds()
		return nil, fmt.Errorf("cgroup watcher: timerfd: %w", err)
	}
	for _, fd := range []int{w.inotify, w.wake, w.timer} {
		if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}); err != nil {
			w.closeFds()
			return nil, fmt.Errorf("cgroup watcher: epoll_ctl: %w", err)
		}
	}
	if parentV1 != "" {
		if err := w.watchParentV1(parentV1); err != nil {
			w.closeFds()
			return nil, fmt.Errorf("cgroup watcher: %s: %w", parentV1, err)
		}
	}
	go w.loop()
	return w, nil
}

func (w *cgroupWatcher) closeFds() {
	for _, fd := range []int{w.epfd, w.inotify, w.wake, w.timer, w.parentEfd} {
		if fd >= 0 {
			_ = unix.Close(fd) // ours; nothing to report
		}
	}
}

// close stops the watcher's goroutine and waits for it. Idempotent.
func (w *cgroupWatcher) close() {
	w.closeOnce.Do(func() {
		var one [8]byte
		binary.NativeEndian.PutUint64(one[:], 1)
		_, _ = unix.Write(w.wake, one[:]) // cannot fail: the counter is far from full
		<-w.done
		w.mu.Lock()
		for c := range w.regs {
			w.unregisterLocked(c)
		}
		w.mu.Unlock()
		w.closeFds()
	})
}

// watchParentV1 registers an OOM eventfd for the sessions' parent in the
// v1 memory hierarchy, dir: see cgroupWatcher. Before the loop starts.
func (w *cgroupWatcher) watchParentV1(dir string) error {
	efd, err := registerOOMEventfd(dir)
	if err != nil {
		return err
	}
	if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, efd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(efd)}); err != nil {
		_ = unix.Close(efd)
		return fmt.Errorf("epoll_ctl: %w", err)
	}
	w.parentEfd = efd
	return nil
}

// registerOOMEventfd makes an eventfd that the kernel signals when the v1
// memory cgroup dir, or one above it, runs out of memory. The kernel keeps
// the eventfd, not the memory.oom_control it is registered for, which is
// closed here: one fd per cgroup, not two.
func registerOOMEventfd(dir string) (int, error) {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return -1, fmt.Errorf("eventfd: %w", err)
	}
	ofd, err := unix.Open(filepath.Join(dir, "memory.oom_control"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		_ = unix.Close(efd)
		return -1, err
	}
	err = writeCgroupFile(filepath.Join(dir, "cgroup.event_control"), strconv.Itoa(efd)+" "+strconv.Itoa(ofd))
	_ = unix.Close(ofd)
	if err != nil {
		_ = unix.Close(efd)
		return -1, err
	}
	return efd, nil
}

// drainParentLocked adds what the parent's eventfd counted since it was
// last read to parentOOMs.
func (w *cgroupWatcher) drainParentLocked() {
	if w.parentEfd < 0 {
		return
	}
	var cnt [8]byte
	if n, err := unix.Read(w.parentEfd, cnt[:]); err == nil && n == len(cnt) {
		w.parentOOMs += binary.NativeEndian.Uint64(cnt[:])
	}
}

// ownOOMLocked reports whether r's OOM notices include one of its own
// limit's: more than the parent's since r was registered. Every out of
// memory at or above the parent reached the parent's eventfd before
// r's (the kernel notifies from the top down), so, with the parent's
// read after r's, none of r's notices from above is missed in the count.
func (w *cgroupWatcher) ownOOMLocked(r *cgroupEvents) bool {
	w.drainParentLocked()
	return r.notices > w.parentOOMs-r.parentBase
}

// add watches c's event files and calls onLimit once when a limit is hit.
func (w *cgroupWatcher) add(c *Cgroup, onLimit func(string)) error {
	if onLimit == nil {
		return nil
	}
	r := &cgroupEvents{c: c, onLimit: onLimit, efd: -1, pids: -1}
	var files []string
	if c.m.version == 2 {
		if c.m.has("memory") {
			files = append(files, filepath.Join(c.dir, "memory.events"))
		}
		if c.m.has("pids") {
			files = append(files, filepath.Join(c.dir, "pids.events"))
		}
	}
	// The system calls come first, without the lock, so that a burst of
	// sessions does not queue here: the cgroup is new and empty, so
	// nothing can fire before the maps below know it.
	fail := func(err error) error {
		w.mu.Lock()
		w.regs[c] = r
		w.unregisterLocked(c)
		w.mu.Unlock()
		return err
	}
	for _, f := range files {
		wd, err := unix.InotifyAddWatch(w.inotify, f, unix.IN_MODIFY)
		if err != nil {
			return fail(fmt.Errorf("watch %s: %w", f, err))
		}
		r.wds = append(r.wds, int32(wd))
	}
	if d, ok := c.dirs["pids"]; ok && c.m.version == 1 {
		var err error
		if r.pids, err = unix.Open(filepath.Join(d, "pids.events"), unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
			return fail(err)
		}
	}
	if d, ok := c.dirs["memory"]; ok && c.m.version == 1 {
		var err error
		if r.efd, err = registerOOMEventfd(d); err != nil {
			return fail(err)
		}
	}
	w.mu.Lock()
	w.drainParentLocked()
	r.parentBase = w.parentOOMs
	for _, wd := range r.wds {
		w.byWD[wd] = r
	}
	if r.efd >= 0 {
		w.byFD[int32(r.efd)] = r
	}
	if r.pids >= 0 {
		r.polled = true
		w.polled++
		if w.polled == 1 {
			w.armTimer(cgroupPollInterval)
		}
	}
	w.regs[c] = r
	w.mu.Unlock()
	if r.efd >= 0 {
		if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, r.efd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(r.efd)}); err != nil {
			return fail(fmt.Errorf("epoll_ctl: %w", err))
		}
	}
	return nil
}

// armTimer starts (d > 0) or stops (d == 0) the poll timer.
func (w *cgroupWatcher) armTimer(d time.Duration) {
	ts := unix.NsecToTimespec(int64(d))
	_ = unix.TimerfdSettime(w.timer, 0, &unix.ItimerSpec{Interval: ts, Value: ts}, nil) // valid arguments cannot fail
}

// oomNotice is the session whose v1 OOM eventfd fd is, if the kernel
// signalled it. It reads only an eventfd still registered, under the lock
// that remove closes it under: once closed, its number may already be
// another file's (a pipe of a concurrent exec, a session's socket), whose
// bytes a read would steal. And it counts only a read that got the
// eventfd's count: an event the epoll wait returned for a session removed
// meanwhile may name a number a new session's eventfd has now, which the
// kernel has not signalled, and that session must not end for it (CI once:
// a container killed before it was ready, in TestForkBomb/cgroup-v1 after
// the cgroup tests).
//
// A notice that came from above the session (see cgroupWatcher) is
// counted and otherwise ignored: nil.
func (w *cgroupWatcher) oomNotice(fd int32) *cgroupEvents {
	w.mu.Lock()
	defer w.mu.Unlock()
	r := w.byFD[fd]
	if r == nil || !w.readNoticesLocked(r) || !w.ownOOMLocked(r) {
		return nil
	}
	return r
}

// readNoticesLocked adds what r's eventfd counted since it was last read
// to r.notices; false if it counted nothing (EAGAIN).
func (w *cgroupWatcher) readNoticesLocked(r *cgroupEvents) bool {
	var cnt [8]byte
	if n, err := unix.Read(r.efd, cnt[:]); err != nil || n != len(cnt) {
		return false
	}
	r.notices += binary.NativeEndian.Uint64(cnt[:])
	return true
}

// hostOOMVictims appends to fired the v1 sessions whose memory.oom_control
// counts a kill since it was last read, with their kinds: 1 when the
// session's own limit was reached (its notice not read yet), else 3 (an
// out of memory above the sessions killed in it). Read while an out of
// memory above the sessions is recent (hostOOMUntil), so its allocations
// do not matter.
func (w *cgroupWatcher) hostOOMVictims(fired []*cgroupEvents, kinds []int) ([]*cgroupEvents, []int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range w.regs {
		d, ok := r.c.dirs["memory"]
		if r.efd < 0 || !ok {
			continue
		}
		k := readKeyed(filepath.Join(d, "memory.oom_control"))["oom_kill"]
		if k <= r.oomKills {
			continue
		}
		r.oomKills = k
		w.readNoticesLocked(r)
		kind := 3
		if w.ownOOMLocked(r) {
			kind = 1
		}
		fired, kinds = append(fired, r), append(kinds, kind)
	}
	return fired, kinds
}

// remove stops watching c: before its cgroup is removed.
func (w *cgroupWatcher) remove(c *Cgroup) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.unregisterLocked(c)
}

func (w *cgroupWatcher) unregisterLocked(c *Cgroup) {
	r, ok := w.regs[c]
	if !ok {
		return
	}
	delete(w.regs, c)
	if r.polled {
		w.polled--
		if w.polled == 0 {
			w.armTimer(0)
		}
	}
	if r.pids >= 0 {
		_ = unix.Close(r.pids) // read-only; nothing to report
	}
	for _, wd := range r.wds {
		delete(w.byWD, wd)
		_, _ = unix.InotifyRmWatch(w.inotify, uint32(wd)) // gone with its cgroup already is fine
	}
	if r.efd >= 0 {
		delete(w.byFD, int32(r.efd))
		_ = unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, r.efd, nil) // closing removes it anyway
		_ = unix.Close(r.efd)                                     // closing also ends the kernel's registration
	}
}

func (w *cgroupWatcher) loop() {
	defer close(w.done)
	events := make([]unix.EpollEvent, 16)
	buf := make([]byte, 16*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
	// Reused from one wake-up to the next: the v1 poll wakes this loop
	// four times a second for every session, and must not make garbage
	// (it made 12 objects a session a poll: 25,000 a second, and the
	// server's heap grew by 20 KiB a session between collections).
	var fired []*cgroupEvents
	var kinds []int // what fired: 0 a v2 events file, 1 v1 OOM, 2 the v1 poll, 3 v1 OOM above the sessions
	for {
		n, err := unix.EpollWait(w.epfd, events, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "playground: cgroup watcher stopped: %v\n", err)
			return
		}
		clear(fired)
		fired, kinds = fired[:0], kinds[:0]
		for _, ev := range events[:n] {
			switch ev.Fd {
			case int32(w.wake):
				return
			case int32(w.inotify):
				for _, r := range w.readInotify(buf) {
					fired, kinds = append(fired, r), append(kinds, 0)
				}
			case int32(w.parentEfd):
				w.mu.Lock()
				w.drainParentLocked()
				if w.polled == 0 && w.hostOOMUntil.IsZero() {
					w.armTimer(cgroupPollInterval)
				}
				w.mu.Unlock()
				w.hostOOMUntil = time.Now().Add(hostOOMWatch)
			case int32(w.timer):
				var cnt [8]byte
				_, _ = unix.Read(w.timer, cnt[:]) // the expiry count; EAGAIN if raced
				w.mu.Lock()
				for _, r := range w.regs {
					if r.pids >= 0 {
						fired, kinds = append(fired, r), append(kinds, 2)
					}
				}
				w.mu.Unlock()
				if !w.hostOOMUntil.IsZero() {
					fired, kinds = w.hostOOMVictims(fired, kinds)
					if time.Now().After(w.hostOOMUntil) {
						w.hostOOMUntil = time.Time{}
						w.mu.Lock()
						if w.polled == 0 {
							w.armTimer(0)
						}
						w.mu.Unlock()
					}
				}
			default:
				if r := w.oomNotice(ev.Fd); r != nil {
					fired, kinds = append(fired, r), append(kinds, 1)
				}
			}
		}
		for i, r := range fired {
			var reason string
			switch kinds[i] {
			case 0:
				reason = r.c.limitHit()
			case 1:
				// v1's OOM notice comes before its kill is counted.
				reason = r.c.limits.MemoryReason()
			case 2:
				if w.pidsEventsMax(r, buf) > 0 {
					reason = r.c.limits.PidsReason()
				}
			case 3:
				reason = HostMemoryReason
			}
			if reason != "" && r.c.limitReached(reason) {
				r.onLimit(reason)
			}
		}
	}
}

// readInotify drains the inotify fd and returns the sessions whose files
// changed.
func (w *cgroupWatcher) readInotify(buf []byte) []*cgroupEvents {
	var out []*cgroupEvents
	for {
		n, err := unix.Read(w.inotify, buf)
		if n <= 0 || err != nil {
			return out
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			off += unix.SizeofInotifyEvent + int(ev.Len)
			if ev.Mask&unix.IN_MODIFY == 0 {
				continue
			}
			w.mu.Lock()
			r := w.byWD[ev.Wd]
			w.mu.Unlock()
			if r != nil {
				out = append(out, r)
			}
		}
	}
}

// pidsEventsMax reads the "max" count of r's v1 pids.events into buf and
// parses it, without allocating; 0 when the session is no longer watched
// or the file cannot be read (the cgroup is going). It reads under the
// lock that remove closes the fd under: once closed, its number may be
// another file's already, whose bytes would be read for the session's.
func (w *cgroupWatcher) pidsEventsMax(r *cgroupEvents, buf []byte) int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.regs[r.c] != r {
		return 0
	}
	n, err := unix.Pread(r.pids, buf, 0) // a cgroup file shows anew when read from its start
	if err != nil || n <= 0 {
		return 0
	}
	return keyedValue(buf[:n], "max")
}

// keyedValue is key's value in a flat keyed file ("key value" lines), or 0.
func keyedValue(b []byte, key string) int64 {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		k, v, ok := bytes.Cut(line, []byte{' '})
		if !ok || string(k) != key {
			continue
		}
		var n int64
		for _, c := range bytes.TrimSpace(v) {
			if c < '0' || c > '9' {
				return 0
			}
			n = n*10 + int64(c-'0')
		}
		return n
	}
	return 0
}
