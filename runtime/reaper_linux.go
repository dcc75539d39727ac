package runtime

import (
	"errors"
	"sync"

	"golang.org/x/sys/unix"
)

// exits waits for the exit of every container of this process on one
// goroutine, blocked in epoll_wait on the containers' pidfds, rather than on
// a goroutine per container: an idle server then holds no goroutine (and
// no goroutine's stack) per session for it, and no OS thread either, which
// a wait4 per container would block (with Spec.ProgramIsInit no exit
// message comes first, to wait for in Go's network poller). The goroutine
// and its epoll fd exist while a container runs, and go with the last.
var exits reaper

type reaper struct {
	mu      sync.Mutex
	epfd    int                  // while running
	running bool                 // a loop waits on epfd
	broken  error                // epoll failed: every container waits on its own
	waiting map[int32]*Container // by pidfd
}

// add has c.watch run once c's init (or program, as PID 1) has exited. It
// returns false, with nothing done, where the kernel has no pidfds (before
// Linux 5.3) or epoll failed: the caller runs c.watch on a goroutine of
// its own, which waits itself.
func (r *reaper) add(c *Container) bool {
	fd, err := unix.PidfdOpen(c.cmd.Process.Pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.broken == nil && !r.running {
		epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			_ = unix.Close(fd)
			return false
		}
		r.epfd, r.running = epfd, true
		if r.waiting == nil {
			r.waiting = map[int32]*Container{}
		}
		go r.loop(epfd)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLONESHOT, Fd: int32(fd)}
	if r.broken != nil || unix.EpollCtl(r.epfd, unix.EPOLL_CTL_ADD, fd, &ev) != nil {
		_ = unix.Close(fd) // never registered
		return false
	}
	r.waiting[int32(fd)] = c
	return true
}

// loop hands each exited container to a short-lived goroutine of its own,
// which reaps it (at once: a pidfd is readable once its process is a
// zombie) and frees what it held. It ends when no container is left.
func (r *reaper) loop(epfd int) {
	evs := make([]unix.EpollEvent, 64)
	for {
		n, err := unix.EpollWait(epfd, evs, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		r.mu.Lock()
		if err != nil {
			// Not seen (EBADF or EINVAL would be a bug of ours): every
			// container waiting, and every later one, waits on its own.
			r.broken = err
			for fd, c := range r.waiting {
				_ = unix.Close(int(fd))
				go c.watch()
			}
			clear(r.waiting)
		}
		for _, ev := range evs[:max(n, 0)] {
			if c, ok := r.waiting[ev.Fd]; ok {
				delete(r.waiting, ev.Fd)
				_ = unix.Close(int(ev.Fd)) // also takes it out of the epoll set
				go c.watch()
			}
		}
		if len(r.waiting) == 0 {
			_ = unix.Close(epfd)
			r.running = false
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
	}
}
