//go:build !linux

// Package filter holds a compiled seccomp BPF program; there is none on
// this system.
package filter
