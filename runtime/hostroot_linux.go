package runtime

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/guntainer/playground/runtime/internal/initproc"
)

// A HostRootfs container's root is an overlay like any other, whose lower
// layer is a small tree this process prepares once per state dir: the
// host's /etc files that programs from its /usr need (copied, not bound:
// one overlay instead of two mounts per file), an /etc of accounts and
// shell settings of its own, the merged-/usr symlinks the host has, and
// empty mount points. Init then binds only the host's system directories
// (on a merged-/usr host, /usr alone) read-only. The copies are as the host
// had them when the server started.
//
// The tree is a cache named by a hash of its content, "h-HASH" (and
// "h-HASH-sUID-GID" for the subordinate ids' root, who owns it): every
// server and run on the host shares it, so a run leaves nothing new behind,
// and a new one appears only when the host's files change (then the old
// one stays, a few hundred KiB, as a running server may still use it). It
// is made under a temporary name and renamed into place, so a concurrent
// maker never sees half of one.

// preparedHostRoot returns the lower layer for HostRootfs, making it when
// the state dir has none for the host's files as they are now. With shift,
// the tree is given to container root of the subordinate ids (and named
// for them), for containers that map them. The Host calls it once.
func preparedHostRoot(stateDir string, shift *shifter) (string, error) {
	entries, err := hostRootEntries()
	if err != nil {
		return "", fmt.Errorf("host rootfs: %w", err)
	}
	h := sha256.New()
	for _, e := range entries {
		fmt.Fprintf(h, "%s\x00%o\x00%s\x00%d\x00", e.path, e.mode, e.link, len(e.data))
		h.Write(e.data)
	}
	name, suffix := "h-"+hex.EncodeToString(h.Sum(nil))[:16], ""
	if shift != nil {
		suffix = fmt.Sprintf("-s%d-%d", shift.ids.UIDBase, shift.ids.GIDBase)
	}
	dir := filepath.Join(stateDir, name+suffix)
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	tmp := filepath.Join(stateDir, "h-tmp-"+selfName()+suffix)
	_ = os.RemoveAll(tmp) // a half-made one of an earlier failed try
	if err := makeHostRoot(tmp, entries); err != nil {
		_ = os.RemoveAll(tmp) // half made
		return "", fmt.Errorf("host rootfs: %w", err)
	}
	if shift != nil {
		if err := shift.chown(tmp); err != nil {
			_ = shift.remove(tmp)
			return "", fmt.Errorf("host rootfs: %w", err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		if shift != nil {
			_ = shift.remove(tmp)
		} else {
			_ = os.RemoveAll(tmp) // another process made the same one first
		}
		if _, err := os.Stat(dir); err != nil {
			return "", fmt.Errorf("host rootfs: %w", err)
		}
	}
	return dir, nil
}

// entry is one file of the prepared tree: a directory, a symlink (link)
// or a regular file (data).
type entry struct {
	path string
	mode os.FileMode
	link string
	data []byte
}

// hostRootEntries lists the prepared tree, in the order to make it.
func hostRootEntries() ([]entry, error) {
	var es []entry
	for _, d := range initproc.HostDirs {
		fi, err := os.Lstat(d)
		switch {
		case err != nil:
			continue // this host has no such directory
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(d)
			if err != nil {
				return nil, err
			}
			es = append(es, entry{path: d, mode: os.ModeSymlink, link: target})
		default:
			es = append(es, entry{path: d, mode: os.ModeDir | 0o755})
		}
	}
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{"etc", 0o755}, {"root", 0o700}, {"home", 0o755}, {"var", 0o755}, {"var/tmp", os.ModeSticky | 0o777}, {"run", 0o755},
		{"mnt", 0o755}, {"opt", 0o755}, {"srv", 0o755}, {"proc", 0o555}, {"dev", 0o755}, {"sys", 0o555}, {"tmp", os.ModeSticky | 0o777}} {
		es = append(es, entry{path: d.path, mode: os.ModeDir | d.mode})
	}
	for _, name := range initproc.HostEtc {
		got, err := treeEntries("/etc/"+name, "etc/"+name)
		if err != nil {
			return nil, err
		}
		es = append(es, got...)
	}
	names := make([]string, 0, len(initproc.HostEtcFiles))
	for p := range initproc.HostEtcFiles {
		names = append(names, p)
	}
	slices.Sort(names)
	for _, p := range names {
		es = append(es, entry{path: p, mode: 0o644, data: []byte(initproc.HostEtcFiles[p])})
	}
	return es, nil
}

func makeHostRoot(dir string, entries []entry) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.path)
		var err error
		switch {
		case e.mode&os.ModeSymlink != 0:
			err = os.Symlink(e.link, p)
		case e.mode.IsDir():
			if err = os.Mkdir(p, 0o755); err == nil {
				err = os.Chmod(p, e.mode.Perm()|e.mode&os.ModeSticky)
			}
		default:
			err = os.WriteFile(p, e.data, e.mode.Perm())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// treeEntries lists a file, symlink or directory of regular files and
// symlinks of the host as entries at dst; whatever else, or a missing src,
// is left out.
func treeEntries(src, dst string) ([]entry, error) {
	var es []entry
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == src {
				return nil // the host has no such file
			}
			return err
		}
		rel, _ := filepath.Rel(src, p) // p is under src
		to := filepath.Join(dst, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			es = append(es, entry{path: to, mode: os.ModeDir | fi.Mode().Perm()})
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			es = append(es, entry{path: to, mode: os.ModeSymlink, link: target})
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			es = append(es, entry{path: to, mode: fi.Mode().Perm(), data: b})
		}
		return nil
	})
	return es, err
}
