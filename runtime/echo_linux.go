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
	var cooked bool
	err := c.masterIoctl(func(fd int) error {
		tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
		cooked = err == nil && cookedEcho(tio)
		return err
	})
	return cooked, err
}

func cookedEcho(tio *unix.Termios) bool {
	return tio.Lflag&unix.ICANON != 0 && tio.Lflag&unix.ECHO != 0
}

// ReadsCookedInput reports whether the program's terminal is in cooked
// echo mode and its foreground process is blocked in read(2) on that
// terminal: a shell without a line editor (dash) at its prompt, or cat, or
// read. Input written now is echoed by the kernel and by nothing else, so
// a server holding typeahead can let it go at once rather than wait for
// the program to fall quiet. It reads /proc/PGID/syscall of the foreground
// process group's leader (a process of this server's own container, which
// it may inspect) and checks that the fd it reads is this pty's slave (a
// read of a pipe, as a process waiting to be released does before its
// exec, does not count); false when any of that cannot be read.
func (c *Container) ReadsCookedInput() (bool, error) {
	var cooked bool
	var pgid, ptn int
	err := c.masterIoctl(func(fd int) error {
		tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
		if err != nil {
			return err
		}
		if cooked = cookedEcho(tio); !cooked {
			return nil
		}
		if pgid, err = unix.IoctlGetInt(fd, unix.TIOCGPGRP); err != nil {
			return err
		}
		ptn, err = unix.IoctlGetInt(fd, unix.TIOCGPTN)
		return err
	})
	if err != nil || !cooked || pgid <= 0 {
		return false, err
	}
	return readsPTY(pgid, ptn), nil
}

// readsPTY reports whether process pid is blocked in read(2) of the pty
// slave numbered ptn: the first two fields of /proc/PID/syscall are the
// number of the system call it is blocked in ("running" or -1 otherwise)
// and its first argument, the fd; that fd must be a pty slave (majors
// 136 to 143) of that number.
func readsPTY(pid, ptn int) bool {
	var buf [128]byte
	dir := "/proc/" + strconv.Itoa(pid)
	fd, err := unix.Open(dir+"/syscall", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	n, err := unix.Read(fd, buf[:])
	_ = unix.Close(fd) // read-only
	if err != nil || n <= 0 {
		return false
	}
	f := strings.Fields(string(buf[:n]))
	if len(f) < 2 || f[0] != strconv.Itoa(unix.SYS_READ) {
		return false
	}
	rfd, err := strconv.ParseUint(strings.TrimPrefix(f[1], "0x"), 16, 31)
	if err != nil {
		return false
	}
	var st unix.Stat_t
	if err := unix.Stat(dir+"/fd/"+strconv.FormatUint(rfd, 10), &st); err != nil {
		return false
	}
	major, minor := unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev))
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && major >= 136 && major <= 143 && int(minor+(major-136)<<20) == ptn
}
