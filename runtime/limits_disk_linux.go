package runtime

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// The session's disk (Limits.Disk) as one tmpfs: see DiskLayout. Init
// calls mountSessionDisk on its mount point in place of today's tmpfs of
// WritableSize, and, before pivot_root, openSessionDirs; after pivot_root
// and the /dev tmpfs, attachSessionDir(tmp, "/tmp") and
// attachSessionDir(shm, "/dev/shm") in place of the separate /tmp and
// /dev/shm tmpfs mounts. Three mounts become one tmpfs and two binds, and
// the writable layer, /tmp and /dev/shm share one size and one inode
// count: a session can fill its disk once, not three times.

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

// attachSessionDir attaches a detached mount from openSessionDirs at
// target, nosuid and nodev. target must already be resolved inside the
// new root (iso's safe path resolution): move_mount follows what it is
// given.
func attachSessionDir(fd int, target string) error {
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &attr); err != nil {
		return fmt.Errorf("mount_setattr for %s: %w", target, err)
	}
	if err := unix.MoveMount(fd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("attach %s: %w", target, err)
	}
	return nil
}
