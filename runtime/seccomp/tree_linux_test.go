//go:build linux && (amd64 || arm64)

package seccomp

import (
	"encoding/binary"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"github.com/elastic/go-seccomp-bpf/arch"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// TestFilterAnswersAsTheProfile: the filter answers every call as the
// profile says, read by profileAnswer here (libseccomp's reading: an
// argument test compares all 64 bits), not by another compiler: every
// number up to well past the table and the numbers a foreign ABI uses,
// under this architecture and another, with arguments of none and all
// ones; and for each call with argument rules, thousands of arguments
// made of the rules' own values, their neighbours and their bits, and
// each of those values with high halves of every value of the rules and
// of 0 to 63 (go-seccomp-bpf's layout, which the filter had before,
// allowed socket of any family with 16 or 56 there). No call of another
// ABI is allowed. The filter runs in golang.org/x/net/bpf's interpreter.
func TestFilterAnswersAsTheProfile(t *testing.T) {
	for _, goarch := range []string{"amd64", "arm64"} {
		t.Run(goarch, func(t *testing.T) { filterAnswersAsTheProfile(t, goarch) })
	}
}

func filterAnswersAsTheProfile(t *testing.T, goarch string) {
	p, err := Profile(goarch)
	if err != nil {
		t.Fatal(err)
	}
	info, err := arch.GetInfo(goarch)
	if err != nil {
		t.Fatal(err)
	}
	for _, enosys := range []bool{true, false} {
		f, err := compileProfile(p, goarch, enosys)
		if err != nil {
			t.Fatal(err)
		}
		vm := newVM(t, f)
		checked := 0
		check := func(a uint32, nr uint32, args [6]uint64) {
			t.Helper()
			got, err := vm.Run(seccompData(a, nr, args))
			want := profileAnswer(p, info, enosys, a, nr, args)
			checked++
			if err != nil || uint32(got) != want {
				t.Fatalf("enosysAbove %v, arch %#x, call %d (%s), args %#x: the filter answers %#x (%v), the profile %#x", enosys, a, nr, info.SyscallNumbers[int(nr)], args, got, err, want)
			}
			// Another ABI (i386's int 0x80, x32's numbers, an unknown
			// architecture) is never allowed: the container test of int
			// 0x80 cannot run on a machine without that entry.
			if foreign := a != uint32(info.ID) || nr&(1<<30) != 0; foreign && uint32(got)&unix.SECCOMP_RET_ACTION_FULL == unix.SECCOMP_RET_ALLOW {
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
		// High halves: every value of the rules, and 0 to 63.
		var highs []uint64
		for _, r := range p.Syscalls {
			for _, c := range r.Args {
				highs = append(highs, uint64(uint32(c.Value)), uint64(uint32(c.ValueTwo)), c.Value>>32)
			}
		}
		for h := range uint64(64) {
			highs = append(highs, h)
		}
		slices.Sort(highs)
		highs = slices.Compact(highs)
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
				// Each rule's value, as the kernel may read it (its low
				// half), under every high half.
				for _, c := range r.Args {
					for _, v := range []uint64{c.Value, c.ValueTwo, c.Value + 1, c.Value - 1} {
						for _, h := range highs {
							var args [6]uint64
							args[c.Index] = h<<32 | uint64(uint32(v))
							check(uint32(info.ID), uint32(nr), args)
						}
					}
				}
			}
		}
		t.Logf("enosysAbove %v: %d instructions, %d calls answered as the profile says", enosys, len(f), checked)
	}
}

// profileAnswer is what profile p answers a call, as libseccomp reads a
// profile: ALLOW when a rule that names the call allows it and all its
// argument tests hold (each of all 64 bits); else the errno of a rule that
// names it; else the default, EPERM. A call of another architecture gets
// EPERM; with enosysAbove, one numbered above every call the profile names
// gets ENOSYS.
func profileAnswer(p *specs.LinuxSeccomp, info *arch.Info, enosysAbove bool, a, nr uint32, args [6]uint64) uint32 {
	deny := unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	if a != uint32(info.ID) {
		return deny
	}
	highest := 0
	names := func(r specs.LinuxSyscall) bool {
		named := false
		for _, n := range r.Names {
			if num, ok := info.SyscallNames[n]; ok {
				highest = max(highest, num)
				named = named || uint32(num) == nr
			}
		}
		return named
	}
	var errno []uint32
	allowed := false
	for _, r := range p.Syscalls {
		if !names(r) {
			continue
		}
		switch r.Action {
		case specs.ActAllow:
			holds := true
			for _, c := range r.Args {
				v := args[c.Index]
				switch c.Op {
				case specs.OpEqualTo:
					holds = holds && v == c.Value
				case specs.OpNotEqual:
					holds = holds && v != c.Value
				case specs.OpLessThan:
					holds = holds && v < c.Value
				case specs.OpLessEqual:
					holds = holds && v <= c.Value
				case specs.OpGreaterThan:
					holds = holds && v > c.Value
				case specs.OpGreaterEqual:
					holds = holds && v >= c.Value
				case specs.OpMaskedEqual:
					holds = holds && v&c.Value == c.ValueTwo
				default:
					panic("comparison " + string(c.Op))
				}
			}
			allowed = allowed || holds
		case specs.ActErrno:
			errno = append(errno, unix.SECCOMP_RET_ERRNO|uint32(*r.ErrnoRet))
		}
	}
	switch {
	case enosysAbove && int(nr) > highest:
		return unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
	case allowed:
		return unix.SECCOMP_RET_ALLOW
	case len(errno) > 0:
		return errno[0]
	}
	return deny
}

// TestArgTests: each comparison, alone in a rule, answers as the profile
// says at and around its value, with each high half, where the profile
// has few (LessEqual, GreaterThan, GreaterEqual, NotEqual are Docker's
// nowhere).
func TestArgTests(t *testing.T) {
	info, err := arch.GetInfo(runtime.GOARCH)
	if err != nil {
		t.Fatal(err)
	}
	eperm := uint(unix.EPERM)
	const v = 0x5_0000_0007
	for _, op := range []specs.LinuxSeccompOperator{specs.OpEqualTo, specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual, specs.OpGreaterThan, specs.OpGreaterEqual, specs.OpMaskedEqual} {
		arg := specs.LinuxSeccompArg{Index: 2, Value: v, Op: op}
		if op == specs.OpMaskedEqual {
			arg.ValueTwo = 0x4_0000_0003
		}
		p := &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, DefaultErrnoRet: &eperm, Syscalls: []specs.LinuxSyscall{
			{Names: []string{"socket"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{arg}},
			{Names: []string{"socket"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 2, Op: specs.OpEqualTo}, arg}},
		}}
		f, err := compileProfile(p, runtime.GOARCH, true)
		if err != nil {
			t.Fatal(err)
		}
		vm := newVM(t, f)
		nr := uint32(info.SyscallNames["socket"])
		for _, hi := range []uint64{0, 4, 5, 6, 0xffffffff} {
			for _, lo := range []uint64{0, 2, 3, 6, 7, 8, 0xffffffff} {
				for _, first := range []uint64{2, 3} {
					args := [6]uint64{first, 0, hi<<32 | lo}
					got, err := vm.Run(seccompData(uint32(info.ID), nr, args))
					if want := profileAnswer(p, info, true, uint32(info.ID), nr, args); err != nil || uint32(got) != want {
						t.Errorf("%s %#x: args %#x: the filter answers %#x (%v), the profile %#x", op, v, args, got, err, want)
					}
				}
			}
		}
	}
}

// TestSearchTreeShape: the search answers ALLOW for each number allowed,
// runs a number's leaf where it has one (over ALLOW), and answers the
// default for every other, with jumps past the 255 instructions a
// conditional jump reaches, and leaves of more than one instruction.
func TestSearchTreeShape(t *testing.T) {
	const deny = 5
	ret := func(v uint32) []bpf.Instruction { return []bpf.Instruction{bpf.RetConstant{Val: v}} }
	leafOf := func(nrs ...uint32) map[uint32][]bpf.Instruction {
		m := map[uint32][]bpf.Instruction{}
		for _, n := range nrs {
			m[n] = ret(1000 + n)
		}
		return m
	}
	long := leafOf(4, 10, 1198)
	// A leaf of three instructions: its value depends on the call's first
	// argument, which the probes leave 0.
	long[1199] = []bpf.Instruction{bpf.LoadAbsolute{Off: 16, Size: 4}, bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0, SkipFalse: 1}, bpf.RetConstant{Val: 2199}, bpf.RetConstant{Val: 9}}
	for _, tc := range []struct {
		allow  []uint32
		leaves map[uint32][]bpf.Instruction
	}{
		{[]uint32{0}, nil},
		{[]uint32{5}, leafOf(6)},
		{[]uint32{0, 1, 2, 7, 9, 10}, leafOf(3, 8, 10, 11)},
		{nil, leafOf(0, 1)},
		{[]uint32{^uint32(0)}, leafOf(^uint32(0) - 1)},
		{evens(600), leafOf(3, 1199)}, // 1,200 runs: long jumps
		{[]uint32{0, 1, 2, 3, 5, 9, 10}, leafOf(4, 11)},
		{evens(600), long}, // leaves among long jumps
	} {
		prog := append([]bpf.Instruction{bpf.LoadAbsolute{Off: 0, Size: 4}}, searchTree(tc.allow, tc.leaves, deny)...)
		vm := newVMOf(t, prog)
		probe := []uint32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 1198, 1199, 1200, ^uint32(0) - 2, ^uint32(0) - 1, ^uint32(0)}
		for _, n := range probe {
			got, err := vm.Run(seccompData(0, n, [6]uint64{}))
			want := deny
			switch {
			case n == 1199 && len(tc.leaves[n]) > 1:
				want = 2199
			case tc.leaves[n] != nil:
				want = int(1000 + n)
			case slices.Contains(tc.allow, n):
				want = unix.SECCOMP_RET_ALLOW
			}
			if err != nil || got != want {
				t.Errorf("search over %d allowed and %d leaves, call %d: %#x (%v), want %#x", len(tc.allow), len(tc.leaves), n, got, err, want)
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
