package runtime

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
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
//     session learns of it here and ends itself, as oom.group does on v2.
type cgroupWatcher struct {
	epfd, inotify, wake int

	mu   sync.Mutex
	byWD map[int32]*cgroupEvents // inotify watch → session
	byFD map[int32]*cgroupEvents // v1 oom eventfd → session
	regs map[*Cgroup]*cgroupEvents

	done      chan struct{}
	closeOnce sync.Once
}

type cgroupEvents struct {
	c        *Cgroup
	onLimit  func(string)
	wds      []int32
	efd, ofd int // v1: the oom eventfd and memory.oom_control, or -1
}

func newCgroupWatcher() (*cgroupWatcher, error) {
	w := &cgroupWatcher{epfd: -1, inotify: -1, wake: -1, byWD: map[int32]*cgroupEvents{}, byFD: map[int32]*cgroupEvents{}, regs: map[*Cgroup]*cgroupEvents{}, done: make(chan struct{})}
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
	for _, fd := range []int{w.inotify, w.wake} {
		if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}); err != nil {
			w.closeFds()
			return nil, fmt.Errorf("cgroup watcher: epoll_ctl: %w", err)
		}
	}
	go w.loop()
	return w, nil
}

func (w *cgroupWatcher) closeFds() {
	for _, fd := range []int{w.epfd, w.inotify, w.wake} {
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

// add watches c's event files and calls onLimit once when a limit is hit.
func (w *cgroupWatcher) add(c *Cgroup, onLimit func(string)) error {
	if onLimit == nil {
		return nil
	}
	r := &cgroupEvents{c: c, onLimit: onLimit, efd: -1, ofd: -1}
	var files []string
	if c.m.version == 2 {
		if c.m.has("memory") {
			files = append(files, filepath.Join(c.dir, "memory.events"))
		}
		if c.m.has("pids") {
			files = append(files, filepath.Join(c.dir, "pids.events"))
		}
	} else if d, ok := c.dirs["pids"]; ok {
		files = append(files, filepath.Join(d, "pids.events"))
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	fail := func(err error) error {
		w.regs[c] = r
		w.unregisterLocked(c)
		return err
	}
	for _, f := range files {
		wd, err := unix.InotifyAddWatch(w.inotify, f, unix.IN_MODIFY)
		if err != nil {
			return fail(fmt.Errorf("watch %s: %w", f, err))
		}
		r.wds = append(r.wds, int32(wd))
		w.byWD[int32(wd)] = r
	}
	if d, ok := c.dirs["memory"]; ok && c.m.version == 1 {
		var err error
		if r.efd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
			return fail(fmt.Errorf("eventfd: %w", err))
		}
		if r.ofd, err = unix.Open(filepath.Join(d, "memory.oom_control"), unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
			return fail(err)
		}
		if err := writeCgroupFile(filepath.Join(d, "cgroup.event_control"), strconv.Itoa(r.efd)+" "+strconv.Itoa(r.ofd)); err != nil {
			return fail(err)
		}
		if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, r.efd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(r.efd)}); err != nil {
			return fail(fmt.Errorf("epoll_ctl: %w", err))
		}
		w.byFD[int32(r.efd)] = r
	}
	w.regs[c] = r
	return nil
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
	for _, wd := range r.wds {
		delete(w.byWD, wd)
		_, _ = unix.InotifyRmWatch(w.inotify, uint32(wd)) // gone with its cgroup already is fine
	}
	if r.efd >= 0 {
		delete(w.byFD, int32(r.efd))
		_ = unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, r.efd, nil) // closing removes it anyway
		_ = unix.Close(r.efd)                                     // closing also ends the kernel's registration
	}
	if r.ofd >= 0 {
		_ = unix.Close(r.ofd)
	}
}

func (w *cgroupWatcher) loop() {
	defer close(w.done)
	events := make([]unix.EpollEvent, 16)
	buf := make([]byte, 16*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
	for {
		n, err := unix.EpollWait(w.epfd, events, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "playground: cgroup watcher stopped: %v\n", err)
			return
		}
		var fired []*cgroupEvents
		var memory []bool
		for _, ev := range events[:n] {
			switch ev.Fd {
			case int32(w.wake):
				return
			case int32(w.inotify):
				for _, r := range w.readInotify(buf) {
					fired, memory = append(fired, r), append(memory, false)
				}
			default:
				var cnt [8]byte
				_, _ = unix.Read(int(ev.Fd), cnt[:]) // resets the eventfd; EAGAIN if raced
				w.mu.Lock()
				r := w.byFD[ev.Fd]
				w.mu.Unlock()
				if r != nil {
					fired, memory = append(fired, r), append(memory, true)
				}
			}
		}
		for i, r := range fired {
			reason := r.c.limitHit()
			if memory[i] {
				// v1's OOM notice comes before its kill is counted.
				reason = r.c.limits.MemoryReason()
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
