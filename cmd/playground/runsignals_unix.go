//go:build unix

package main

import (
	"os"
	"os/signal"
	"syscall"
)

var (
	// userSignals are passed on besides the ending ones.
	userSignals = []os.Signal{syscall.SIGUSR1, syscall.SIGUSR2}
	// resizeSignals say the terminal's size changed.
	resizeSignals = []os.Signal{syscall.SIGWINCH}
)

// ignoreTTIN makes a read of the terminal by a background process fail
// (EIO) rather than stop it.
func ignoreTTIN() { signal.Ignore(syscall.SIGTTIN) }
