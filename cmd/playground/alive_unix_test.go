//go:build unix

package main

import "syscall"

// pidAlive reports whether a process of pid is there.
func pidAlive(pid int) bool { return syscall.Kill(pid, 0) == nil }
