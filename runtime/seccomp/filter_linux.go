package seccomp

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"runtime"
	"slices"
	"sync"

	"github.com/elastic/go-seccomp-bpf/arch"
	"github.com/guntainer/playground/runtime/seccomp/filter"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Filter is a compiled seccomp BPF program.
type Filter = filter.Program

var compiled struct {
	once sync.Once
	f    Filter
	err  error
}

// Compiled returns Compile's filter, compiled on first use and shared by
// every later caller (it is never modified).
func Compiled() (Filter, error) {
	compiled.once.Do(func() { compiled.f, compiled.err = Compile() })
	return compiled.f, compiled.err
}

// Compile compiles Profile for this machine's architecture to BPF.
//
// Its layout: a call of any other architecture (i386's int 0x80) gets
// EPERM; a call numbered above the highest the profile names (x32's, whose
// numbers carry bit 30, and every call newer than the table) gets ENOSYS;
// then a binary search over the number (searchTree) allows the calls the
// profile allows whatever their arguments, refuses with EPERM those it
// has no rule for, and runs, for each other call, a leaf of its own: its
// rules with arguments to test (allow-if), then its errno rule's answer
// or the default, EPERM (ruleLeaf; ioctlLeaf for ioctl).
func Compile() (Filter, error) {
	p, err := Profile(runtime.GOARCH)
	if err != nil {
		return nil, err
	}
	return CompileProfile(p, runtime.GOARCH, true)
}

// CompileProfile compiles any OCI profile p whose default action is
// EPERM (docker's default and those made from it) for goarch, with
// Compile's layout: a call of another architecture gets EPERM; with
// enosysAbove, a call numbered above the highest the profile names gets
// ENOSYS (without it, EPERM, as runc's libseccomp answers a call the
// profile does not name); then the search for the calls allowed whatever
// their arguments, and allow-if and errno rules. Names the
// architecture lacks are skipped. The deploy files use it to run a container under the
// profile they ship for the server's own pod.
func CompileProfile(p *specs.LinuxSeccomp, goarch string, enosysAbove bool) (Filter, error) {
	return compileProfile(p, goarch, enosysAbove)
}

// compileProfile is CompileProfile. Every call with rules gets a leaf of
// the search of its own (ruleLeaf): its allow-if rules in the profile's
// order, each a block of tests whose jumps stay inside the block, then
// its errno or the default. go-seccomp-bpf's assembler, which laid out
// these rules before, lengthened its jumps past 255 instructions by
// inserting instructions after jumps it had already resolved: the filter
// of 491 instructions it made allowed socket(AF_VSOCK | 16<<32), and any
// refused family with 16 or 56 in the high half (TestEscapes' socket
// families, TestFilterAnswersAsTheProfile). Its architecture tables
// (package arch) are still what names the calls.
func compileProfile(p *specs.LinuxSeccomp, goarch string, enosysAbove bool) (Filter, error) {
	info, err := arch.GetInfo(goarch)
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	const auditArchLE = 0x40000000 // __AUDIT_ARCH_LE, in an audit architecture
	if uint32(info.ID)&auditArchLE == 0 {
		return nil, fmt.Errorf("seccomp: %s is not little-endian: the rules' argument offsets are", goarch)
	}
	defaultErrno := uint(unix.EPERM)
	if p.DefaultAction != specs.ActErrno || p.DefaultErrnoRet != nil && *p.DefaultErrnoRet != defaultErrno {
		return nil, fmt.Errorf("seccomp: default action %s: only an errno of EPERM is supported", p.DefaultAction)
	}
	deny := unix.SECCOMP_RET_ERRNO | uint32(defaultErrno)
	var allow []uint32                                // allowed whatever their arguments
	allowIf := map[uint32][][]specs.LinuxSeccompArg{} // each call's allow-if rules, in order
	errnoOf := map[uint32]uint32{}                    // each call's first errno rule's answer
	highest := 0
	// The ioctl rules Profile makes (ioctlRules) say "the request's low
	// 32 bits are none of deniedIoctls" in the only terms a profile has:
	// 190 instructions of single-bit tests, run through by every ioctl.
	// Where the profile holds exactly those rules, ioctlLeaf answers ioctl
	// in five; any other profile's rules are compiled as they are.
	ioctlNr, fastIoctl := info.SyscallNames["ioctl"]
	fastIoctl = fastIoctl && hasIoctlRules(p.Syscalls, ioctlRules(deniedIoctls))
	for _, r := range p.Syscalls {
		// A name this architecture lacks is skipped, as runc skips it.
		names := slices.DeleteFunc(slices.Clone(r.Names), func(n string) bool { _, ok := info.SyscallNames[n]; return !ok })
		for _, n := range names {
			nr := uint32(info.SyscallNames[n])
			highest = max(highest, int(nr))
			switch {
			case fastIoctl && n == "ioctl":
				// ioctlLeaf answers it.
			case r.Action == specs.ActAllow && len(r.Args) == 0:
				allow = append(allow, nr)
			case r.Action == specs.ActAllow:
				if err := checkArgs(r.Args); err != nil {
					return nil, fmt.Errorf("seccomp: %v: %w", r.Names, err)
				}
				allowIf[nr] = append(allowIf[nr], r.Args)
			case r.Action == specs.ActErrno && r.ErrnoRet != nil && len(r.Args) == 0:
				if _, ok := errnoOf[nr]; !ok {
					errnoOf[nr] = unix.SECCOMP_RET_ERRNO | uint32(*r.ErrnoRet)&unix.SECCOMP_RET_DATA
				}
			default:
				return nil, fmt.Errorf("seccomp: %v: action %s with %d argument tests not supported", r.Names, r.Action, len(r.Args))
			}
		}
	}
	leaves := map[uint32][]bpf.Instruction{}
	for nr, rules := range allowIf {
		if slices.Contains(allow, nr) {
			continue // allowed whatever its arguments
		}
		leaf, err := ruleLeaf(rules, cmp.Or(errnoOf[nr], deny))
		if err != nil {
			return nil, fmt.Errorf("seccomp: call %d: %w", nr, err)
		}
		leaves[nr] = leaf
	}
	for nr, e := range errnoOf {
		if _, ok := leaves[nr]; !ok && !slices.Contains(allow, nr) && e != deny {
			leaves[nr] = []bpf.Instruction{bpf.RetConstant{Val: e}}
		}
	}
	if fastIoctl {
		leaves[uint32(ioctlNr)] = ioctlLeaf(deniedIoctls, deny)
	}
	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: 4, Size: 4}, // seccomp_data.arch
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(info.ID), SkipTrue: 1},
		bpf.RetConstant{Val: deny},
		bpf.LoadAbsolute{Off: 0, Size: 4}, // seccomp_data.nr
	}
	if enosysAbove {
		prog = append(prog,
			bpf.JumpIf{Cond: bpf.JumpGreaterThan, Val: uint32(highest), SkipFalse: 1},
			bpf.RetConstant{Val: unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)},
		)
	}
	prog = append(prog, searchTree(allow, leaves, deny)...)
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	if len(raw) > unix.BPF_MAXINSNS {
		return nil, fmt.Errorf("seccomp: filter of %d instructions is over the kernel's %d", len(raw), unix.BPF_MAXINSNS)
	}
	f := make(Filter, len(raw))
	for i, r := range raw {
		f[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	return f, nil
}

// checkArgs refuses what ruleLeaf cannot test: an argument past the sixth,
// a comparison it does not know, a masked compare that can never match.
func checkArgs(args []specs.LinuxSeccompArg) error {
	for _, a := range args {
		if a.Index > 5 {
			return fmt.Errorf("argument %d: a call has six", a.Index)
		}
		switch a.Op {
		case specs.OpEqualTo, specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual, specs.OpGreaterThan, specs.OpGreaterEqual:
		case specs.OpMaskedEqual:
			if a.ValueTwo&^a.Value != 0 {
				return fmt.Errorf("masked compare %#x with %#x can never match", a.Value, a.ValueTwo)
			}
		default:
			return fmt.Errorf("comparison %s not supported", a.Op)
		}
	}
	return nil
}

// ruleLeaf is a call's answer to its arguments: ALLOW when all the tests
// of one of rules hold (each rule a block: a failed test jumps to the
// next block, just past the block's ALLOW), otherwise other. Each test
// compares the 64-bit argument as the profile means it, in its two 32-bit
// halves, the high one first (at offset 20 + 8i of seccomp_data, the low
// one at 16 + 8i, on a little-endian machine). Every jump stays inside
// its test or its block.
func ruleLeaf(rules [][]specs.LinuxSeccompArg, other uint32) ([]bpf.Instruction, error) {
	var leaf []bpf.Instruction
	for _, rule := range rules {
		var block []bpf.Instruction
		var fails []int // the jumps of block whose true or false is "fail"
		for _, a := range rule {
			t := argTest(a)
			for i, in := range t {
				if j, ok := in.(bpf.JumpIf); ok && (j.SkipTrue == skipFail || j.SkipFalse == skipFail) {
					fails = append(fails, len(block)+i)
				}
			}
			block = append(block, t...)
		}
		block = append(block, bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW})
		for _, i := range fails {
			j := block[i].(bpf.JumpIf)
			skip := len(block) - i - 1 // past the block's ALLOW
			if skip > math.MaxUint8 {
				return nil, fmt.Errorf("a rule of %d tests is too long for a conditional jump", len(rule))
			}
			if j.SkipTrue == skipFail {
				j.SkipTrue = uint8(skip)
			}
			if j.SkipFalse == skipFail {
				j.SkipFalse = uint8(skip)
			}
			block[i] = j
		}
		leaf = append(leaf, block...)
	}
	return append(leaf, bpf.RetConstant{Val: other}), nil
}

// skipFail marks a jump of argTest's to the test's failure, which ruleLeaf
// makes exact: no test is as long.
const skipFail = math.MaxUint8

// argTest tests one comparison of a 64-bit argument: it falls through
// when it holds, and jumps to skipFail when it does not.
func argTest(a specs.LinuxSeccompArg) []bpf.Instruction {
	hi := bpf.LoadAbsolute{Off: 20 + 8*uint32(a.Index), Size: 4}
	lo := bpf.LoadAbsolute{Off: 16 + 8*uint32(a.Index), Size: 4}
	vh, vl := uint32(a.Value>>32), uint32(a.Value)
	type J = bpf.JumpIf
	switch a.Op {
	case specs.OpEqualTo:
		return []bpf.Instruction{hi, J{Cond: bpf.JumpEqual, Val: vh, SkipFalse: skipFail}, lo, J{Cond: bpf.JumpEqual, Val: vl, SkipFalse: skipFail}}
	case specs.OpNotEqual: // holds when either half differs
		return []bpf.Instruction{hi, J{Cond: bpf.JumpEqual, Val: vh, SkipFalse: 2}, lo, J{Cond: bpf.JumpEqual, Val: vl, SkipTrue: skipFail}}
	case specs.OpLessThan: // high below: holds; above: fails; equal: the low half decides
		return []bpf.Instruction{hi, J{Cond: bpf.JumpGreaterThan, Val: vh, SkipTrue: skipFail}, J{Cond: bpf.JumpEqual, Val: vh, SkipFalse: 2}, lo, J{Cond: bpf.JumpGreaterOrEqual, Val: vl, SkipTrue: skipFail}}
	case specs.OpLessEqual:
		return []bpf.Instruction{hi, J{Cond: bpf.JumpGreaterThan, Val: vh, SkipTrue: skipFail}, J{Cond: bpf.JumpEqual, Val: vh, SkipFalse: 2}, lo, J{Cond: bpf.JumpGreaterThan, Val: vl, SkipTrue: skipFail}}
	case specs.OpGreaterThan:
		return []bpf.Instruction{hi, J{Cond: bpf.JumpGreaterThan, Val: vh, SkipTrue: 3}, J{Cond: bpf.JumpEqual, Val: vh, SkipFalse: skipFail}, lo, J{Cond: bpf.JumpGreaterThan, Val: vl, SkipFalse: skipFail}}
	case specs.OpGreaterEqual:
		return []bpf.Instruction{hi, J{Cond: bpf.JumpGreaterThan, Val: vh, SkipTrue: 3}, J{Cond: bpf.JumpEqual, Val: vh, SkipFalse: skipFail}, lo, J{Cond: bpf.JumpGreaterOrEqual, Val: vl, SkipFalse: skipFail}}
	case specs.OpMaskedEqual: // (arg & Value) == ValueTwo
		mh, ml := uint32(a.ValueTwo>>32), uint32(a.ValueTwo)
		return []bpf.Instruction{
			hi, bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: vh}, J{Cond: bpf.JumpEqual, Val: mh, SkipFalse: skipFail},
			lo, bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: vl}, J{Cond: bpf.JumpEqual, Val: ml, SkipFalse: skipFail},
		}
	}
	panic("seccomp: argTest of an unchecked comparison " + string(a.Op)) // checkArgs refused it
}

// searchTree is a binary search over the system call number, which the
// accumulator holds: it returns ALLOW for each number of allow, runs the
// instructions of leaves for a number there (a program of its own, which
// ends in returns; a leaf wins over allow), and returns deny for every
// other. A straight list of comparisons, as go-seccomp-bpf makes, took a
// call through up to all of its hundreds of tests, and the kernel runs
// the filter once for each system call number when it installs it
// (seccomp's action cache), with interrupts off: a list of 648
// instructions cost about 0.5 ms of CPU of each container start. The
// search is over runs of consecutive numbers with the same answer, some
// dozens of them.
func searchTree(allow []uint32, leaves map[uint32][]bpf.Instruction, deny uint32) []bpf.Instruction {
	const (
		toDeny = iota
		toAllow
		toLeaf // and up: toLeaf+i is the leaf of leafNrs[i]
	)
	answer := map[uint32]int{}
	for _, n := range allow {
		answer[n] = toAllow
	}
	leafNrs := slices.Sorted(maps.Keys(leaves))
	for i, n := range leafNrs {
		answer[n] = toLeaf + i
	}
	nrs := slices.Sorted(maps.Keys(answer))
	// runs[i] covers the numbers from its start to the next one's.
	type run struct {
		start  uint32
		answer int
	}
	runs := []run{{0, toDeny}}
	for i, n := range nrs {
		if a := answer[n]; a != runs[len(runs)-1].answer {
			if runs[len(runs)-1].start == n {
				runs[len(runs)-1].answer = a // only at 0
			} else {
				runs = append(runs, run{n, a})
			}
		}
		if (i == len(nrs)-1 || nrs[i+1] != n+1) && n != math.MaxUint32 && answer[n] != toDeny {
			runs = append(runs, run{n + 1, toDeny})
		}
	}
	var search func(rs []run) []bpf.Instruction
	search = func(rs []run) []bpf.Instruction {
		if len(rs) == 1 {
			switch rs[0].answer {
			case toAllow:
				return []bpf.Instruction{bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW}}
			case toDeny:
				return []bpf.Instruction{bpf.RetConstant{Val: deny}}
			}
			return slices.Clone(leaves[leafNrs[rs[0].answer-toLeaf]])
		}
		mid := len(rs) / 2
		below, above := search(rs[:mid]), search(rs[mid:])
		var t []bpf.Instruction
		if len(below) <= math.MaxUint8 {
			t = append(t, bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: rs[mid].start, SkipTrue: uint8(len(below))})
		} else { // a conditional jump reaches 255 instructions at most
			t = append(t, bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: rs[mid].start, SkipFalse: 1}, bpf.Jump{Skip: uint32(len(below))})
		}
		return append(append(t, below...), above...)
	}
	return search(runs)
}

// ioctlLeaf answers an ioctl as ioctlRules(denied) do, in a few
// instructions: deny when the low 32 bits of its request (the second
// argument, whose low word is at offset 24 of seccomp_data on a
// little-endian machine, as amd64 and arm64 are) are one of denied,
// ALLOW otherwise. The kernel compares the request as an unsigned int,
// so the high half counts for nothing, here as there.
func ioctlLeaf(denied []uint32, deny uint32) []bpf.Instruction {
	leaf := []bpf.Instruction{bpf.LoadAbsolute{Off: 24, Size: 4}}
	for i, d := range denied {
		leaf = append(leaf, bpf.JumpIf{Cond: bpf.JumpEqual, Val: d, SkipTrue: uint8(len(denied) - i)})
	}
	return append(leaf, bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW}, bpf.RetConstant{Val: deny})
}

// hasIoctlRules reports whether the rules of rules that name ioctl are
// exactly want, in order: no other rule (an allow without arguments, an
// errno) says anything of ioctl.
func hasIoctlRules(rules, want []specs.LinuxSyscall) bool {
	var got []specs.LinuxSyscall
	for _, r := range rules {
		if slices.Contains(r.Names, "ioctl") {
			got = append(got, r)
		}
	}
	return slices.EqualFunc(got, want, func(a, b specs.LinuxSyscall) bool {
		return slices.Equal(a.Names, b.Names) && a.Action == b.Action && slices.Equal(a.Args, b.Args)
	})
}
