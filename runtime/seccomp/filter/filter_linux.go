// Package filter holds a compiled seccomp BPF program and installs it. It
// is apart from package seccomp, which builds the program, so that the
// runtime (every container's init is a process of it) does not link the
// builder and its tables: on amd64 the program comes compiled with the
// source (filter_amd64.bpf, which a test of package seccomp keeps equal to
// what seccomp.Compile makes).
package filter

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Program is a compiled seccomp BPF program.
type Program []unix.SockFilter

// Install installs p on the calling OS thread only (no TSYNC): the caller
// has locked its goroutine to the thread and set no_new_privs on it (or
// holds CAP_SYS_ADMIN). Threads and processes it creates afterwards
// inherit the filter; it cannot be removed.
func (p Program) Install() error {
	if len(p) == 0 {
		return errors.New("seccomp: empty filter")
	}
	prog := unix.SockFprog{Len: uint16(len(p)), Filter: &p[0]}
	_, _, e := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&prog)))
	if e != 0 {
		return fmt.Errorf("seccomp: install filter: %w", e)
	}
	return nil
}

// Bytes encodes p as the kernel lays it out, 8 bytes an instruction.
func (p Program) Bytes() []byte {
	b := make([]byte, 0, 8*len(p))
	for _, i := range p {
		b = binary.NativeEndian.AppendUint16(b, i.Code)
		b = append(b, i.Jt, i.Jf)
		b = binary.NativeEndian.AppendUint32(b, i.K)
	}
	return b
}

// FromBytes decodes what Bytes encoded.
func FromBytes(b []byte) (Program, error) {
	if len(b) == 0 || len(b)%8 != 0 || len(b)/8 > unix.BPF_MAXINSNS {
		return nil, fmt.Errorf("seccomp: filter of %d bytes", len(b))
	}
	p := make(Program, len(b)/8)
	for i := range p {
		c := b[8*i:]
		p[i] = unix.SockFilter{Code: binary.NativeEndian.Uint16(c), Jt: c[2], Jf: c[3], K: binary.NativeEndian.Uint32(c[4:])}
	}
	return p, nil
}
