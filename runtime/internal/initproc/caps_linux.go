package initproc

import (
	"fmt"

	"github.com/moby/sys/capability"
)

// The program's capabilities: docker's default set less what a playground
// does not need. They are capabilities in the container's user namespace
// only (over its own files, processes and network), never on the host.
// Bounding, permitted and effective sets are this list, the inheritable
// and ambient sets are empty (as docker since CVE-2022-24769), and
// no_new_privs means no setuid binary or file capability can add one.
// A program run as a user other than root (Spec.User) has none at all.
var keptCaps = []struct {
	cap capability.Cap
	why string
}{
	{capability.CAP_CHOWN, "kept: dpkg and apt-get install give files their owners"},
	{capability.CAP_DAC_OVERRIDE, "kept: root reads and writes files it does not own, as package scripts expect"},
	{capability.CAP_FOWNER, "kept: chmod, utime and xattrs on files root does not own (dpkg, tar)"},
	{capability.CAP_FSETID, "kept: dpkg sets setgid bits on files of a group root is not in (crontab, wall)"},
	{capability.CAP_KILL, "kept: root signals the container's processes of other users"},
	{capability.CAP_SETGID, "kept: apt, su and daemons switch groups (container ids only)"},
	{capability.CAP_SETUID, "kept: apt, su and daemons switch users (container ids only)"},
	{capability.CAP_NET_BIND_SERVICE, "kept: a server on port 80 of the container's own network namespace"},
}

// droppedCaps says why docker's other defaults go; every capability not in
// keptCaps goes, these are the ones docker would have kept.
var droppedCaps = []struct {
	cap capability.Cap
	why string
}{
	{capability.CAP_MKNOD, "dropped: no device nodes in a user namespace anyway"},
	{capability.CAP_NET_RAW, "dropped: raw and packet sockets (spoofing) on a network with nothing to ping"},
	{capability.CAP_SYS_CHROOT, "dropped: chroot is refused by the seccomp filter too; nothing in a shell needs it"},
	{capability.CAP_AUDIT_WRITE, "dropped: there is no audit log in a user namespace"},
	{capability.CAP_SETPCAP, "dropped: it only rearranges capabilities, and the sets are final"},
	{capability.CAP_SETFCAP, "dropped: file capabilities never take effect under no_new_privs"},
}

// KeptMask is the kept list as the bit mask /proc/PID/status shows.
func KeptMask() uint64 {
	var m uint64
	for _, k := range keptCaps {
		m |= 1 << uint(k.cap)
	}
	return m
}

// dropCapabilities leaves the calling OS thread with the kept list as its
// bounding, permitted and effective sets and empty inheritable and ambient
// sets. Capabilities are per thread: the caller has locked its goroutine
// to the thread, and only processes forked from it inherit the result.
func dropCapabilities() error {
	c, err := capability.NewPid2(0) // 0: the calling thread
	if err != nil {
		return fmt.Errorf("capabilities: %w", err)
	}
	c.Clear(capability.CAPS | capability.BOUNDS | capability.AMBS)
	for _, k := range keptCaps {
		c.Set(capability.BOUNDING|capability.PERMITTED|capability.EFFECTIVE, k.cap)
	}
	// Bounding first (it needs CAP_SETPCAP, which the capset then drops),
	// then permitted, effective and inheritable, then ambient.
	if err := c.Apply(capability.CAPS | capability.BOUNDS | capability.AMBS); err != nil {
		return fmt.Errorf("capabilities: %w", err)
	}
	return nil
}
