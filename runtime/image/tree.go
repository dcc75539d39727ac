package image

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// maxTrailing is how much may follow an archive's end inside its
// compressed stream (tar pads to 10 KiB records; more is suspect).
const maxTrailing = 64 << 20

// unpackFile unpacks the archive file into a new tree of the cache and
// installs it. With digest empty the file's SHA-256, taken as it is read,
// is the key; when the cache already has that tree, the new one is thrown
// away.
func (c *Cache) unpackFile(ctx context.Context, file, archive, key, digest string, metaSrc, src Source, base Progress, progress ProgressFunc) (*Image, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	tmp, err := c.newTemp()
	if err != nil {
		return nil, err
	}
	done := false
	defer func() {
		if !done {
			_ = c.removeTree(tmp) // nothing half unpacked stays
		}
	}()
	u, err := newUnpacker(filepath.Join(tmp, "root"), c.Owners, c.Limits, c.Log.With().Str("archive", archive).Logger())
	if err != nil {
		return nil, err
	}
	defer u.close()

	m := newMeter(progress, base, PhaseUnpacking, fi.Size())
	h := sha256.New()
	cr := &countingReader{r: io.TeeReader(f, h), m: m}
	d, err := decompress(cr, false)
	if err != nil {
		return nil, &UnpackError{Archive: archive, Err: err}
	}
	defer d.Close()
	if err := u.unpack(ctx, d, archive); err != nil {
		return nil, err
	}
	if err := drain(d, maxTrailing); err != nil {
		return nil, &UnpackError{Archive: archive, Err: fmt.Errorf("after the archive's end: %w", err)}
	}
	if _, err := io.Copy(io.Discard, cr); err != nil { // the rest of the file, for its hash
		return nil, &UnpackError{Archive: archive, Err: err}
	}
	m.end()
	got := "sha256:" + hex.EncodeToString(h.Sum(nil))
	if digest != "" && got != digest {
		return nil, fmt.Errorf("%s changed after it was verified: %s, want %s", file, got, digest)
	}
	if digest == "" {
		digest = got
		if key, err = keyOf(digest); err != nil {
			return nil, err
		}
		if img, err := c.open(ctx, key, src); img != nil || err != nil {
			return img, err // the same content, from another name
		}
	}
	cfg, err := c.finishTree(u, base, progress, nil)
	if err != nil {
		return nil, &UnpackError{Archive: archive, Err: err}
	}
	img, err := c.install(ctx, tmp, key, Meta{Digest: digest, Kind: metaSrc.Kind, Source: metaSrc.String(), Name: metaSrc.Name, Size: u.stats.Bytes, Entries: u.stats.Entries, Config: cfg}, src)
	if err != nil {
		return nil, err
	}
	done = true
	return img, nil
}

// imageConfig is the part of an image's config that Config is made from.
type imageConfig struct {
	Env        []string
	WorkingDir string
	User       string
	Entrypoint []string
	Cmd        []string
}

// finishTree completes an unpacked tree: the apt setting, the config
// resolved against the tree's own files, then the directories' modes.
func (c *Cache) finishTree(u *unpacker, base Progress, progress ProgressFunc, ic *imageConfig) (Config, error) {
	if progress != nil {
		p := base
		p.Phase = PhaseFinishing
		progress(p)
	}
	if u.owners == OwnEntries {
		if err := u.writeAptSandbox(); err != nil {
			return Config{}, fmt.Errorf("apt setting: %w", err)
		}
	}
	var cfg Config
	if ic != nil {
		var err error
		if cfg, err = u.config(*ic); err != nil {
			return Config{}, err
		}
	}
	if err := u.finish(); err != nil {
		return Config{}, err
	}
	if u.owners == SubIDOwners {
		if err := c.SubIDs.OwnTree(u.dir, u.treeOwners()); err != nil {
			return Config{}, fmt.Errorf("give the tree to the subordinate ids: %w", err)
		}
	}
	return cfg, nil
}

// aptSandbox keeps apt root: where a container maps one id only (an
// ordinary user's server without subordinate ids), apt cannot drop to
// _apt for its downloads, and fails. As root it does the same work
// without the drop; the container's root is no host root either way.
// Only a tree for that map (OwnEntries) gets it: where the archive's
// owners are kept (KeepOwners, SubIDOwners), containers map a whole range
// and _apt exists.
const aptSandbox = `// Written by playground when it unpacked this environment: a container
// that maps one id only (a server run by an ordinary user) has no _apt
// user to drop to, so apt keeps running its downloads as root. Container
// root is not host root.
APT::Sandbox::User "root";
`

// writeAptSandbox writes the apt setting into a tree that has apt.
func (u *unpacker) writeAptSandbox() error {
	apt, err := u.resolveDir("etc/apt", false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // no apt here
	}
	if err != nil {
		return err
	}
	d, err := u.resolveDir(join(apt, "apt.conf.d"), true)
	if err != nil {
		return err
	}
	full := join(d, "99playground-sandbox")
	if err := u.clear(full); err != nil {
		return err
	}
	f, err := u.root.OpenFile(full, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(aptSandbox)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// resolveFile returns the real path of file p inside the tree, following
// symlinks (its own too) inside it.
func (u *unpacker) resolveFile(p string) (string, error) {
	hops := 0
	for {
		d, b := path.Split(p)
		parent, err := u.resolve(strings.TrimSuffix(d, "/"), false, &hops)
		if err != nil {
			return "", err
		}
		full := join(parent, b)
		fi, err := u.root.Lstat(full)
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			return full, nil
		}
		if hops++; hops > 40 {
			return "", fmt.Errorf("%s: too many levels of symbolic links", p)
		}
		t, err := u.root.Readlink(full)
		if err != nil {
			return "", err
		}
		if !strings.HasPrefix(t, "/") {
			t = "/" + join(parent, t)
		}
		p = strings.TrimPrefix(path.Clean(t), "/")
	}
}

// readFile reads a small file of the tree, following symlinks inside it.
func (u *unpacker) readFile(p string) ([]byte, error) {
	full, err := u.resolveFile(p)
	if err != nil {
		return nil, err
	}
	f, err := u.root.Open(full)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 4<<20))
}

var knownShells = map[string]bool{"sh": true, "bash": true, "zsh": true, "ash": true, "dash": true, "ksh": true, "mksh": true, "fish": true}

// config makes an image's Config, its user resolved against the tree.
func (u *unpacker) config(ic imageConfig) (Config, error) {
	cfg := Config{Env: ic.Env, WorkingDir: ic.WorkingDir}
	cfg.Cmd = append(append([]string{}, ic.Entrypoint...), ic.Cmd...)
	if len(ic.Entrypoint) == 0 && len(ic.Cmd) == 1 && knownShells[path.Base(ic.Cmd[0])] {
		cfg.Shell = []string{ic.Cmd[0], "-l"}
	}
	user, home, err := u.resolveUser(ic.User)
	if err != nil {
		return Config{}, err
	}
	cfg.User = user
	if home != "" && user != "" && !strings.HasPrefix(user, "0:") && !hasEnv(cfg.Env, "HOME") {
		cfg.Env = append(append([]string{}, cfg.Env...), "HOME="+home)
	}
	return cfg, nil
}

func hasEnv(env []string, name string) bool {
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == name {
			return true
		}
	}
	return false
}

// resolveUser turns an image's User ("name", "uid", "name:group",
// "uid:gid") into numeric "UID:GID" as the tree's /etc/passwd and
// /etc/group say, as docker does: a numeric uid not in passwd has gid 0;
// a name that is not there is an error. It also returns the user's home.
func (u *unpacker) resolveUser(spec string) (string, string, error) {
	if spec == "" {
		return "", "", nil
	}
	user, group, hasGroup := strings.Cut(spec, ":")
	passwd, _ := u.readFile("etc/passwd") // none: numeric ids only
	uid, gid, home := -1, 0, ""
	if n, err := parseID(user); err == nil {
		uid = n
	}
	for _, f := range colonLines(passwd, 7) {
		if f[0] == user || (uid >= 0 && f[2] == strconv.Itoa(uid)) {
			n, err := parseID(f[2])
			g, gerr := parseID(f[3])
			if err != nil || gerr != nil {
				continue
			}
			uid, gid, home = n, g, f[5]
			break
		}
	}
	if uid < 0 {
		return "", "", fmt.Errorf("user %q: not in the image's /etc/passwd", user)
	}
	if hasGroup {
		if n, err := parseID(group); err == nil {
			gid = n
		} else {
			groups, _ := u.readFile("etc/group")
			ok := false
			for _, f := range colonLines(groups, 3) {
				if f[0] == group {
					if n, err := parseID(f[2]); err == nil {
						gid, ok = n, true
						break
					}
				}
			}
			if !ok {
				return "", "", fmt.Errorf("group %q: not in the image's /etc/group", group)
			}
		}
	}
	return fmt.Sprintf("%d:%d", uid, gid), home, nil
}

func parseID(s string) (int, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n >= 1<<32-1 {
		return 0, fmt.Errorf("bad id %q", s)
	}
	return int(n), nil
}

// colonLines splits /etc/passwd-style lines with at least n fields.
func colonLines(b []byte, n int) [][]string {
	var out [][]string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		if f := strings.Split(line, ":"); len(f) >= n {
			out = append(out, f)
		}
	}
	return out
}
