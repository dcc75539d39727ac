package seccomp

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"runtime"
	"slices"
	"sync"

	elastic "github.com/elastic/go-seccomp-bpf"
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
// has no rule for, and sends the rest on to the rules with arguments to
// test (allow-if) and the errno rules, in that order; then the default,
// EPERM.
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
	return compileProfile(p, goarch, enosysAbove, true)
}

// compileProfile is CompileProfile; without tree, the calls allowed
// whatever their arguments are go-seccomp-bpf's straight list of
// comparisons, first of the rules, as before searchTree: the tests'
// reference for what the filter answers.
func compileProfile(p *specs.LinuxSeccomp, goarch string, enosysAbove, tree bool) (Filter, error) {
	info, err := arch.GetInfo(goarch)
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	// go-seccomp-bpf takes no errno for its default: EPERM it is.
	defaultErrno := uint(unix.EPERM)
	if p.DefaultAction != specs.ActErrno || p.DefaultErrnoRet != nil && *p.DefaultErrnoRet != defaultErrno {
		return nil, fmt.Errorf("seccomp: default action %s: only an errno of EPERM is supported", p.DefaultAction)
	}
	policy := elastic.Policy{DefaultAction: elastic.ActionErrno}
	plain := elastic.SyscallGroup{Action: elastic.ActionAllow} // allowed whatever their arguments
	var ruled []uint32                                         // with a rule of the body: allow-if, or another errno
	cond := elastic.SyscallGroup{Action: elastic.ActionAllow}
	var errnos []elastic.SyscallGroup
	highest := 0
	for _, r := range p.Syscalls {
		// A name this architecture lacks is skipped, as runc skips it.
		r.Names = slices.DeleteFunc(slices.Clone(r.Names), func(n string) bool { _, ok := info.SyscallNames[n]; return !ok })
		if len(r.Names) == 0 {
			continue
		}
		for _, n := range r.Names {
			highest = max(highest, info.SyscallNames[n])
		}
		switch {
		case r.Action == specs.ActAllow && len(r.Args) == 0:
			plain.Names = append(plain.Names, r.Names...)
		case r.Action == specs.ActAllow:
			cs, err := conditions(r.Args)
			if err != nil {
				return nil, fmt.Errorf("seccomp: %v: %w", r.Names, err)
			}
			for _, n := range r.Names {
				cond.NamesWithCondtions = append(cond.NamesWithCondtions, elastic.NameWithConditions{Name: n, Conditions: cs})
				ruled = append(ruled, uint32(info.SyscallNames[n]))
			}
		case r.Action == specs.ActErrno && r.ErrnoRet != nil && *r.ErrnoRet == defaultErrno:
			// The default's answer: no need to test for them.
		case r.Action == specs.ActErrno && r.ErrnoRet != nil:
			errnos = append(errnos, elastic.SyscallGroup{Names: r.Names, Action: elastic.ActionErrno | elastic.Action(*r.ErrnoRet)})
			for _, n := range r.Names {
				ruled = append(ruled, uint32(info.SyscallNames[n]))
			}
		default:
			return nil, fmt.Errorf("seccomp: %v: action %s not supported", r.Names, r.Action)
		}
	}
	policy.Syscalls = append([]elastic.SyscallGroup{cond}, errnos...)
	if !tree {
		policy.Syscalls = append([]elastic.SyscallGroup{plain}, policy.Syscalls...)
	}
	insts, err := policy.Assemble()
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	body, err := stripPrelude(insts)
	if err != nil {
		return nil, err
	}
	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: 4, Size: 4}, // seccomp_data.arch
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(info.ID), SkipTrue: 1},
		bpf.RetConstant{Val: unix.SECCOMP_RET_ERRNO | uint32(defaultErrno)},
		bpf.LoadAbsolute{Off: 0, Size: 4}, // seccomp_data.nr
	}
	if enosysAbove {
		prog = append(prog,
			bpf.JumpIf{Cond: bpf.JumpGreaterThan, Val: uint32(highest), SkipFalse: 1},
			bpf.RetConstant{Val: unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)},
		)
	}
	if tree {
		allow := make([]uint32, len(plain.Names))
		for i, n := range plain.Names {
			allow[i] = uint32(info.SyscallNames[n])
		}
		prog = append(prog, searchTree(allow, ruled, unix.SECCOMP_RET_ERRNO|uint32(defaultErrno))...)
	}
	prog = append(prog, body...)
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

// searchTree is a binary search over the system call number, which the
// accumulator holds: it returns ALLOW for each number of allow, goes on
// past its end for each of ruled (not also in allow), and returns deny
// for every other. A straight list of comparisons, as go-seccomp-bpf
// makes, took a call through up to all of its hundreds of tests, and the
// kernel runs the filter once for each system call number when it
// installs it (seccomp's action cache), with interrupts off: a list of 648
// instructions cost about 0.5 ms of CPU of each container start. The
// search is over runs of consecutive numbers with the same answer, some
// dozens of them.
func searchTree(allow, ruled []uint32, deny uint32) []bpf.Instruction {
	const (
		toDeny = iota
		toAllow
		toRules
	)
	answer := map[uint32]int{}
	for _, n := range ruled {
		answer[n] = toRules
	}
	for _, n := range allow {
		answer[n] = toAllow
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
	const past = math.MaxUint32 // a jump past the tree, made exact below
	var search func(rs []run) []bpf.Instruction
	search = func(rs []run) []bpf.Instruction {
		if len(rs) == 1 {
			switch rs[0].answer {
			case toAllow:
				return []bpf.Instruction{bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW}}
			case toDeny:
				return []bpf.Instruction{bpf.RetConstant{Val: deny}}
			}
			return []bpf.Instruction{bpf.Jump{Skip: past}}
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
	t := search(runs)
	for i, in := range t {
		if j, ok := in.(bpf.Jump); ok && j.Skip == past {
			t[i] = bpf.Jump{Skip: uint32(len(t) - i - 1)}
		}
	}
	return t
}

// stripPrelude removes what elastic's Assemble puts before the rules (its
// architecture check and its x32 check, which Compile replaces), checking
// that it is exactly that: any other shape would make the jumps wrong.
func stripPrelude(insts []bpf.Instruction) ([]bpf.Instruction, error) {
	bad := errors.New("seccomp: unexpected filter prelude from go-seccomp-bpf")
	if len(insts) < 4 || insts[0] != (bpf.LoadAbsolute{Off: 4, Size: 4}) {
		return nil, bad
	}
	i := 1
	switch j := insts[1].(type) {
	case bpf.JumpIf:
		if j.Cond == bpf.JumpEqual && j.SkipTrue == 1 {
			if _, ok := insts[2].(bpf.Jump); !ok {
				return nil, bad
			}
			i = 3
		} else if j.Cond == bpf.JumpNotEqual {
			i = 2
		} else {
			return nil, bad
		}
	default:
		return nil, bad
	}
	if insts[i] != (bpf.LoadAbsolute{Off: 0, Size: 4}) {
		return nil, bad
	}
	i++
	if j, ok := insts[i].(bpf.JumpIf); ok && j.Cond == bpf.JumpGreaterOrEqual && j.Val == uint32(arch.X32.SeccompMask) {
		if _, ok := insts[i+1].(bpf.RetConstant); !ok {
			return nil, bad
		}
		i += 2
	}
	return insts[i:], nil
}

// conditions translates a rule's argument comparisons (ANDed).
func conditions(args []specs.LinuxSeccompArg) (elastic.ArgumentConditions, error) {
	var cs elastic.ArgumentConditions
	for _, a := range args {
		c := elastic.Condition{Argument: uint32(a.Index), Value: a.Value}
		switch a.Op {
		case specs.OpEqualTo:
			c.Operation = elastic.Equal
		case specs.OpNotEqual:
			c.Operation = elastic.NotEqual
		case specs.OpLessThan:
			c.Operation = elastic.LessThan
		case specs.OpLessEqual:
			c.Operation = elastic.LessOrEqual
		case specs.OpGreaterThan:
			c.Operation = elastic.GreaterThan
		case specs.OpGreaterEqual:
			c.Operation = elastic.GreaterOrEqual
		case specs.OpMaskedEqual:
			// (arg & Value) == ValueTwo, one bit at a time.
			mask, want := a.Value, a.ValueTwo
			if want&^mask != 0 {
				return nil, fmt.Errorf("masked compare %#x with %#x can never match", mask, want)
			}
			if want == 0 {
				cs = append(cs, elastic.Condition{Argument: uint32(a.Index), Operation: elastic.BitsNotSet, Value: mask})
				continue
			}
			for b := range 64 {
				bit := uint64(1) << b
				if mask&bit == 0 {
					continue
				}
				op := elastic.BitsNotSet
				if want&bit != 0 {
					op = elastic.BitsSet
				}
				cs = append(cs, elastic.Condition{Argument: uint32(a.Index), Operation: op, Value: bit})
			}
			continue
		default:
			return nil, fmt.Errorf("comparison %s not supported", a.Op)
		}
		cs = append(cs, c)
	}
	return cs, nil
}
