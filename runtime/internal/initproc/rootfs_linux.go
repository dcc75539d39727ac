package initproc

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"

	"golang.org/x/sys/unix"
)

// The container's root, built by init inside its own mount namespace:
//
//	MountPoint        the session's disk: one tmpfs of Limits.Disk bytes and
//	                  DiskInodes inodes, the container's only writable storage
//	  upper/ work/    the overlay's writable layer
//	  lower/          the id-mapped rootfs, in root mode
//	  root/           overlay(lower=rootfs or the prepared host root, upper)
//	  tmp/ shm/ dev/  bound onto /tmp, /dev/shm and /dev
//	  mask/           empty, bound read-only onto the masked directories
//
// then pivot_root into root/ and detach the old root. Every mount is made in
// the container's mount namespace, so the host sees none of them and they
// all end with the container.

const oldRoot = "/.oldroot"

// HostDirs are the host's directories a HostRootfs container sees, read-only.
var HostDirs = []string{"/usr", "/bin", "/lib", "/lib32", "/lib64", "/libx32", "/sbin"}

// HostEtc are host files under /etc that programs from the host's /usr need
// (the dynamic linker's cache, Debian's alternatives), shown read-only; no
// account or secret file is among them.
var HostEtc = []string{"ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime", "terminfo", "inputrc", "os-release"}

func buildRoot(cfg *Config, lower int) error {
	mp := cfg.MountPoint
	if err := step("make mounts private", unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, "")); err != nil {
		return err
	}
	if err := step("mount the session's disk on "+mp, MountSessionDisk(mp, cfg.Disk, cfg.DiskInodes)); err != nil {
		return err
	}
	// Its directories bound into the root once it is built.
	dirs, err := OpenSessionDirs(mp)
	if err := step("session disk", err); err != nil {
		return err
	}
	defer dirs.Close()
	// Relative to the tmpfs from here, so that the overlay's options in
	// the container's mountinfo name no host path.
	if err := step("chdir to "+mp, os.Chdir(mp)); err != nil {
		return err
	}
	root := path.Join(mp, "root")
	{
		lowerDir := "lower"
		if lower >= 0 && cfg.LowerFD {
			// The rootfs, opened by the parent: "/proc/self/fd/N" is all
			// mountinfo shows.
			defer unix.Close(lower)
			lowerDir = "/proc/self/fd/" + strconv.Itoa(lower)
		} else if lower >= 0 {
			err := unix.MoveMount(lower, "", unix.AT_FDCWD, lowerDir, unix.MOVE_MOUNT_F_EMPTY_PATH)
			_ = unix.Close(lower)
			if err := step("attach id-mapped rootfs", err); err != nil {
				return err
			}
		} else {
			// The rootfs by an fd: "/proc/self/fd/N" is all mountinfo shows.
			src := cfg.Rootfs
			if src == HostRootfs {
				src = cfg.HostLower
			}
			fd, err := unix.Open(src, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err := step("open rootfs", err); err != nil {
				return err
			}
			defer unix.Close(fd)
			lowerDir = "/proc/self/fd/" + strconv.Itoa(fd)
		}
		o := "lowerdir=" + lowerDir + ",upperdir=upper,workdir=work,userxattr"
		err := unix.Mount("overlay", "root", "overlay", unix.MS_NOSUID|unix.MS_NODEV, o)
		if errors.Is(err, unix.ENODEV) {
			err = fmt.Errorf("%w (no overlayfs in this kernel; --rootfs host needs none)", err)
		} else if errors.Is(err, unix.EPERM) {
			err = fmt.Errorf("%w (overlayfs in a user namespace needs Linux 5.11 or later; --rootfs host needs none)", err)
		}
		if err := step("mount overlay", err); err != nil {
			return err
		}
	}
	if err := step("chdir to new root", os.Chdir(root)); err != nil {
		return err
	}
	if err := mkdirReal("." + oldRoot); err != nil {
		return err
	}
	if err := step("pivot_root", unix.PivotRoot(".", "."+oldRoot)); err != nil {
		return err
	}
	if err := step("chdir /", os.Chdir("/")); err != nil {
		return err
	}
	// From here on, every path is inside the container: a symlink in the
	// rootfs can no longer lead a mount or a write onto the host.
	if cfg.Rootfs == HostRootfs {
		if err := hostSkeleton(); err != nil {
			return err
		}
	}
	if err := mountSystem(cfg, dirs); err != nil {
		return err
	}
	if err := step("detach old root", unix.Unmount(oldRoot, unix.MNT_DETACH)); err != nil {
		return err
	}
	return step("remove old root", os.Remove(oldRoot))
}

// mkdirReal makes p a real directory, replacing a symlink or file the
// rootfs may have put there (in the container's own writable layer).
func mkdirReal(p string) error {
	fi, err := os.Lstat(p)
	if err == nil && fi.IsDir() {
		return nil
	}
	if err == nil {
		if err := os.Remove(p); err != nil {
			return step("replace "+p, err)
		}
	}
	return step("mkdir "+p, os.MkdirAll(p, 0o755))
}

// Every mount after pivot_root goes onto a target that was opened inside
// the new root without following a symlink (openat2 RESOLVE_IN_ROOT and
// RESOLVE_NO_SYMLINKS), and is made on exactly what was opened, through
// its /proc/self/fd path in the host's /proc, which stays reachable under
// the old root until the very end: a rootfs that ships /proc -> /, /tmp ->
// /etc or dev/null -> /proc/sys/x cannot redirect a mount.
const oldProcFd = oldRoot + "/proc/self/fd/"

// mountOn mounts src (of fstype, with flags and data) on p inside the root.
func mountOn(src, p, fstype string, flags uintptr, data string) error {
	fd, err := unix.Openat2(unix.AT_FDCWD, "."+p, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC | unix.O_NOFOLLOW,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return fmt.Errorf("open %s in the root: %w", p, err)
	}
	defer unix.Close(fd)
	return unix.Mount(src, oldProcFd+strconv.Itoa(fd), fstype, flags, data)
}

// The paths runc masks and makes read-only by default, and more: what
// tells about the host's hardware and kernel, or acts on it.
var (
	maskedFiles = []string{"/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
		"/proc/latency_stats", "/proc/sysrq-trigger", "/proc/interrupts"}
	maskedDirs   = []string{"/proc/acpi", "/proc/asound", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"}
	readOnlyDirs = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys"}
)

func mountSystem(cfg *Config, dirs *SessionDirs) error {
	const noexec = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	if err := mkdirReal("/proc"); err != nil {
		return err
	}
	if err := step("mount proc on /proc", mountOn("proc", "/proc", "proc", noexec, "")); err != nil {
		return err
	}
	if err := limitUserNS(cfg); err != nil {
		return err
	}
	for _, v := range cfg.Sysctls {
		if err := setSysctl(v); err != nil {
			return err
		}
	}
	if err := mkdirReal("/dev"); err != nil {
		return err
	}
	// The session disk's dev/: what is written there counts in --disk.
	if err := step("bind the session's dev on /dev", AttachSessionDir(dirs.Dev, "./dev", unix.MOUNT_ATTR_NOEXEC)); err != nil {
		return err
	}
	if err := mountSys(); err != nil {
		return err
	}
	if err := populateDev(cfg, dirs.Shm); err != nil {
		return err
	}
	if err := mkdirReal("/tmp"); err != nil {
		return err
	}
	if err := step("bind the session's tmp on /tmp", AttachSessionDir(dirs.Tmp, "./tmp", 0)); err != nil {
		return err
	}
	return mask(dirs.Mask)
}

// limitUserNS caps the kernel's counts that the container's user
// namespace is charged, through its own /proc/sys/user (the files of the
// user namespace of whoever writes them; init is root there, and /proc/sys
// is made read-only below). The kernel charges each count at every level
// up to the host's: an inotify instance of a session counts for its user
// namespace and for the server's uid, whose fs.inotify.max_user_instances
// (128 by default) all sessions share, and, with a server as root, every
// root process of the host. Without this cap one session took them all.
// A kernel without the file is left as it is.
func limitUserNS(cfg *Config) error {
	for _, l := range []struct {
		name string
		v    int
	}{{"max_inotify_instances", cfg.InotifyInstances}, {"max_inotify_watches", cfg.InotifyWatches}} {
		if l.v <= 0 {
			continue
		}
		if err := setSysctl(Sysctl{Name: "user/" + l.name, Value: strconv.Itoa(l.v)}); err != nil {
			return err
		}
	}
	return nil
}

// setSysctl sets one sysctl of the container's own namespaces (the user
// and IPC namespaces': the files of whoever writes them; init is root in
// the user namespace that owns them). A kernel without the file (no
// inotify, no System V IPC) is left as it is.
func setSysctl(v Sysctl) error {
	p := "/proc/sys/" + v.Name
	err := os.WriteFile(p, []byte(v.Value), 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return step("set "+p, err)
}

// mountSys mounts a fresh read-only sysfs, which the kernel allows in a
// user namespace that owns its net namespace; where it still refuses, the
// host's /sys is bound read-only instead, as runc does for rootless
// containers.
func mountSys() error {
	if err := mkdirReal("/sys"); err != nil {
		return err
	}
	flags := uintptr(unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	if mountOn("sysfs", "/sys", "sysfs", flags, "") == nil {
		return nil
	}
	if err := step("bind /sys", mountOn(oldRoot+"/sys", "/sys", "", unix.MS_BIND|unix.MS_REC, "")); err != nil {
		return err
	}
	return remountReadOnly("/sys")
}

// remountReadOnly makes a bind mount read-only, keeping the flags the
// kernel locked on it (nosuid, nodev, noexec, atime), without which a user
// namespace's remount is refused.
func remountReadOnly(p string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err != nil {
		return step("statfs "+p, err)
	}
	flags := uintptr(unix.MS_REMOUNT | unix.MS_BIND | unix.MS_RDONLY)
	for _, f := range []struct{ st, ms uintptr }{
		{unix.ST_NOSUID, unix.MS_NOSUID}, {unix.ST_NODEV, unix.MS_NODEV}, {unix.ST_NOEXEC, unix.MS_NOEXEC},
		{unix.ST_NOATIME, unix.MS_NOATIME}, {unix.ST_NODIRATIME, unix.MS_NODIRATIME}, {unix.ST_RELATIME, unix.MS_RELATIME},
	} {
		if uintptr(st.Flags)&f.st != 0 {
			flags |= f.ms
		}
	}
	return step("remount "+p+" read-only", mountOn("", p, "", flags, ""))
}

// populateDev fills the /dev tmpfs. Device nodes cannot be made in a user
// namespace, so the host's harmless ones are bind-mounted onto empty files.
func populateDev(cfg *Config, shm int) error {
	for _, d := range []string{"null", "zero", "full", "random", "urandom", "tty"} {
		p := "/dev/" + d
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|unix.O_NOFOLLOW, 0o666)
		if err != nil {
			return step("create "+p, err)
		}
		_ = f.Close() // empty file, only a mount point
		if err := step("bind "+p, mountOn(oldRoot+p, p, "", unix.MS_BIND, "")); err != nil {
			return err
		}
	}
	if err := step("mkdir /dev/pts", os.Mkdir("/dev/pts", 0o755)); err != nil {
		return err
	}
	ptsOpts := "newinstance,ptmxmode=0666,mode=0620"
	if cfg.IDRange {
		ptsOpts += ",gid=5" // tty group, mapped only when a full range is
	}
	if cfg.Ptys > 0 {
		// The kernel's ptys are one pool for the machine: a session may
		// hold this many of them (Limits.Ptys).
		ptsOpts += ",max=" + strconv.Itoa(cfg.Ptys)
	}
	if err := step("mount devpts", mountOn("devpts", "/dev/pts", "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, ptsOpts)); err != nil {
		return err
	}
	if err := step("mkdir /dev/shm", os.Mkdir("/dev/shm", 0o1777)); err != nil {
		return err
	}
	if err := step("bind the session's shm on /dev/shm", AttachSessionDir(shm, "./dev/shm", unix.MOUNT_ATTR_NOEXEC)); err != nil {
		return err
	}
	for link, target := range map[string]string{
		"/dev/ptmx": "pts/ptmx", "/dev/fd": "/proc/self/fd", "/dev/stdin": "/proc/self/fd/0",
		"/dev/stdout": "/proc/self/fd/1", "/dev/stderr": "/proc/self/fd/2",
	} {
		if err := step("symlink "+link, os.Symlink(target, link)); err != nil {
			return err
		}
	}
	return nil
}

// mask hides the /proc and /sys files that tell about or act on the host:
// files under /dev/null, directories under the session disk's empty mask/
// bound read-only (maskFd, attached on the first of maskedDirs and cloned
// from there for the others: not a tmpfs each, see DiskLayout), and makes
// the rest of /proc's host-wide knobs read-only. The program can undo none
// of it: it has no CAP_SYS_ADMIN and the seccomp filter refuses every
// mount call.
func mask(maskFd int) error {
	for _, p := range maskedFiles {
		if fi, err := os.Lstat(p); err != nil || fi.IsDir() {
			continue // not in this kernel
		}
		if err := step("mask "+p, mountOn("/dev/null", p, "", unix.MS_BIND, "")); err != nil {
			return err
		}
	}
	attached := false
	for _, p := range maskedDirs {
		if fi, err := os.Lstat(p); err != nil || !fi.IsDir() {
			continue
		}
		fd := maskFd
		if attached {
			// A clone of the mask attached already, by its fd (no path).
			c, err := unix.OpenTree(maskFd, "", unix.AT_EMPTY_PATH|unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
			if err := step("clone the mask for "+p, err); err != nil {
				return err
			}
			fd = c
		}
		err := AttachSessionDir(fd, "."+p, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOEXEC)
		if fd != maskFd {
			_ = unix.Close(fd) // attached, or failed: init ends
		}
		if err := step("mask "+p, err); err != nil {
			return err
		}
		attached = true
	}
	for _, p := range readOnlyDirs {
		if _, err := os.Lstat(p); err != nil {
			continue
		}
		if err := step("bind "+p, mountOn(p, p, "", unix.MS_BIND|unix.MS_REC, "")); err != nil {
			return err
		}
		if err := remountReadOnly(p); err != nil {
			return err
		}
	}
	return nil
}

// HostEtcFiles are the files of a HostRootfs container's own /etc, beside
// the host's HostEtc.
var HostEtcFiles = map[string]string{
	"etc/passwd":        "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
	"etc/group":         "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n",
	"etc/shells":        "/bin/sh\n/bin/bash\n",
	"etc/nsswitch.conf": "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n",
	"etc/profile": `# playground: a login shell's profile, synthesised for the host rootfs
export PATH=` + defaultPath + `
if [ -n "$BASH_VERSION" ] && [ -f /etc/bash.bashrc ]; then . /etc/bash.bashrc; fi
`,
	"etc/bash.bashrc": `# playground: interactive bash settings, synthesised for the host rootfs
[ -z "$PS1" ] && return
PS1='\[\e[1;32m\]\u@\h\[\e[0m\]:\[\e[1;34m\]\w\[\e[0m\]\$ '
alias ls='ls --color=auto'
`,
}

// hostSkeleton binds the host's system directories read-only into a
// HostRootfs root (the prepared lower layer has the symlinks of a
// merged-/usr host and the rest).
func hostSkeleton() error {
	for _, d := range HostDirs {
		fi, err := os.Lstat(oldRoot + d)
		if err != nil || fi.Mode()&os.ModeSymlink != 0 {
			continue // none on this host, or a symlink the lower layer has too
		}
		if err := bindReadOnly(oldRoot+d, d, true); err != nil {
			return err
		}
	}
	return nil
}

func bindReadOnly(src, dst string, dir bool) error {
	if dir {
		if err := step("mkdir "+dst, os.MkdirAll(dst, 0o755)); err != nil {
			return err
		}
	} else {
		if err := step("create "+dst, os.WriteFile(dst, nil, 0o644)); err != nil {
			return err
		}
	}
	if err := step("bind "+dst, mountOn(src, dst, "", unix.MS_BIND|unix.MS_REC, "")); err != nil {
		return err
	}
	return remountReadOnly(dst)
}

const aptConfDir = "/etc/apt/apt.conf.d"

// writeEtc gives the container its own hostname, hosts and resolv.conf,
// written into its writable layer (a symlink the rootfs has there is
// replaced, never followed).
func writeEtc(cfg *Config) error {
	if err := mkdirReal("/etc"); err != nil {
		return err
	}
	files := map[string]string{
		"/etc/hostname":    cfg.Hostname + "\n",
		"/etc/hosts":       "127.0.0.1\tlocalhost\n127.0.1.1\t" + cfg.Hostname + "\n::1\tlocalhost ip6-localhost ip6-loopback\n",
		"/etc/resolv.conf": cfg.ResolvConf,
	}
	if fi, err := os.Lstat(aptConfDir); err == nil && fi.IsDir() && !cfg.IDRange {
		// Only container root is mapped: apt cannot drop to its _apt
		// user (setgroups and setresuid to an unmapped id fail), so it
		// is told to stay root.
		files[aptConfDir+"/00playground-sandbox"] = "// playground: only root is mapped in this container\nAPT::Sandbox::User \"root\";\n"
	}
	for p, content := range files {
		if fi, err := os.Lstat(p); err == nil && !fi.Mode().IsRegular() {
			if err := step("replace "+p, os.RemoveAll(p)); err != nil {
				return err
			}
		}
		err := os.WriteFile(p, []byte(content), 0o644)
		if errors.Is(err, os.ErrPermission) || errors.Is(err, unix.EROFS) {
			return step("write "+p, fmt.Errorf("%w (is the rootfs readable and owned by the user running playground?)", err))
		}
		if err := step("write "+p, err); err != nil {
			return err
		}
	}
	return nil
}
