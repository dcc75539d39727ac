// Package ptyinput writes a pty master's input so that a signal key can cut
// in as the line discipline's would: the input the program has not read
// goes with the signal, also the rest of a write that waits for room.
package ptyinput

import (
	"errors"
	"os"
)

// ErrFlushed ends a Write whose rest an Interrupt dropped.
var ErrFlushed = errors.New("input dropped by an interrupt")

// Control runs fn with file's descriptor, through SyscallConn: Fd would
// put a pollable file in blocking mode, where Close no longer wakes a Read
// and deadlines no longer work. It returns fn's error.
func Control(file *os.File, fn func(fd int) error) error {
	rc, err := file.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}
