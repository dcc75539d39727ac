// Package ptyinput writes a pty master's input so that a signal key can cut
// in as the line discipline's would: the input the program has not read
// goes with the signal, also the rest of a write that waits for room.
package ptyinput

import "errors"

// ErrFlushed ends a Write whose rest an Interrupt dropped.
var ErrFlushed = errors.New("input dropped by an interrupt")
