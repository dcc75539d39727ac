package runtime

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
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
// The tree is named "h-PID-START" for this process, like mount points, so
// CleanStateDir removes a dead server's.

var hostRoots struct {
	mu   sync.Mutex
	dirs map[string]string // state dir -> prepared tree
}

// preparedHostRoot returns the lower layer for HostRootfs, making it on first use.
func preparedHostRoot(stateDir string) (string, error) {
	hostRoots.mu.Lock()
	defer hostRoots.mu.Unlock()
	if d, ok := hostRoots.dirs[stateDir]; ok {
		return d, nil
	}
	dir := filepath.Join(stateDir, "h-"+selfName())
	_ = os.RemoveAll(dir) // a half-made one of an earlier failed try
	if err := makeHostRoot(dir); err != nil {
		_ = os.RemoveAll(dir) // half made
		return "", fmt.Errorf("host rootfs: %w", err)
	}
	if hostRoots.dirs == nil {
		hostRoots.dirs = map[string]string{}
	}
	hostRoots.dirs[stateDir] = dir
	return dir, nil
}

func makeHostRoot(dir string) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	for _, d := range hostDirs {
		fi, err := os.Lstat(d)
		switch {
		case err != nil:
			continue // this host has no such directory
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(d)
			if err != nil {
				return err
			}
			if err := os.Symlink(target, filepath.Join(dir, d)); err != nil {
				return err
			}
		default:
			if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
				return err
			}
		}
	}
	for d, mode := range map[string]os.FileMode{"etc": 0o755, "root": 0o700, "home": 0o755, "var": 0o755, "var/tmp": 0o1777,
		"run": 0o755, "mnt": 0o755, "opt": 0o755, "srv": 0o755, "proc": 0o555, "dev": 0o755, "sys": 0o555, "tmp": 0o1777} {
		p := filepath.Join(dir, d)
		if err := os.MkdirAll(p, 0o755); err != nil {
			return err
		}
		if err := os.Chmod(p, mode); err != nil {
			return err
		}
	}
	for _, name := range hostEtc {
		if err := copyTree("/etc/"+name, filepath.Join(dir, "etc", name)); err != nil {
			return err
		}
	}
	for p, content := range hostEtcFiles {
		if err := os.WriteFile(filepath.Join(dir, p), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// copyTree copies a file, symlink or directory of regular files and
// symlinks; whatever else, or a missing src, is left out.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
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
			return os.Mkdir(to, fi.Mode().Perm())
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(to, b, fi.Mode().Perm())
		}
		return nil
	})
}
