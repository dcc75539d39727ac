package runtime

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// As root, a container's ids are its own range of the pool, and its root
// file system's lower layer, owned by host root, goes into its overlay as
// an id-mapped mount (idmappedTree). Linux makes one of ext4, xfs and
// btrfs from 5.12 but of tmpfs only from 6.3, and overlayfs takes one as a
// layer from 5.19. Debian 12's kernel is 6.1 and /run a tmpfs, so the
// default state dir, where the host rootfs's lower layer is prepared,
// cannot be id-mapped there: every start would fail. A Host of root checks
// its state dir once (checkIDMap) and, where it cannot be id-mapped and is
// the default, moves to rootStateFallback; a state dir asked for fails
// there, saying why and what to do.

// rootStateDir is root's default state dir.
var rootStateDir = "/run/playground"

// rootStateFallback is root's state dir where the default's file system
// cannot be id-mapped: a disk's, beside the image cache.
var rootStateFallback = "/var/lib/playground/state"

// idmapHint says what an id-mapped mount needs, for errors.
const idmapHint = "as root, a container's root file system goes into its overlay as an id-mapped mount: Linux makes one of ext4, xfs and btrfs from 5.12 and of tmpfs from 6.3, and overlayfs takes one as a layer from 5.19; put the state dir (--state-dir, PLAYGROUND_STATE_DIR) and the image cache (--cache, PLAYGROUND_CACHE) on such a file system, or run the server as an ordinary user"

// idmapProbedFile, in a state dir, holds the kernel release its file
// system was found id-mappable on: later Hosts of that kernel need not
// check again (a server's start, each playground run).
const idmapProbedFile = "idmap-checked"

// checkIDMap makes sure the kernel can id-map a mount of dir's file
// system, for a user namespace like a container's.
func checkIDMap(dir string, exe *os.File) error {
	release := kernelRelease()
	marker := filepath.Join(dir, idmapProbedFile)
	if b, err := os.ReadFile(marker); err == nil && string(b) == release {
		return nil
	}
	// A user namespace to map for: the ids helper, waiting for a
	// go-ahead that never comes.
	m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: poolBase, Size: 1}}
	cmd := &exec.Cmd{
		Path: execPath(exe),
		Args: []string{idsArg0, "wait", dir},
		Env:  []string{},
		SysProcAttr: &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER, Pdeathsig: syscall.SIGKILL,
			UidMappings: m, GidMappings: m},
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		_ = in.Close()
		return fmt.Errorf("id-mapped mount check: %w", err)
	}
	fd, err := idmappedTree(dir, cmd.Process.Pid)
	if err == nil {
		_ = unix.Close(fd)
	}
	_ = in.Close() // no go-ahead: it exits
	_ = cmd.Wait()
	if err != nil {
		return err
	}
	_ = os.WriteFile(marker, []byte(release), 0o644) // only saves a check
	return nil
}

// idmapError explains a failed id-mapped mount of dir.
func idmapError(dir string, err error) error {
	if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EPERM) {
		return fmt.Errorf("id-mapped mount of %s: %w", dir, err)
	}
	return fmt.Errorf("id-mapped mount of %s (%s, Linux %s): %w; %s", dir, fsOf(dir), kernelRelease(), err, idmapHint)
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// fsOf names the file system dir is on, as far as errors need.
func fsOf(dir string) string {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return "file system unknown"
	}
	switch uint32(st.Type) {
	case unix.TMPFS_MAGIC:
		return "tmpfs"
	case unix.EXT4_SUPER_MAGIC:
		return "ext4"
	case unix.XFS_SUPER_MAGIC:
		return "xfs"
	case unix.BTRFS_SUPER_MAGIC:
		return "btrfs"
	case unix.OVERLAYFS_SUPER_MAGIC:
		return "overlayfs"
	}
	return fmt.Sprintf("file system 0x%x", uint32(st.Type))
}
