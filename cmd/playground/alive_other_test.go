//go:build !unix

package main

import "os"

// pidAlive reports whether a process of pid is there: on this system,
// whether it can be found at all.
func pidAlive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	p.Release()
	return true
}
