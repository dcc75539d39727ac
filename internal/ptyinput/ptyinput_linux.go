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
// foreground process group and, unless the program has set NOFLSH, drops
// the input the program has not read. That is what is in the pty and the
// rest of a Write waiting for room in it, which returns ErrFlushed. It
// reaches a program that does not read its input, where the key written
// as input would wait behind the rest. Whether a typed byte is such a key
// is SignalKey's to say.
//
// The signal is ioctl TIOCSIG on the master. The flush needs the terminal
// side: ioctl TIOCGPTPEER opens it from the master, without a path, and
// TCFLSH on it drops both the line discipline's buffer and the pty's
// buffer before it; a flush of the master would drop the program's output.
// (The modes need no such detour: the kernel answers a master's TCGETS
// with the terminal side's.)
func (w *Writer) Interrupt(sig syscall.Signal) error {
	if sig != syscall.SIGINT && sig != syscall.SIGQUIT && sig != syscall.SIGTSTP {
		return fmt.Errorf("%v: a terminal's keys send only SIGINT, SIGQUIT and SIGTSTP", sig)
	}
	tio, err := w.modes()
	if err != nil {
		return err
	}
	if tio.Lflag&unix.NOFLSH == 0 {
		// End a Write that waits for room, and keep the next from
		// starting until the signal has gone: what it wrote after the
		// flush would be read. The flush comes first: the line
		// discipline signals and flushes with the terminal locked, and
		// a shell that the signal wakes could read between the two.
		if err := w.f.SetWriteDeadline(time.Unix(1, 0)); err != nil {
			return fmt.Errorf("end a write in progress: %w", err)
		}
		w.mu.Lock()
		defer func() {
			_ = w.f.SetWriteDeadline(time.Time{}) // the file is pollable: it was set above
			w.mu.Unlock()
		}()
		if err := w.flush(); err != nil {
			return err
		}
	}
	if err := w.control(func(fd int) error { return unix.IoctlSetInt(fd, unix.TIOCSIG, int(sig)) }); err != nil {
		return fmt.Errorf("signal the terminal's foreground process group: %w", err)
	}
	return nil
}

// flush drops the input the program has not read, from the terminal
// side, opened from the master for it.
func (w *Writer) flush() error {
	var peer int
	err := w.control(func(fd int) error {
		// O_NOCTTY: a session leader without a terminal (a server
		// under systemd) would take this one as its own.
		r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TIOCGPTPEER, unix.O_RDONLY|unix.O_NOCTTY|unix.O_CLOEXEC)
		if errno != 0 {
			return errno
		}
		peer = int(r)
		return nil
	})
	if err != nil {
		return fmt.Errorf("open the terminal from its pty master: %w", err)
	}
	defer unix.Close(peer)
	if err := unix.IoctlSetInt(peer, unix.TCFLSH, unix.TCIFLUSH); err != nil {
		return fmt.Errorf("drop the unread input: %w", err)
	}
	return nil
}

// SignalKey reports the signal that the byte b sends when it is typed:
// SIGINT, SIGQUIT or SIGTSTP where the program has ISIG set and b is its
// VINTR, VQUIT or VSUSP key (stty can change them); ok is false where b
// is input like any other, as for a program that reads its keys raw (an
// editor, a terminal multiplexer).
func (w *Writer) SignalKey(b byte) (sig syscall.Signal, ok bool, err error) {
	tio, err := w.modes()
	if err != nil {
		return 0, false, err
	}
	if tio.Lflag&unix.ISIG == 0 || b == 0 { // 0 is _POSIX_VDISABLE: no key
		return 0, false, nil
	}
	for _, k := range []struct {
		cc  int
		sig syscall.Signal
	}{{unix.VINTR, syscall.SIGINT}, {unix.VQUIT, syscall.SIGQUIT}, {unix.VSUSP, syscall.SIGTSTP}} {
		if tio.Cc[k.cc] == b {
			return k.sig, true, nil
		}
	}
	return 0, false, nil
}

// modes are the terminal side's modes: the kernel answers a pty master's
// TCGETS with the other end's.
func (w *Writer) modes() (*unix.Termios, error) {
	var tio *unix.Termios
	err := w.control(func(fd int) (err error) {
		tio, err = unix.IoctlGetTermios(fd, unix.TCGETS)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("terminal modes: %w", err)
	}
	return tio, nil
}

// control runs f with the master's fd (Control).
func (w *Writer) control(f func(fd int) error) error { return Control(w.f, f) }
