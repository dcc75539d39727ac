package deploy

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/elastic/go-seccomp-bpf/arch"
	moby "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// podArches are the architectures of the shipped profile.
var podArches = []struct {
	goarch string
	scmp   specs.Arch
}{{"amd64", specs.ArchX86_64}, {"arm64", specs.ArchAARCH64}}

// PodProfile is the seccomp profile of the server's pod, for amd64 and
// arm64 together: docker's default profile (moby/profiles/seccomp) as it
// applies to a container with no capabilities on either, plus PodNeeds.
// A runtime skips a name its architecture lacks. The containers the
// server starts get the playground's own, stricter filter on top
// (runtime/seccomp): seccomp filters stack, and the stricter wins.
func PodProfile() (*specs.LinuxSeccomp, error) {
	needed := map[string]bool{}
	var neededNames []string
	for _, n := range PodNeeds {
		for _, name := range strings.Fields(n.Names) {
			needed[name] = true
			neededNames = append(neededNames, name)
		}
	}
	known := map[string]bool{}
	for _, a := range podArches {
		info, err := arch.GetInfo(a.goarch)
		if err != nil {
			return nil, fmt.Errorf("seccomp: %w", err)
		}
		for n := range info.SyscallNames {
			known[n] = true
		}
	}
	def := moby.DefaultProfile()
	p := &specs.LinuxSeccomp{
		DefaultAction:   def.DefaultAction,
		DefaultErrnoRet: def.DefaultErrnoRet,
	}
	for _, a := range podArches {
		p.Architectures = append(p.Architectures, a.scmp)
	}
	allowed := map[string]bool{} // unconditionally, by an earlier rule
	for _, s := range def.Syscalls {
		if !slices.ContainsFunc(podArches, func(a struct {
			goarch string
			scmp   specs.Arch
		}) bool {
			return appliesNoCaps(s, a.goarch)
		}) {
			continue
		}
		rule := s.LinuxSyscall
		plain := rule.Action == specs.ActAllow && len(rule.Args) == 0
		// A needed call is allowed outright below: drop docker's
		// narrower rules for it (clone without namespace flags, clone3's
		// ENOSYS), so that no earlier rule decides it first. A name an
		// earlier rule allows already, or no architecture has, goes too.
		rule.Names = slices.DeleteFunc(slices.Clone(rule.Names), func(n string) bool {
			return needed[n] || !known[n] || plain && allowed[n]
		})
		if len(rule.Names) == 0 {
			continue
		}
		slices.Sort(rule.Names)
		if plain {
			for _, n := range rule.Names {
				allowed[n] = true
			}
		}
		p.Syscalls = append(p.Syscalls, rule)
	}
	neededNames = slices.DeleteFunc(neededNames, func(n string) bool { return allowed[n] })
	slices.Sort(neededNames)
	p.Syscalls = append(p.Syscalls, specs.LinuxSyscall{Names: neededNames, Action: specs.ActAllow})
	return p, nil
}

// appliesNoCaps evaluates a rule's conditions of docker's profile for a
// container on goarch that holds no capability.
func appliesNoCaps(s *moby.Syscall, goarch string) bool {
	if in := s.Includes; in != nil {
		if len(in.Caps) > 0 {
			return false
		}
		if len(in.Arches) > 0 && !slices.Contains(in.Arches, goarch) {
			return false
		}
		if in.MinKernel != nil && (in.MinKernel.Kernel > 5 || in.MinKernel.Kernel == 5 && in.MinKernel.Major > 12) {
			return false // the runtime needs 5.12; a newer minimum is left out
		}
	}
	if ex := s.Excludes; ex != nil && len(ex.Arches) > 0 && slices.Contains(ex.Arches, goarch) {
		return false
	}
	return true
}

// PodProfileJSON is PodProfile as the JSON file a node's kubelet (or
// docker's --security-opt seccomp=FILE) loads: seccomp/playground.json.
func PodProfileJSON() ([]byte, error) {
	p, err := PodProfile()
	if err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(p, "", "\t")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
