//go:build !unix

package server

// growUnderDataLimit: this system has no RLIMIT_DATA to grow under.
func growUnderDataLimit() int { return 0 }
