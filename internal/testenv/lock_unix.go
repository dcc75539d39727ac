//go:build unix

package testenv

import (
	"os"

	"golang.org/x/sys/unix"
)

// lockFile takes f's exclusive lock (flock), waiting for it; closing f
// lets it go.
func lockFile(f *os.File) error { return unix.Flock(int(f.Fd()), unix.LOCK_EX) }
