package initproc

import (
	"fmt"
	"os"
	"path"

	"golang.org/x/sys/unix"
)

// The session's disk (Limits.Disk) as one tmpfs: see DiskLayout. Init
// mounts it on its mount point (MountSessionDisk), opens its tmp, shm, dev
// and mask directories as detached mounts before pivot_root
// (OpenSessionDirs), and attaches them on /tmp, /dev/shm, /dev and the
// masked directories afterwards (AttachSessionDir). One tmpfs and binds of
// it, where there were a tmpfs for each: the writable layer, /tmp and
// /dev/shm share one size and one inode count, so a session can fill its
// disk once, not three times; and a session makes one tmpfs where it made
// up to seven (see DiskLayout for why that matters).

// MountSessionDisk mounts the session's tmpfs on mp, of size bytes and
// inodes inodes, and makes DiskLayout's directories in it.
func MountSessionDisk(mp string, size, inodes int64) error {
	opts := fmt.Sprintf("size=%d,nr_inodes=%d,mode=0755", size, inodes)
	if err := unix.Mount("tmpfs", mp, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", mp, err)
	}
	for _, d := range DiskLayout {
		mode := os.FileMode(0o755)
		if d == "tmp" || d == "shm" {
			mode = 0o777 | os.ModeSticky
		}
		p := path.Join(mp, d)
		if err := os.Mkdir(p, 0o755); err != nil {
			return fmt.Errorf("mkdir %s: %w", p, err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			return fmt.Errorf("chmod %s: %w", p, err)
		}
	}
	return nil
}

// SessionDirs are the session disk's directories that init attaches after
// pivot_root, when the disk is no longer reachable by path: each a
// detached bind mount (open_tree OPEN_TREE_CLONE) opened before it.
type SessionDirs struct {
	Tmp, Shm, Dev int
	// Mask is a clone of the disk's empty mask/, attached read-only on
	// the first of maskedDirs the kernel has, and cloned from there for
	// the others (mask). One clone for each, as before, left those the
	// kernel has not (three here) to be closed unattached, and the
	// kernel dissolves such a tree with an expedited RCU grace period,
	// which interrupts every CPU and took init 50 µs (p50) each.
	Mask int
}

// OpenSessionDirs opens mp's tmp, shm, dev and mask directories as
// detached bind mounts. The caller closes them (Close).
func OpenSessionDirs(mp string) (*SessionDirs, error) {
	d := &SessionDirs{Tmp: -1, Shm: -1, Dev: -1, Mask: -1}
	open := func(name string) (int, error) {
		fd, err := unix.OpenTree(unix.AT_FDCWD, path.Join(mp, name), unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
		if err != nil {
			d.Close()
			return -1, fmt.Errorf("open_tree %s/%s: %w", mp, name, err)
		}
		return fd, nil
	}
	var err error
	if d.Tmp, err = open("tmp"); err != nil {
		return nil, err
	}
	if d.Shm, err = open("shm"); err != nil {
		return nil, err
	}
	if d.Dev, err = open("dev"); err != nil {
		return nil, err
	}
	if d.Mask, err = open("mask"); err != nil {
		return nil, err
	}
	return d, nil
}

// Close closes what is still open: a detached mount that was not
// attached goes with its fd.
func (d *SessionDirs) Close() {
	for _, fd := range []int{d.Tmp, d.Shm, d.Dev, d.Mask} {
		if fd >= 0 {
			_ = unix.Close(fd)
		}
	}
}

// AttachSessionDir attaches a detached mount from OpenSessionDirs on
// target, a path relative to the working directory (the new root, for
// init), resolved in it without following a symlink (openat2 with
// RESOLVE_IN_ROOT and RESOLVE_NO_SYMLINKS, as mountOn does): the mount is
// moved onto exactly what was opened. It is nosuid and nodev, and has the
// extra attributes given (MOUNT_ATTR_NOEXEC).
func AttachSessionDir(fd int, target string, extra uint64) error {
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
