//go:build linux && !amd64

package runtime

import (
	"github.com/guntainer/playground/runtime/seccomp"
	"github.com/guntainer/playground/runtime/seccomp/filter"
)

// programFilter is the program's seccomp filter, compiled once per process
// (on amd64 it comes compiled with the source).
func programFilter() (filter.Program, error) { return seccomp.Compiled() }
