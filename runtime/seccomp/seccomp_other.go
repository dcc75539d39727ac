//go:build !linux

package seccomp

import "errors"

// ErrUnsupported is returned on systems without seccomp.
var ErrUnsupported = errors.New("seccomp: needs Linux")

// Filter is a compiled seccomp BPF program; there is none on this system.
type Filter []struct{}

// Compiled returns ErrUnsupported.
func Compiled() (Filter, error) { return nil, ErrUnsupported }

// ProfileJSON returns ErrUnsupported.
func ProfileJSON() ([]byte, error) { return nil, ErrUnsupported }
