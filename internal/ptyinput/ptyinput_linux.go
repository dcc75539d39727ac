package ptyinput

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Writer writes the input of a pty master, which must be non-blocking (in
// Go's poller), as os.NewFile makes a non-blocking descriptor and
// os.OpenFile /dev/ptmx.
type Writer struct {
	f  *os.File
	mu sync.Mutex // held across a Write, so that Interrupt knows when it has ended
}

// New returns a Writer of master's input.
func New(master *os.File) *Writer { return &Writer{f: master} }

// Write writes p to the pty. It waits while the program does not read its
// input; an Interrupt ends that wait with ErrFlushed.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.f.Write(p)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = ErrFlushed
	}
	return n, err
}

// Interrupt does what the line discipline does when it reads the key that
// sends sig (^C, ^\ or ^Z) with ISIG set: it signals the terminal's
// foreground process group and then, unless the program has set NOFLSH,
// drops the input the program has not read. That is what is in the pty
// and the rest of a Write waiting for room in it, which returns
// ErrFlushed. It reaches a program that does not read its input, where the
// key written as input would wait behind the rest.
//
// The signal is ioctl TIOCSIG on the master. The flush needs the terminal
// side: ioctl TIOCGPTPEER opens it from the master, without a path, and
// TCFLSH on it drops both the line discipline's buffer and the pty's
// buffer before it; a flush of the master would drop the program's output.
func (w *Writer) Interrupt(sig syscall.Signal) error {
	if sig != syscall.SIGINT && sig != syscall.SIGQUIT && sig != syscall.SIGTSTP {
		return fmt.Errorf("%v: a terminal's keys send only SIGINT, SIGQUIT and SIGTSTP", sig)
	}
	rc, err := w.f.SyscallConn()
	if err != nil {
		return err
	}
	var peer int
	var perr error
	if err := rc.Control(func(fd uintptr) {
		// O_NOCTTY: a session leader without a terminal (a server
		// under systemd) would take this one as its own.
		r, _, errno := unix.Syscall(unix.SYS_IOCTL, fd, unix.TIOCGPTPEER, unix.O_RDONLY|unix.O_NOCTTY|unix.O_CLOEXEC)
		peer = int(r)
		if errno != 0 {
			perr = errno
		}
	}); err != nil {
		return err
	}
	if perr != nil {
		return fmt.Errorf("open the terminal from its pty master: %w", perr)
	}
	defer unix.Close(peer)
	tio, err := unix.IoctlGetTermios(peer, unix.TCGETS)
	if err != nil {
		return fmt.Errorf("terminal modes: %w", err)
	}
	flush := tio.Lflag&unix.NOFLSH == 0
	if flush {
		// End a Write that waits for room, and keep the next from
		// starting until the flush is done: what it wrote after would go.
		if err := w.f.SetWriteDeadline(time.Unix(1, 0)); err != nil {
			return fmt.Errorf("end a write in progress: %w", err)
		}
		w.mu.Lock()
		defer func() {
			_ = w.f.SetWriteDeadline(time.Time{}) // the file is pollable: it was set above
			w.mu.Unlock()
		}()
	}
	if err := rc.Control(func(fd uintptr) { perr = unix.IoctlSetInt(int(fd), unix.TIOCSIG, int(sig)) }); err != nil {
		return err
	}
	if perr != nil {
		return fmt.Errorf("signal the terminal's foreground process group: %w", perr)
	}
	if flush {
		if err := unix.IoctlSetInt(peer, unix.TCFLSH, unix.TCIFLUSH); err != nil {
			return fmt.Errorf("drop the unread input: %w", err)
		}
	}
	return nil
}
