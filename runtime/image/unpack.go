package image

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/guntainer/playground/runtime"
)

// An archive is hostile input. The unpacker writes only through an
// os.Root on the target directory, so no entry reaches outside it
// whatever the archive does, and on top of that resolves every parent
// directory itself, inside the target, as the container will see it
// after pivot_root: an absolute symlink /lib -> /usr/lib leads to
// TARGET/usr/lib, a symlink to ../../.. leads to TARGET. Its rules:
//
//   - a name with a ".." component is refused; a leading "/" is dropped;
//   - an entry's parent directories are followed through symlinks in the
//     target, never outside it (at most 40 links);
//   - a file, symlink or link replaces what was at its name (unlinked
//     first, then created exclusively), so nothing is ever written through
//     an existing symlink or hard link;
//   - a hard link's target must be a non-directory inside the target;
//   - device nodes and fifos are dropped, in every mode: the runtime gives
//     each container its own /dev, and the tree is a lower layer shared by
//     every container, where no such file has a use;
//   - owners are kept as root (the runtime shows the tree through an
//     id-mapped mount; ids above 65535, which no container maps, become
//     65534) and become the unpacking user's own otherwise;
//   - setuid and setgid bits of files are kept as root, where the cache is
//     a 0700 root-owned directory that no host user can reach and a
//     container sees the file's owner as one of its own ids, and dropped
//     as an ordinary user, where every file is the user's own and a
//     setuid bit could only ever make someone else that user;
//   - entry count, total size and path length are bounded (Limits);
//   - a truncated stream, a size that lies, a bad header: an error that
//     names the archive and the entry.

// Owners says who owns what an unpack writes.
type Owners int

const (
	// OwnEntries makes every entry the unpacking user's own: an ordinary
	// user's server, whose containers map their root to that user alone.
	OwnEntries Owners = iota
	// KeepOwners keeps the archive's uids and gids: root's server, whose
	// containers see the tree through an id-mapped mount.
	KeepOwners
	// SubIDOwners keeps them through the subordinate ids: an ordinary
	// user's server with an /etc/subuid range, whose containers map it
	// (runtime.SubIDs). The unpack writes as OwnEntries does, with no
	// setuid or setgid bit, and notes each entry's owner and bits; at the
	// end the runtime's helper, root of a user namespace that maps the
	// range, gives the tree to the range's root and each noted entry to
	// its owner, with its bits (SubIDs.OwnTree). Containers then see the
	// archive's owners, as root's containers do.
	SubIDOwners
)

// Limits bound what one archive or image may unpack to, and what one
// download may fetch.
type Limits struct {
	MaxEntries  int   // entries of one archive or image; default 2,000,000
	MaxBytes    int64 // bytes of file content; default 32 GiB
	MaxPathLen  int   // bytes of an entry's name or link target; default 4096
	MaxDownload int64 // bytes of one download; default 8 GiB
}

func (l Limits) withDefaults() Limits {
	if l.MaxEntries <= 0 {
		l.MaxEntries = 2_000_000
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = 32 << 30
	}
	if l.MaxPathLen <= 0 {
		l.MaxPathLen = 4096
	}
	if l.MaxDownload <= 0 {
		l.MaxDownload = 8 << 30
	}
	return l
}

// UnpackError is an archive that cannot be unpacked: its name, the entry
// at fault (the last one read, for a stream that broke after it) and why.
type UnpackError struct {
	Archive string
	Entry   string
	After   bool // the stream broke after Entry, reading the next header
	Err     error
}

func (e *UnpackError) Error() string {
	switch {
	case e.Entry == "":
		return fmt.Sprintf("unpack %s: %v", e.Archive, e.Err)
	case e.After:
		return fmt.Sprintf("unpack %s: after entry %q: %v", e.Archive, e.Entry, e.Err)
	}
	return fmt.Sprintf("unpack %s: entry %q: %v", e.Archive, e.Entry, e.Err)
}

func (e *UnpackError) Unwrap() error { return e.Err }

// UnpackStats says what an unpack did.
type UnpackStats struct {
	Entries  int   // entries written
	Bytes    int64 // bytes of file content written
	Devices  int   // device nodes and fifos dropped
	Owned    int   // entries of other owners made the user's own (OwnEntries)
	Setid    int   // setuid/setgid bits dropped (OwnEntries)
	BigIDs   int   // owners above 65535 made 65534 (KeepOwners, SubIDOwners)
	Skipped  int   // entries of no use in a rootfs (sockets, aufs metadata)
	Removed  int   // whiteouts and opaque directories applied (layers)
	Archives int   // archives or layers unpacked
}

// unpacker writes archives into one target directory. Image layers are
// unpacked one after the other into the same target (StartLayer), with
// their whiteouts honoured. Not safe for concurrent use.
type unpacker struct {
	dir    string
	root   *os.Root
	owners Owners
	owned  map[string]runtime.TreeOwner // SubIDOwners: entries not root's, or with setuid, setgid bits
	limits Limits
	log    zerolog.Logger

	stats UnpackStats

	dirs    map[string]bool    // resolved paths known to be real directories
	alias   map[string]string  // unresolved directory paths -> resolved
	pending map[string]dirMeta // directories whose mode, owner and times are set at the end
	layer   map[string]bool    // paths this layer wrote (whiteouts apply only to lower layers)
	layers  bool               // unpacking image layers: honour whiteouts

	buf []byte
}

type dirMeta struct {
	mode     fs.FileMode
	uid, gid int
	mtime    time.Time
}

func newUnpacker(dir string, owners Owners, limits Limits, log zerolog.Logger) (*unpacker, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return &unpacker{
		dir:     dir,
		root:    r,
		owners:  owners,
		owned:   map[string]runtime.TreeOwner{},
		limits:  limits.withDefaults(),
		log:     log,
		dirs:    map[string]bool{},
		alias:   map[string]string{},
		pending: map[string]dirMeta{},
		buf:     make([]byte, 256<<10),
	}, nil
}

func (u *unpacker) close() error { return u.root.Close() }

// Unpack writes the tar stream r (uncompressed) into dir, which must
// exist, with the rules above, and sets the directories' modes and times
// at the end. name names the archive in errors.
func Unpack(ctx context.Context, r io.Reader, dir, name string, owners Owners, limits Limits, log zerolog.Logger) (UnpackStats, error) {
	u, err := newUnpacker(dir, owners, limits, log)
	if err != nil {
		return UnpackStats{}, err
	}
	defer u.close()
	if err := u.unpack(ctx, r, name); err != nil {
		return u.stats, err
	}
	if err := u.finish(); err != nil {
		return u.stats, &UnpackError{Archive: name, Err: err}
	}
	return u.stats, nil
}

// startLayer begins the next image layer: whiteouts in it remove what
// lower layers wrote.
func (u *unpacker) startLayer() {
	u.layers = true
	u.layer = map[string]bool{}
}

// unpacks counts the archives and layers unpacked by this process, so
// tests can see that a cached start unpacks nothing.
var unpacks atomic.Int64

// unpack writes one tar stream into the target.
func (u *unpacker) unpack(ctx context.Context, r io.Reader, archive string) error {
	u.stats.Archives++
	unpacks.Add(1)
	tr := tar.NewReader(r)
	last := ""
	for {
		if err := ctx.Err(); err != nil {
			return &UnpackError{Archive: archive, Entry: last, After: last != "", Err: err}
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				err = fmt.Errorf("truncated: %w", err)
			}
			return &UnpackError{Archive: archive, Entry: last, After: last != "", Err: err}
		}
		last = hdr.Name
		if err := u.entry(ctx, hdr, tr); err != nil {
			return &UnpackError{Archive: archive, Entry: hdr.Name, Err: err}
		}
	}
}

// cleanName turns an entry's name into a path relative to the target:
// "" for the target itself. A ".." component is refused; a leading "/"
// is dropped, as tar does.
func (u *unpacker) cleanName(n string) (string, error) {
	if len(n) > u.limits.MaxPathLen {
		return "", fmt.Errorf("name longer than %d bytes", u.limits.MaxPathLen)
	}
	if strings.IndexByte(n, 0) >= 0 {
		return "", errors.New("name contains a NUL byte")
	}
	var parts []string
	for _, c := range strings.Split(n, "/") {
		switch c {
		case "", ".":
			continue
		case "..":
			return "", errors.New("name leaves the archive (a \"..\" component)")
		}
		if len(c) > 255 {
			return "", errors.New("name has a component longer than 255 bytes")
		}
		parts = append(parts, c)
	}
	return strings.Join(parts, "/"), nil
}

func (u *unpacker) entry(ctx context.Context, hdr *tar.Header, r io.Reader) error {
	u.stats.Entries++
	if u.stats.Entries > u.limits.MaxEntries {
		return fmt.Errorf("more than %d entries", u.limits.MaxEntries)
	}
	name, err := u.cleanName(hdr.Name)
	if err != nil {
		return err
	}
	dir, base := path.Split(name)
	dir = strings.TrimSuffix(dir, "/")
	if u.layers && strings.HasPrefix(base, ".wh.") {
		return u.whiteout(dir, base)
	}
	if name == "" {
		if hdr.Typeflag != tar.TypeDir {
			return errors.New("the archive's root is not a directory")
		}
		u.pending[""] = u.dirMeta(hdr)
		u.record("", hdr, false)
		return nil
	}
	switch hdr.Typeflag {
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		u.stats.Devices++
		return nil
	case tar.TypeXGlobalHeader:
		return nil
	}
	parent, err := u.resolveDir(dir, true)
	if err != nil {
		return err
	}
	full := join(parent, base)
	if u.layer != nil {
		u.layer[full] = true
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		return u.mkdir(full, hdr)
	case tar.TypeReg, tar.TypeRegA, tar.TypeCont, tar.TypeGNUSparse:
		return u.file(ctx, full, hdr, r)
	case tar.TypeSymlink:
		return u.symlink(full, hdr)
	case tar.TypeLink:
		return u.hardlink(full, hdr)
	}
	if hdr.Typeflag == 's' || hdr.Typeflag == tar.TypeGNULongName || hdr.Typeflag == tar.TypeGNULongLink {
		u.stats.Skipped++ // a socket, or metadata the reader should have eaten
		return nil
	}
	return fmt.Errorf("unsupported entry type %q", hdr.Typeflag)
}

func join(dir, base string) string {
	if dir == "" {
		return base
	}
	return dir + "/" + base
}

// rootName is p as os.Root wants it: "." for the target itself.
func rootName(p string) string {
	if p == "" {
		return "."
	}
	return p
}

// resolveDir returns the real path, inside the target, of directory p:
// symlinks on the way are followed as the container will see them, with
// "/" the target. Missing directories are made when create is set (tar
// archives may leave them out); otherwise a missing one is
// fs.ErrNotExist.
func (u *unpacker) resolveDir(p string, create bool) (string, error) {
	hops := 0
	return u.resolve(p, create, &hops)
}

func (u *unpacker) resolve(p string, create bool, hops *int) (string, error) {
	if p == "" {
		return "", nil
	}
	if u.dirs[p] {
		return p, nil
	}
	if a, ok := u.alias[p]; ok {
		return a, nil
	}
	d, base := path.Split(p)
	parent, err := u.resolve(strings.TrimSuffix(d, "/"), create, hops)
	if err != nil {
		return "", err
	}
	cand := join(parent, base)
	if u.dirs[cand] {
		if cand != p {
			u.alias[p] = cand
		}
		return cand, nil
	}
	fi, err := u.root.Lstat(cand)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if !create {
			return "", err
		}
		if err := u.root.Mkdir(cand, u.workDirMode()); err != nil {
			return "", err
		}
		u.pending[cand] = dirMeta{mode: 0o755}
		if u.layer != nil {
			u.layer[cand] = true
		}
	case err != nil:
		return "", err
	case fi.Mode()&fs.ModeSymlink != 0:
		*hops++
		if *hops > 40 {
			return "", fmt.Errorf("%s: too many levels of symbolic links", cand)
		}
		target, err := u.root.Readlink(cand)
		if err != nil {
			return "", err
		}
		// Inside the target, as the container sees it: absolute links
		// start at its root, and ".." stops there.
		var t string
		if strings.HasPrefix(target, "/") {
			t = path.Clean(target)
		} else {
			t = path.Clean("/" + join(parent, target))
		}
		r, err := u.resolve(strings.TrimPrefix(t, "/"), create, hops)
		if err != nil {
			return "", err
		}
		u.alias[p] = r
		return r, nil
	case !fi.IsDir():
		return "", fmt.Errorf("%s is not a directory", cand)
	}
	u.dirs[cand] = true
	if cand != p {
		u.alias[p] = cand
	}
	return cand, nil
}

// workDirMode is the mode directories have while the unpack runs: the
// user's own must stay writable until the end, when their modes are set.
func (u *unpacker) workDirMode() fs.FileMode {
	if u.owners != KeepOwners {
		return 0o700
	}
	return 0o755
}

// forget drops what the caches know: something was removed or replaced.
func (u *unpacker) forget() {
	u.dirs = map[string]bool{}
	u.alias = map[string]string{}
}

// clear removes whatever is at full, to be replaced.
func (u *unpacker) clear(full string) error {
	fi, err := u.root.Lstat(full)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&fs.ModeSymlink != 0 {
		u.forget()
	}
	u.disown(full, fi.IsDir())
	if fi.IsDir() {
		return u.root.RemoveAll(full)
	}
	return u.root.Remove(full)
}

func (u *unpacker) dirMeta(hdr *tar.Header) dirMeta {
	uid, gid := u.ids(hdr)
	return dirMeta{mode: u.mode(hdr, true), uid: uid, gid: gid, mtime: hdr.ModTime}
}

// mode is the entry's mode under the setuid rule.
func (u *unpacker) mode(hdr *tar.Header, dir bool) fs.FileMode {
	m := fs.FileMode(hdr.Mode & 0o777)
	if hdr.Mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	setid := hdr.Mode&0o6000 != 0
	if u.owners != KeepOwners && !dir {
		// Not on a file of the server's own; SubIDOwners sets them once
		// the file is the container's.
		if setid && u.owners == OwnEntries {
			u.stats.Setid++
		}
		return m
	}
	if hdr.Mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if hdr.Mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	return m
}

// ids are the owner to give the entry under KeepOwners.
func (u *unpacker) ids(hdr *tar.Header) (int, int) {
	if u.owners == OwnEntries {
		if hdr.Uid != 0 || hdr.Gid != 0 {
			u.stats.Owned++
		}
		return -1, -1
	}
	if u.owners == SubIDOwners {
		return -1, -1 // the helper gives them (record)
	}
	return u.archiveIDs(hdr)
}

// archiveIDs are the entry's owner, ids above 65535, which no container
// maps, made 65534 (nobody).
func (u *unpacker) archiveIDs(hdr *tar.Header) (int, int) {
	uid, gid := hdr.Uid, hdr.Gid
	if uid < 0 || uid > 65535 || gid < 0 || gid > 65535 {
		u.stats.BigIDs++
		if uid < 0 || uid > 65535 {
			uid = 65534
		}
		if gid < 0 || gid > 65535 {
			gid = 65534
		}
	}
	return uid, gid
}

// record notes, under SubIDOwners, the owner and setuid, setgid bits that
// the entry at full is to have in the container; symlink: it has no mode
// to set.
func (u *unpacker) record(full string, hdr *tar.Header, symlink bool) {
	if u.owners != SubIDOwners {
		return
	}
	uid, gid := u.archiveIDs(hdr)
	var mode uint32
	if !symlink && hdr.Typeflag != tar.TypeDir && hdr.Mode&0o6000 != 0 {
		mode = uint32(hdr.Mode & 0o7777)
	}
	if uid == 0 && gid == 0 && mode == 0 {
		delete(u.owned, full)
		return
	}
	u.owned[full] = runtime.TreeOwner{Path: rootName(full), UID: uid, GID: gid, Mode: mode}
}

// disown forgets what record noted at full (and below it, for a
// directory): it is being replaced or removed.
func (u *unpacker) disown(full string, dir bool) {
	if len(u.owned) == 0 {
		return
	}
	delete(u.owned, full)
	if dir {
		prefix := full + "/"
		for p := range u.owned {
			if full == "" || strings.HasPrefix(p, prefix) {
				delete(u.owned, p)
			}
		}
	}
}

// treeOwners is what record noted, in path order.
func (u *unpacker) treeOwners() []runtime.TreeOwner {
	out := make([]runtime.TreeOwner, 0, len(u.owned))
	for _, o := range u.owned {
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

func (u *unpacker) mkdir(full string, hdr *tar.Header) error {
	fi, err := u.root.Lstat(full)
	switch {
	case err == nil && fi.IsDir():
	case err == nil:
		if err := u.clear(full); err != nil {
			return err
		}
		fallthrough
	case errors.Is(err, fs.ErrNotExist):
		if err := u.root.Mkdir(full, u.workDirMode()); err != nil {
			return err
		}
	default:
		return err
	}
	u.dirs[full] = true
	u.pending[full] = u.dirMeta(hdr)
	u.record(full, hdr, false)
	return nil
}

func (u *unpacker) file(ctx context.Context, full string, hdr *tar.Header, r io.Reader) error {
	if hdr.Size < 0 {
		return errors.New("negative size")
	}
	if hdr.Size > u.limits.MaxBytes-u.stats.Bytes {
		return fmt.Errorf("unpacks to more than %s (the limit)", HumanBytes(u.limits.MaxBytes))
	}
	if err := u.clear(full); err != nil {
		return err
	}
	f, err := u.root.OpenFile(full, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	n, err := io.CopyBuffer(f, ctxReader{ctx, io.LimitReader(r, hdr.Size)}, u.buf)
	u.stats.Bytes += n
	if err == nil && n < hdr.Size {
		err = fmt.Errorf("truncated: %d of %d bytes: %w", n, hdr.Size, io.ErrUnexpectedEOF)
	} else if err != nil && (errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)) {
		err = fmt.Errorf("truncated: %d of %d bytes: %w", n, hdr.Size, err)
	}
	if err == nil {
		err = u.setOwnerMode(f, hdr)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	u.record(full, hdr, false)
	return u.root.Chtimes(full, hdr.ModTime, hdr.ModTime)
}

func (u *unpacker) setOwnerMode(f *os.File, hdr *tar.Header) error {
	uid, gid := u.ids(hdr)
	if uid >= 0 {
		// Before the mode: chown clears setuid and setgid bits.
		if err := f.Chown(uid, gid); err != nil {
			return err
		}
	}
	return f.Chmod(u.mode(hdr, false))
}

func (u *unpacker) symlink(full string, hdr *tar.Header) error {
	if hdr.Linkname == "" || len(hdr.Linkname) > u.limits.MaxPathLen || strings.IndexByte(hdr.Linkname, 0) >= 0 {
		return fmt.Errorf("bad symlink target (empty, NUL or longer than %d bytes)", u.limits.MaxPathLen)
	}
	if err := u.clear(full); err != nil {
		return err
	}
	// The target is stored as it is: it means something only inside the
	// container, and nothing here follows it out of the target.
	if err := u.root.Symlink(hdr.Linkname, full); err != nil {
		return err
	}
	u.record(full, hdr, true)
	if uid, gid := u.ids(hdr); uid >= 0 {
		return u.root.Lchown(full, uid, gid)
	}
	return nil
}

func (u *unpacker) hardlink(full string, hdr *tar.Header) error {
	target, err := u.cleanName(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("link target: %w", err)
	}
	if target == "" {
		return errors.New("hard link to the archive's root")
	}
	d, b := path.Split(target)
	tdir, err := u.resolveDir(strings.TrimSuffix(d, "/"), false)
	if err != nil {
		return fmt.Errorf("link target %q: %w", hdr.Linkname, err)
	}
	tfull := join(tdir, b)
	fi, err := u.root.Lstat(tfull)
	if err != nil {
		return fmt.Errorf("link target %q: %w", hdr.Linkname, err)
	}
	if fi.IsDir() {
		return fmt.Errorf("link target %q is a directory", hdr.Linkname)
	}
	if tfull == full {
		return nil // a link to itself: already there
	}
	if err := u.clear(full); err != nil {
		return err
	}
	return u.root.Link(tfull, full)
}

// whiteout applies an image layer's whiteout: .wh..wh..opq empties the
// directory of what lower layers put there, .wh.NAME removes NAME.
func (u *unpacker) whiteout(dir, base string) error {
	parent, err := u.resolveDir(dir, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // nothing below to hide
	}
	if err != nil {
		return err
	}
	if base == ".wh..wh..opq" {
		u.stats.Removed++
		return u.opaque(parent)
	}
	if strings.HasPrefix(base, ".wh..wh.") {
		u.stats.Skipped++ // aufs metadata (.wh..wh.plnk, .wh..wh.aufs)
		return nil
	}
	full := join(parent, strings.TrimPrefix(base, ".wh."))
	if u.layer[full] {
		return nil // a whiteout hides only what lower layers wrote
	}
	u.stats.Removed++
	return u.clear(full)
}

// opaque removes from dir everything this layer did not write.
func (u *unpacker) opaque(dir string) error {
	f, err := u.root.Open(rootName(dir))
	if err != nil {
		return err
	}
	es, err := f.ReadDir(-1)
	_ = f.Close() // read-only directory handle
	if err != nil {
		return err
	}
	for _, e := range es {
		full := join(dir, e.Name())
		if u.layer[full] {
			if e.IsDir() {
				if err := u.opaque(full); err != nil {
					return err
				}
			}
			continue
		}
		if err := u.clear(full); err != nil {
			return err
		}
	}
	return nil
}

// finish sets the directories' owners, modes and times, deepest first, so
// that a read-only directory is made so after what is in it.
func (u *unpacker) finish() error {
	dirs := make([]string, 0, len(u.pending))
	for d := range u.pending {
		dirs = append(dirs, d)
	}
	sort.Slice(dirs, func(i, j int) bool {
		di, dj := strings.Count(dirs[i], "/"), strings.Count(dirs[j], "/")
		if dirs[i] == "" || dirs[j] == "" {
			return dirs[j] == ""
		}
		if di != dj {
			return di > dj
		}
		return dirs[i] < dirs[j]
	})
	for _, d := range dirs {
		m := u.pending[d]
		n := rootName(d)
		fi, err := u.root.Lstat(n)
		if err != nil || !fi.IsDir() {
			continue // removed or replaced by a later entry or layer
		}
		if u.owners == KeepOwners && m.uid >= 0 {
			if err := u.root.Lchown(n, m.uid, m.gid); err != nil {
				return fmt.Errorf("chown %s: %w", n, err)
			}
		}
		if err := u.root.Chmod(n, m.mode); err != nil {
			return fmt.Errorf("chmod %s: %w", n, err)
		}
		if !m.mtime.IsZero() {
			if err := u.root.Chtimes(n, m.mtime, m.mtime); err != nil {
				return fmt.Errorf("chtimes %s: %w", n, err)
			}
		}
	}
	u.pending = map[string]dirMeta{}
	u.sayOnce()
	return nil
}

// sayOnce logs, once per unpack, what was changed on the way in.
func (u *unpacker) sayOnce() {
	s := u.stats
	if s.Devices > 0 {
		u.log.Info().Int("dropped", s.Devices).Msg("device nodes and fifos in the archive were left out: containers get their own /dev")
	}
	if s.Owned > 0 {
		u.log.Info().Int("entries", s.Owned).Msg("entries owned by other users were made this user's own (container root): unpacking as an ordinary user keeps no other owner")
	}
	if s.Setid > 0 {
		u.log.Info().Int("entries", s.Setid).Msg("setuid and setgid bits were dropped: unpacking as an ordinary user makes every file the user's own")
	}
	if s.BigIDs > 0 {
		u.log.Info().Int("entries", s.BigIDs).Msg("owners above 65535, which no container maps, were made 65534 (nobody)")
	}
}

// ctxReader stops a long copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
