package runtime

import (
	"encoding/binary"
	goruntime "runtime"
	"testing"

	"github.com/guntainer/playground/internal/testenv"
)

// foreignABIProgram is a minimal static x86-64 ELF executable, written
// byte by byte (the ordinary-user CI run has no toolchain), that makes one
// system call through another ABI and exits with the errno it got (0 if
// the call succeeded):
//
//   - "int80": unshare(CLONE_NEWUSER) by int 0x80, the i386 ABI (nr 310),
//     which a 64-bit process may use and a filter that checks only the
//     system call number would let through;
//   - "x32": unshare(CLONE_NEWUSER) by the x32 ABI (nr 272 | 0x40000000).
//
// Its exit goes through the native ABI, which the filter allows.
func foreignABIProgram(t *testing.T, abi string) []byte {
	t.Helper()
	if goruntime.GOARCH != "amd64" {
		testenv.Skipf(t, "the foreign ABIs tried here are x86's; this is %s", goruntime.GOARCH)
	}
	const cloneNewUser = 0x10000000
	le := binary.LittleEndian
	var code []byte
	movEAX := func(v uint32) { code = le.AppendUint32(append(code, 0xB8), v) }
	movEBX := func(v uint32) { code = le.AppendUint32(append(code, 0xBB), v) }
	movEDI := func(v uint32) { code = le.AppendUint32(append(code, 0xBF), v) }
	switch abi {
	case "int80":
		movEAX(310) // i386 unshare
		movEBX(cloneNewUser)
		code = append(code, 0xCD, 0x80) // int 0x80
	case "x32":
		movEAX(0x40000000 | 272) // x32 unshare
		movEDI(cloneNewUser)
		code = append(code, 0x0F, 0x05) // syscall
	default:
		t.Fatalf("no ABI %q", abi)
	}
	code = append(code, 0xF7, 0xD8) // neg eax: the errno, or 0
	code = append(code, 0x89, 0xC7) // mov edi, eax
	movEAX(60)                      // exit
	code = append(code, 0x0F, 0x05) // syscall

	const base, hdrs = 0x400000, 64 + 56
	var b []byte
	// ELF header.
	b = append(b, 0x7F, 'E', 'L', 'F', 2 /* 64-bit */, 1 /* LE */, 1 /* version */, 0 /* SysV */)
	b = append(b, make([]byte, 8)...)
	b = le.AppendUint16(b, 2)  // ET_EXEC
	b = le.AppendUint16(b, 62) // EM_X86_64
	b = le.AppendUint32(b, 1)
	b = le.AppendUint64(b, base+hdrs) // entry
	b = le.AppendUint64(b, 64)        // program headers' offset
	b = le.AppendUint64(b, 0)         // section headers' offset
	b = le.AppendUint32(b, 0)         // flags
	b = le.AppendUint16(b, 64)        // header size
	b = le.AppendUint16(b, 56)        // program header size
	b = le.AppendUint16(b, 1)         // program headers
	b = le.AppendUint16(b, 0)         // section header size
	b = le.AppendUint16(b, 0)         // section headers
	b = le.AppendUint16(b, 0)         // section names' index
	// One PT_LOAD, read and execute, of the whole file.
	size := uint64(hdrs + len(code))
	b = le.AppendUint32(b, 1)    // PT_LOAD
	b = le.AppendUint32(b, 5)    // PF_R | PF_X
	b = le.AppendUint64(b, 0)    // offset
	b = le.AppendUint64(b, base) // vaddr
	b = le.AppendUint64(b, base) // paddr
	b = le.AppendUint64(b, size)
	b = le.AppendUint64(b, size)
	b = le.AppendUint64(b, 0x1000)
	return append(b, code...)
}
