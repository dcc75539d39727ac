// Package seccomp is the system call filter of a playground container's
// program: an allow-list with a default of EPERM, built from docker's
// default profile (github.com/moby/profiles/seccomp, as data) less what a
// playground never needs, and compiled to classic BPF in pure Go: a binary
// search over the call number, with a leaf for each call whose arguments
// its rules test (compileProfile says why not go-seccomp-bpf's assembler,
// whose architecture tables name the calls).
//
// The one policy has two forms: Profile, an OCI (docker-style) profile that
// a container runtime such as runc can load (the deploy files ship it as
// profile.json), and Filter, the BPF program the playground's own runtime
// installs as the last act before it executes the program. The BPF form adds
// what a profile cannot say: system calls numbered above every one the
// profile names answer ENOSYS (so libc falls back from a call newer than the
// table), and a call of a foreign ABI (i386's int 0x80, x32) is refused.
//
// It is Linux-only; on other systems Filter and Profile return an error.
package seccomp
