//go:build linux && (amd64 || arm64)

package seccomp

import (
	"encoding/binary"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// TestTreeAnswersAsTheList: the filter with its binary search answers
// every call as the straight list of comparisons it replaced does (the
// layout before searchTree, kept as compileProfile's reference): every
// number up to well past the table and the numbers a foreign ABI uses,
// under this architecture and another, with arguments of none and all
// ones; and for each call with argument rules, thousands of arguments
// made of the rules' own values, their neighbours and their bits; and no
// call of another ABI is allowed. Both
// run in golang.org/x/net/bpf's interpreter.
func TestTreeAnswersAsTheList(t *testing.T) {
	p, err := Profile(runtime.GOARCH)
	if err != nil {
		t.Fatal(err)
	}
	info, err := arch.GetInfo(runtime.GOARCH)
	if err != nil {
		t.Fatal(err)
	}
	for _, enosys := range []bool{true, false} {
		tree, err := compileProfile(p, runtime.GOARCH, enosys, true)
		if err != nil {
			t.Fatal(err)
		}
		list, err := compileProfile(p, runtime.GOARCH, enosys, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(tree) >= len(list) {
			t.Errorf("enosysAbove %v: the search is %d instructions, the list %d", enosys, len(tree), len(list))
		}
		tvm, lvm := newVM(t, tree), newVM(t, list)
		checked := 0
		check := func(a uint32, nr uint32, args [6]uint64) {
			t.Helper()
			d := seccompData(a, nr, args)
			got, gerr := tvm.Run(d)
			want, werr := lvm.Run(d)
			checked++
			if gerr != nil || werr != nil || got != want {
				t.Fatalf("enosysAbove %v, arch %#x, call %d, args %#x: the search answers %#x (%v), the list %#x (%v)", enosys, a, nr, args, got, gerr, want, werr)
			}
			// Another ABI (i386's int 0x80, x32's numbers, an unknown
			// architecture) is never allowed: the container test of int
			// 0x80 cannot run on a machine without that entry.
			if foreign := a != uint32(info.ID) || nr&(1<<30) != 0; foreign && got&unix.SECCOMP_RET_ACTION_FULL == unix.SECCOMP_RET_ALLOW {
				t.Fatalf("enosysAbove %v, arch %#x, call %d: allowed", enosys, a, nr)
			}
		}
		var none, ones [6]uint64
		for i := range ones {
			ones[i] = ^uint64(0)
		}
		numbers := []uint32{^uint32(0), 1 << 30, 1<<30 | 1, 1<<30 + 512, 0x7fffffff}
		for nr := range uint32(2048) {
			numbers = append(numbers, nr)
		}
		for _, a := range []uint32{uint32(info.ID), unix.AUDIT_ARCH_I386, 0} {
			for _, nr := range numbers {
				check(a, nr, none)
				check(a, nr, ones)
			}
		}
		// The calls with argument rules, with arguments built from the
		// rules' values.
		rng := rand.New(rand.NewPCG(1, 2))
		for _, r := range p.Syscalls {
			if len(r.Args) == 0 {
				continue
			}
			var vals [6][]uint64
			for i := range vals {
				vals[i] = []uint64{0, ^uint64(0)}
			}
			for _, c := range r.Args {
				for _, v := range []uint64{c.Value, c.ValueTwo} {
					vals[c.Index] = append(vals[c.Index], v, v-1, v+1, v|1<<32, v|0xffffffff00000000)
					for b := range 64 {
						if v&(1<<b) != 0 {
							vals[c.Index] = append(vals[c.Index], 1<<b, v&^(1<<b))
						}
					}
				}
			}
			for _, name := range r.Names {
				nr, ok := info.SyscallNames[name]
				if !ok {
					continue
				}
				for range 3000 {
					var args [6]uint64
					for i := range args {
						v := vals[i][rng.IntN(len(vals[i]))]
						switch rng.IntN(4) {
						case 0: // one more bit set or cleared
							v ^= 1 << rng.IntN(64)
						case 1: // another of the values' bits added
							v |= vals[i][rng.IntN(len(vals[i]))]
						}
						args[i] = v
					}
					check(uint32(info.ID), uint32(nr), args)
				}
			}
		}
		t.Logf("enosysAbove %v: %d instructions (the list: %d), %d calls answered alike", enosys, len(tree), len(list), checked)
	}
}

// TestSearchTreeShape: the search answers ALLOW for each number allowed,
// goes past its end for each number with rules (unless also allowed),
// and answers the default for every other, with jumps past the 255
// instructions a conditional jump reaches.
func TestSearchTreeShape(t *testing.T) {
	const deny, past = 5, 7
	for _, tc := range []struct{ allow, ruled []uint32 }{
		{[]uint32{0}, nil},
		{[]uint32{5}, []uint32{6}},
		{[]uint32{0, 1, 2, 7, 9, 10}, []uint32{3, 8, 10, 11}},
		{nil, []uint32{0, 1}},
		{[]uint32{^uint32(0)}, []uint32{^uint32(0) - 1}},
		{evens(600), []uint32{3, 1199}}, // 1,200 runs: long jumps
	} {
		prog := append([]bpf.Instruction{bpf.LoadAbsolute{Off: 0, Size: 4}}, searchTree(tc.allow, tc.ruled, deny)...)
		prog = append(prog, bpf.RetConstant{Val: past})
		vm := newVMOf(t, prog)
		probe := []uint32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 1198, 1199, 1200, ^uint32(0) - 2, ^uint32(0) - 1, ^uint32(0)}
		for _, n := range probe {
			got, err := vm.Run(seccompData(0, n, [6]uint64{}))
			want := deny
			switch {
			case slices.Contains(tc.allow, n):
				want = unix.SECCOMP_RET_ALLOW
			case slices.Contains(tc.ruled, n):
				want = past
			}
			if err != nil || got != want {
				t.Errorf("search over %v and %v, call %d: %#x (%v), want %#x", len(tc.allow), tc.ruled, n, got, err, want)
			}
		}
	}
}

func evens(n int) []uint32 {
	var s []uint32
	for i := range n {
		s = append(s, uint32(2*i))
	}
	return s
}

func newVM(t *testing.T, f Filter) *bpf.VM {
	t.Helper()
	raw := make([]bpf.RawInstruction, len(f))
	for i, in := range f {
		raw[i] = bpf.RawInstruction{Op: in.Code, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	prog, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("the filter has an instruction the interpreter does not know")
	}
	return newVMOf(t, prog)
}

func newVMOf(t *testing.T, prog []bpf.Instruction) *bpf.VM {
	t.Helper()
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatal(err)
	}
	return vm
}

// seccompData lays out struct seccomp_data for the interpreter, which
// loads words big-endian: each 32-bit word the kernel's filter would load
// natively is stored so that it reads the same (an argument's low word at
// its offset, its high word 4 bytes on, as on a little-endian machine).
func seccompData(a, nr uint32, args [6]uint64) []byte {
	d := make([]byte, 64)
	binary.BigEndian.PutUint32(d[0:], nr)
	binary.BigEndian.PutUint32(d[4:], a)
	for i, v := range args {
		binary.BigEndian.PutUint32(d[16+8*i:], uint32(v))
		binary.BigEndian.PutUint32(d[20+8*i:], uint32(v>>32))
	}
	return d
}
