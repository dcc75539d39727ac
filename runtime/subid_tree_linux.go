package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// OwnTree gives dir, a tree of the server's own files (an archive just
// unpacked), to the subordinate ids, as the archive's owners: every entry
// to container root (host UIDBase, GIDBase), then each entry of owners to
// the container ids it names, and its mode set after (a chown clears
// setuid and setgid bits). Containers that map the slice then see the
// archive's owners and bits (an _apt-owned directory, a setuid passwd),
// and their root may copy any file up. The server's user may not change
// or remove the tree afterwards: RemoveTree does. Entries of owners that
// are not in the tree (replaced after they were listed) are skipped.
func (s *SubIDs) OwnTree(dir string, owners []TreeOwner) error {
	exe, err := sealedExecutable()
	if err != nil {
		return err
	}
	for _, o := range owners {
		if o.UID < 0 || o.UID >= subIDSize || o.GID < 0 || o.GID >= subIDSize {
			return fmt.Errorf("own %s: %s: owner %d:%d is outside the container's ids", dir, o.Path, o.UID, o.GID)
		}
	}
	list, err := json.Marshal(owners)
	if err != nil {
		return err
	}
	return (&shifter{exe: exe, ids: s}).run("own", dir, list)
}

// RemoveTree removes dir, a tree of the subordinate ids (OwnTree's).
func (s *SubIDs) RemoveTree(dir string) error {
	exe, err := sealedExecutable()
	if err != nil {
		return err
	}
	return (&shifter{exe: exe, ids: s}).remove(dir)
}

// ownTree is the helper's side of OwnTree: as root of a user namespace
// that maps the slice and the server's own uid (as 65536), every entry to
// root, then the listed owners and modes, through an os.Root on dir so
// that no listed path leads out of it.
func ownTree(dir string, in io.Reader) error {
	var owners []TreeOwner
	if err := json.NewDecoder(in).Decode(&owners); err != nil {
		return fmt.Errorf("owners: %w", err)
	}
	if err := chownTree(dir); err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	for _, o := range owners {
		err := root.Lchown(o.Path, o.UID, o.GID)
		if err == nil && o.Mode != 0 {
			err = root.Chmod(o.Path, modeOf(o.Mode))
		}
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// modeOf turns unix mode bits into an fs.FileMode for Chmod.
func modeOf(m uint32) fs.FileMode {
	fm := fs.FileMode(m & 0o777)
	if m&unix.S_ISUID != 0 {
		fm |= fs.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		fm |= fs.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		fm |= fs.ModeSticky
	}
	return fm
}
