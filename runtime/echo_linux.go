package runtime

import (
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// EchoesInput reports whether the program's terminal is in the line
// discipline's cooked echo mode (ICANON and ECHO on), where the kernel
// echoes typed input itself: a pty's state until its program sets it up
// (a shell's line editor turns both off and echoes by itself). A server
// holds a new session's typeahead until this is false, so that a line
// typed before the prompt is not echoed twice, once by the kernel and
// once by the line editor when it reads it.
//
// TCGETS on a pty's master gives its slave's settings: the kernel answers
// a master's termios ioctls with the other end's.
func (c *Container) EchoesInput() (bool, error) {
	if c.master == nil {
		return false, ErrNoTerminal
	}
	rc, err := c.master.SyscallConn()
	if err != nil {
		return false, err
	}
	var tio *unix.Termios
	var ierr error
	if err := rc.Control(func(fd uintptr) { tio, ierr = unix.IoctlGetTermios(int(fd), unix.TCGETS) }); err != nil {
		return false, err
	}
	if ierr != nil {
		return false, ierr
	}
	return tio.Lflag&unix.ICANON != 0 && tio.Lflag&unix.ECHO != 0, nil
}

// ReadsCookedInput reports whether the program's terminal is in cooked
// echo mode and its foreground process is blocked in read(2): a shell
// without a line editor (dash) at its prompt, or cat, or read. Input
// written now is echoed by the kernel and by nothing else, so a server
// holding typeahead can let it go at once rather than wait for the
// program to fall quiet. It reads /proc/PGID/syscall of the foreground
// process group's leader (a process of this server's own container,
// which it may inspect); false when that cannot be read.
func (c *Container) ReadsCookedInput() (bool, error) {
	cooked, err := c.EchoesInput()
	if err != nil || !cooked {
		return false, err
	}
	rc, err := c.master.SyscallConn()
	if err != nil {
		return false, err
	}
	var pgid int
	var ierr error
	if err := rc.Control(func(fd uintptr) { pgid, ierr = unix.IoctlGetInt(int(fd), unix.TIOCGPGRP) }); err != nil {
		return false, err
	}
	if ierr != nil || pgid <= 0 {
		return false, ierr
	}
	return inRead(pgid), nil
}

// inRead reports whether process pid is blocked in read(2): the first
// field of /proc/PID/syscall is the number of the system call it is
// blocked in ("running" or -1 otherwise).
func inRead(pid int) bool {
	var buf [64]byte
	fd, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/syscall", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	n, err := unix.Read(fd, buf[:])
	_ = unix.Close(fd) // read-only
	if err != nil || n <= 0 {
		return false
	}
	nr, _, _ := strings.Cut(string(buf[:n]), " ")
	return nr == strconv.Itoa(unix.SYS_READ)
}
