//go:build linux

package filter

import (
	_ "embed"
	"sync"
)

// compiled is seccomp.Compile's program for amd64 (go test
// ./runtime/seccomp with PLAYGROUND_UPDATE_PROFILE=1 writes it).
//
//go:embed filter_amd64.bpf
var compiled []byte

// Embedded returns the program compiled with the source, decoded once.
var Embedded = sync.OnceValues(func() (Program, error) { return FromBytes(compiled) })
