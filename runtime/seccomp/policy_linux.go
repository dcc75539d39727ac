package seccomp

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/elastic/go-seccomp-bpf/arch"
	moby "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Denied are the system calls refused (EPERM) even where docker's default
// profile allows them, with why. Some docker allows only with a capability
// the playground drops; they are listed all the same, so that the policy
// says so itself and does not depend on which capabilities are kept.
var Denied = []struct{ Names, Why string }{
	{"keyctl add_key request_key", "the kernel keyring is not namespaced: a key of the server or of another session"},
	{"bpf", "eBPF programs: kernel attack surface, and a way to read kernel memory"},
	{"perf_event_open", "performance counters: side channels on the host, kernel attack surface"},
	{"userfaultfd", "a way to stall the kernel mid-copy, the tool of many kernel exploits"},
	{"io_uring_setup io_uring_enter io_uring_register", "io_uring: a second system call interface that seccomp cannot see into"},
	{"kexec_load kexec_file_load reboot", "replace or stop the host's kernel"},
	{"init_module finit_module delete_module", "kernel modules"},
	{"mount umount2 pivot_root chroot move_mount open_tree open_tree_attr fsopen fsmount fsconfig fspick mount_setattr",
		"the mount table: would undo the masks and read-only mounts the runtime set up"},
	{"unshare setns", "new or other namespaces: a user namespace brings back every capability inside it"},
	{"pidfd_getfd process_vm_readv process_vm_writev process_madvise ptrace kcmp", "another process's memory or descriptors"},
	{"modify_ldt", "16-bit segments, only for old emulators, a history of kernel bugs"},
	{"acct quotactl quotactl_fd lookup_dcookie fanotify_init syslog vhangup iopl ioperm", "host-wide state or hardware"},
	{"settimeofday clock_settime clock_adjtime adjtimex", "the host's clock"},
}

// Refused ioctl requests, compared on the low 32 bits of the request, as the
// kernel does (its cmd is an unsigned int).
var deniedIoctls = []uint32{
	unix.TIOCSTI,   // push input into a terminal: the server's own, if the fd were one
	unix.TIOCLINUX, // the virtual console's commands, also an input pusher
}

// scmpArch is the profile's name of a Go architecture.
var scmpArch = map[string]specs.Arch{"amd64": specs.ArchX86_64, "arm64": specs.ArchAARCH64}

// Profile returns the policy as an OCI seccomp profile for goarch ("amd64"
// or "arm64"): docker's default profile taken as a playground, which keeps
// none of the capabilities that open a group of it (CAP_SYS_ADMIN, ...),
// less Denied, with ioctl refused for TIOCSTI and TIOCLINUX, and only the
// native architecture.
func Profile(goarch string) (*specs.LinuxSeccomp, error) {
	info, err := arch.GetInfo(goarch)
	sa, ok := scmpArch[goarch]
	if err != nil || !ok {
		return nil, fmt.Errorf("seccomp: no policy for %s", goarch)
	}
	denied := map[string]bool{}
	for _, d := range Denied {
		for _, n := range strings.Fields(d.Names) {
			denied[n] = true
		}
	}
	known := func(n string) bool { _, ok := info.SyscallNames[n]; return ok }

	eperm, enosys := uint(unix.EPERM), uint(unix.ENOSYS)
	p := &specs.LinuxSeccomp{
		DefaultAction:   specs.ActErrno,
		DefaultErrnoRet: &eperm,
		Architectures:   []specs.Arch{sa},
	}
	for _, s := range moby.DefaultProfile().Syscalls {
		if !applies(s, goarch) {
			continue
		}
		rule := s.LinuxSyscall
		rule.Names = slices.DeleteFunc(slices.Clone(rule.Names), func(n string) bool {
			return denied[n] || !known(n) || n == "ioctl" && len(rule.Args) == 0
		})
		if len(rule.Names) == 0 {
			continue
		}
		if rule.Action == specs.ActErrno && rule.ErrnoRet == nil {
			rule.ErrnoRet = &eperm
		}
		p.Syscalls = append(p.Syscalls, rule)
	}
	// clone3 passes its flags in memory, where a filter cannot look:
	// ENOSYS makes libc fall back to clone, whose flags it can.
	if !slices.ContainsFunc(p.Syscalls, func(s specs.LinuxSyscall) bool { return slices.Contains(s.Names, "clone3") }) {
		p.Syscalls = append(p.Syscalls, specs.LinuxSyscall{Names: []string{"clone3"}, Action: specs.ActErrno, ErrnoRet: &enosys})
	}
	p.Syscalls = append(p.Syscalls, ioctlRules(deniedIoctls)...)
	var deny []string
	for _, d := range Denied {
		for _, n := range strings.Fields(d.Names) {
			if known(n) {
				deny = append(deny, n)
			}
		}
	}
	p.Syscalls = append(p.Syscalls, specs.LinuxSyscall{Names: deny, Action: specs.ActErrno, ErrnoRet: &eperm})
	return p, nil
}

// applies evaluates a rule's conditions of docker's profile for a playground
// on goarch: no capability that opens a group is kept, and the kernel is
// newer than every minimum the profile names (the runtime needs 5.12).
func applies(s *moby.Syscall, goarch string) bool {
	if in := s.Includes; in != nil {
		if len(in.Caps) > 0 {
			return false
		}
		if len(in.Arches) > 0 && !slices.Contains(in.Arches, goarch) {
			return false
		}
	}
	if ex := s.Excludes; ex != nil && len(ex.Arches) > 0 && slices.Contains(ex.Arches, goarch) {
		return false
	}
	return true
}

// ioctlRules allows ioctl for every request whose low 32 bits are none of
// deny. A profile can only say "allow if" (OR of rules, AND of the
// comparisons in one), and its comparisons are of all 64 bits, where the
// kernel looks at 32: a rule "request != TIOCSTI" would let TIOCSTI|1<<32
// through. So the allowed set is spelled out with single-bit tests, which
// ignore the high half: a request is none of deny when it differs from all
// of them in a bit where they agree, or, where they do not agree, its bits
// there form a pattern none of them has.
func ioctlRules(deny []uint32) []specs.LinuxSyscall {
	var agree, differ []uint32 // single bits
	for b := range 32 {
		bit := uint32(1) << b
		n := 0
		for _, d := range deny {
			if d&bit != 0 {
				n++
			}
		}
		if n == 0 || n == len(deny) {
			agree = append(agree, bit)
		} else {
			differ = append(differ, bit)
		}
	}
	rule := func(mask, want uint32) specs.LinuxSyscall {
		var args []specs.LinuxSeccompArg
		for _, bit := range append(slices.Clone(agree), differ...) {
			if mask&bit != 0 {
				args = append(args, specs.LinuxSeccompArg{Index: 1, Value: uint64(bit), ValueTwo: uint64(want & bit), Op: specs.OpMaskedEqual})
			}
		}
		return specs.LinuxSyscall{Names: []string{"ioctl"}, Action: specs.ActAllow, Args: args}
	}
	var rules []specs.LinuxSyscall
	for _, bit := range agree {
		rules = append(rules, rule(bit, ^deny[0]&bit))
	}
	var mask uint32
	for _, bit := range differ {
		mask |= bit
	}
	// Every pattern of the differing bits that no denied request has.
	for pat := range 1 << len(differ) {
		var v uint32
		for i, bit := range differ {
			if pat&(1<<i) != 0 {
				v |= bit
			}
		}
		if !slices.ContainsFunc(deny, func(d uint32) bool { return d&mask == v }) {
			rules = append(rules, rule(mask, v))
		}
	}
	return rules
}

// ProfileJSON is Profile for amd64 and arm64 together, as JSON: the file a
// container runtime or Kubernetes loads (profile.json in this package is
// this output). A runtime skips a name its architecture does not have.
func ProfileJSON() ([]byte, error) {
	var all *specs.LinuxSeccomp
	for _, goarch := range []string{"amd64", "arm64"} {
		p, err := Profile(goarch)
		if err != nil {
			return nil, err
		}
		if all == nil {
			all = p
			continue
		}
		all.Architectures = append(all.Architectures, p.Architectures...)
		for _, r := range p.Syscalls {
			i := slices.IndexFunc(all.Syscalls, func(a specs.LinuxSyscall) bool { return sameRule(a, r) })
			if i < 0 {
				all.Syscalls = append(all.Syscalls, r)
				continue
			}
			for _, n := range r.Names {
				if !slices.Contains(all.Syscalls[i].Names, n) {
					all.Syscalls[i].Names = append(all.Syscalls[i].Names, n)
				}
			}
		}
	}
	for i := range all.Syscalls {
		slices.Sort(all.Syscalls[i].Names)
	}
	b, err := json.MarshalIndent(all, "", "\t")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// sameRule reports whether two rules differ in their names only.
func sameRule(a, b specs.LinuxSyscall) bool {
	a.Names, b.Names = nil, nil
	ja, _ := json.Marshal(a) // plain data: never fails
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}
