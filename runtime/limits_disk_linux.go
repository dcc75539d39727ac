package runtime

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// The session's disk (Limits.Disk) as one tmpfs: see DiskLayout. Init
// mounts it on its mount point (mountSessionDisk), opens its tmp and shm
// as detached mounts before pivot_root (openSessionDirs), and attaches
// them on /tmp and /dev/shm afterwards (attachSessionDir). One tmpfs and
// two binds, where there were three tmpfs mounts: the writable layer, /tmp
// and /dev/shm share one size and one inode count, so a session can fill
// its disk once, not three times.

// mountSessionDisk mounts the session's tmpfs on mp, size Disk and
// DiskInodes inodes, and makes DiskLayout's directories in it.
func mountSessionDisk(mp string, l Limits) error {
	l = l.WithDefaults()
	opts := fmt.Sprintf("size=%d,nr_inodes=%d,mode=0755", l.Disk, l.DiskInodes())
	if err := unix.Mount("tmpfs", mp, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", mp, err)
	}
	for _, d := range DiskLayout {
		mode := os.FileMode(0o755)
		if d == "tmp" || d == "shm" {
			mode = 0o777 | os.ModeSticky
		}
		p := filepath.Join(mp, d)
		if err := os.Mkdir(p, 0o755); err != nil {
			return fmt.Errorf("mkdir %s: %w", p, err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			return fmt.Errorf("chmod %s: %w", p, err)
		}
	}
	return nil
}

// openSessionDirs opens mp/tmp and mp/shm as detached bind mounts
// (open_tree OPEN_TREE_CLONE), for init to attach after pivot_root, when
// mp is no longer reachable by path. The caller closes both fds.
func openSessionDirs(mp string) (tmp, shm int, err error) {
	tmp, err = unix.OpenTree(unix.AT_FDCWD, filepath.Join(mp, "tmp"), unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return -1, -1, fmt.Errorf("open_tree %s/tmp: %w", mp, err)
	}
	shm, err = unix.OpenTree(unix.AT_FDCWD, filepath.Join(mp, "shm"), unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		_ = unix.Close(tmp)
		return -1, -1, fmt.Errorf("open_tree %s/shm: %w", mp, err)
	}
	return tmp, shm, nil
}

// attachSessionDir attaches a detached mount from openSessionDirs on
// target, a path relative to the working directory (the new root, for
// init), resolved in it without following a symlink (openat2 with
// RESOLVE_IN_ROOT and RESOLVE_NO_SYMLINKS, as mountOn does): the mount is
// moved onto exactly what was opened. It is nosuid and nodev, and has the
// extra attributes given (MOUNT_ATTR_NOEXEC).
func attachSessionDir(fd int, target string, extra uint64) error {
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | extra}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &attr); err != nil {
		return fmt.Errorf("mount_setattr for %s: %w", target, err)
	}
	tfd, err := unix.Openat2(unix.AT_FDCWD, target, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC | unix.O_NOFOLLOW | unix.O_DIRECTORY,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return fmt.Errorf("open %s in the root: %w", target, err)
	}
	defer unix.Close(tfd)
	if err := unix.MoveMount(fd, "", tfd, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return fmt.Errorf("attach %s: %w", target, err)
	}
	return nil
}
