package runtime

import (
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
