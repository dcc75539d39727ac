//go:build !linux

package ptyinput

import (
	"errors"
	"os"
	"syscall"
)

// Writer writes the input of a pty master. Outside Linux it has no way
// to signal the terminal's foreground job (TIOCSIG): the server's
// sessions are Linux containers, so only tests and tools build it here.
type Writer struct{ f *os.File }

// New returns a Writer of master's input.
func New(master *os.File) *Writer { return &Writer{f: master} }

// Write writes p to the pty.
func (w *Writer) Write(p []byte) (int, error) { return w.f.Write(p) }

// Interrupt is not supported outside Linux.
func (w *Writer) Interrupt(sig syscall.Signal) error { return errors.ErrUnsupported }

// SignalKey says no byte is a signal key outside Linux: it is written as
// input, for the line discipline to act on.
func (w *Writer) SignalKey(b byte) (syscall.Signal, bool, error) { return 0, false, nil }
