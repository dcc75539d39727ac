package main

import (
	"os"

	"golang.org/x/sys/unix"
)

// termiosOf is the modes of the terminal f is the master or slave of.
func termiosOf(f *os.File) (unix.Termios, error) {
	t, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	if err != nil {
		return unix.Termios{}, err
	}
	return *t, nil
}
