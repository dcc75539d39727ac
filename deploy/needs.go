package deploy

// PodNeeds are the system calls the playground server needs beyond
// docker's default profile, with why. Docker allows them only to a
// container holding CAP_SYS_ADMIN; the server's pod holds no capability
// at all and makes its containers in user namespaces of its own, where
// the kernel checks these calls against the new namespace's capabilities.
// The list is what starting a container needs, found by starting
// containers under the profile: TestPodProfileNeedsEveryCall drops each
// probed name in turn and sees the start fail.
var PodNeeds = []struct {
	Names, Why string
	// Probe says where the test sees the start fail without the names:
	// "any" (as root and as an ordinary user), "root" (a server running
	// as root only), or "" (not probed: Why says why it is here).
	Probe string
}{
	{"clone", "new user, pid, mount, uts, ipc, net and cgroup namespaces for each container (docker allows clone only without CLONE_NEW* flags)", "any"},
	{"unshare", "the program's last step enters a new cgroup namespace", "any"},
	{"mount", "init builds the container's root: private propagation, overlay, proc, sysfs, tmpfs, devpts, binds", "any"},
	{"pivot_root", "init makes the new root the root (never chroot)", "any"},
	{"umount2", "init detaches the old root after pivot_root", "any"},
	{"sethostname", "the container's own hostname, in its uts namespace", "any"},
	{"keyctl", "the program's last step gives it a new, empty session keyring (docker refuses keyctl: the keyring is not namespaced, so the runtime gives each program its own)", "any"},
	{"setns", "--net outbound: pasta and slirp4netns join the container's user and network namespaces (the runtime's TestNetOutbound fails without it)", ""},
	{"open_tree move_mount mount_setattr", "as root, each container sees the rootfs through an id-mapped mount of its own id range", "root"},
	{"clone3", "docker answers it with ENOSYS, so libc falls back to clone; a filter cannot see clone3's flags anyway, and starting a process straight into a cgroup (CLONE_INTO_CGROUP, with cgroup v2 limits) needs it", ""},
}
