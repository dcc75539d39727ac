package image

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/rs/zerolog"

	"github.com/guntainer/playground/runtime"
)

// The cache, content-addressed by digest (a tarball's or archive's
// SHA-256, an image's manifest digest):
//
//	DIR/                      0700, owned by the server's user
//	  rootfs/sha256-HEX/      one complete environment, moved here whole
//	    root/                 the unpacked tree: the overlay's lower layer
//	    meta.json             digest, source, size, image config
//	    used                  its mtime is when it was last used
//	  refs/HASH.json          a source ("docker://python:3.12") -> its digest
//	  downloads/KEY.part      a download not yet verified (resumable)
//	  locks/                  flock files
//	  tmp/PID-RAND/           an unpack in progress, removed on failure
//
// Nothing becomes a rootfs/ entry but a tree unpacked whole from verified
// bytes: it is built under tmp/ and renamed into place at the end, so a
// crash, a bad archive or a wrong checksum leaves at most a tmp/ entry,
// which the next start (or prune) removes once its process is gone.
//
// Locks: preparing a source holds an exclusive lock on the source, so two
// processes preparing it at once do the work once (the second waits and
// finds it done). Using a tree holds a shared lock on it, for as long as
// the Image is open; rm and prune take it exclusively and refuse a tree
// in use.

const metaFormat = 1

// Cache is a directory of prepared environments. Its fields are set by
// OpenCache and may be changed before first use (tests swap Releases and
// the HTTP client); after that it is safe for concurrent use.
type Cache struct {
	dir string

	// Owners says who owns unpacked files: DefaultOwners(), or
	// SubIDOwners (UseSubIDs).
	Owners Owners
	// SubIDs are the subordinate ids of SubIDOwners; nil otherwise.
	SubIDs *runtime.SubIDs
	// Limits bound archives and downloads.
	Limits Limits
	// Releases is the table of pinned Ubuntu tarballs: UbuntuReleases.
	Releases []Release
	// Arch is the Debian architecture to fetch: this machine's.
	Arch string
	// Client makes downloads: bounded redirects, time limits.
	Client *http.Client
	// Keychain gives registry credentials: the docker config and its
	// credential helpers (authn.DefaultKeychain).
	Keychain authn.Keychain
	// Transport carries registry requests; nil is go-containerregistry's
	// default.
	Transport http.RoundTripper
	// Retries is how many times an interrupted download is resumed: 3.
	Retries int
	// Backoff is the wait before the first retry, doubling after: 1 s.
	Backoff time.Duration
	// StallTimeout ends a download that receives nothing for so long: 60 s.
	StallTimeout time.Duration
	// ProbeTimeout bounds auto's check that the Ubuntu mirror can be
	// reached before it downloads (DefaultProbeTimeout): offline, auto
	// uses host after at most this long.
	ProbeTimeout time.Duration
	// Log gets what is worth a line: a fallback, a retry, what an unpack
	// changed.
	Log zerolog.Logger
}

// DefaultCacheDir is $XDG_CACHE_HOME/playground (~/.cache/playground), or
// /var/lib/playground as root.
func DefaultCacheDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/playground"
	}
	if d := os.Getenv("XDG_CACHE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "playground")
	}
	if h, err := os.UserHomeDir(); err == nil && h != "" && h != "/" {
		return filepath.Join(h, ".cache", "playground")
	}
	return filepath.Join(os.TempDir(), "playground-cache-"+strconv.Itoa(os.Geteuid()))
}

// OpenCache opens (making it if need be) the cache at dir. dir must be a
// directory owned by this user; its mode is made 0700. Leftovers of
// processes that are gone are removed.
func OpenCache(dir string, log zerolog.Logger) (*Cache, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("cache %s: %w", dir, err)
	}
	if strings.ContainsAny(abs, ",:\\") {
		return nil, fmt.Errorf("cache %s: path must not contain ',', ':' or '\\' (overlayfs option syntax)", abs)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	if err := checkOwnDir(abs); err != nil {
		return nil, err
	}
	for _, d := range []string{"rootfs", "refs", "downloads", "locks", "tmp"} {
		if err := os.Mkdir(filepath.Join(abs, d), 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("cache: %w", err)
		}
	}
	c := &Cache{
		dir:          abs,
		Owners:       DefaultOwners(),
		Releases:     UbuntuReleases,
		Arch:         hostArch(),
		Client:       newHTTPClient(),
		Keychain:     authn.DefaultKeychain,
		Retries:      3,
		Backoff:      time.Second,
		StallTimeout: 60 * time.Second,
		ProbeTimeout: DefaultProbeTimeout,
		Log:          log,
	}
	c.Limits = c.Limits.withDefaults()
	c.cleanTmp()
	return c, nil
}

// Dir is the cache's directory.
func (c *Cache) Dir() string { return c.dir }

func (c *Cache) client() *http.Client {
	if c.Client == nil {
		return newHTTPClient()
	}
	return c.Client
}

func (c *Cache) path(p ...string) string { return filepath.Join(append([]string{c.dir}, p...)...) }

// keyOf is the cache key of a digest "sha256:HEX": "sha256-HEX".
func keyOf(digest string) (string, error) {
	alg, hx, ok := strings.Cut(digest, ":")
	if !ok || alg != "sha256" || len(hx) != 64 {
		return "", fmt.Errorf("digest %q: want sha256:<64 hex digits>", digest)
	}
	if _, err := hex.DecodeString(hx); err != nil {
		return "", fmt.Errorf("digest %q: %w", digest, err)
	}
	return "sha256-" + strings.ToLower(hx), nil
}

// Meta is what the cache records about a tree.
type Meta struct {
	Format  int       `json:"format"`
	Digest  string    `json:"digest"` // sha256:HEX
	Kind    Kind      `json:"kind"`
	Source  string    `json:"source"` // the source that made it
	Name    string    `json:"name"`   // the name derived from that source
	Size    int64     `json:"size"`   // bytes of file content
	Entries int       `json:"entries"`
	Owners  string    `json:"owners"` // "keep" or "own"
	Created time.Time `json:"created"`
	Config  Config    `json:"config"`
}

// ownersName is the owner mode trees are unpacked in, as meta.json records
// it: a tree of another mode is prepared again.
func (c *Cache) ownersName() string {
	switch {
	case c.Owners == KeepOwners:
		return "keep"
	case c.Owners == SubIDOwners && c.SubIDs != nil:
		return fmt.Sprintf("subids:%d:%d", c.SubIDs.UIDBase, c.SubIDs.GIDBase)
	}
	return "own"
}

// UseSubIDs makes the cache unpack through the subordinate ids s
// (SubIDOwners), for a server whose containers map them: the archives'
// owners are kept inside its containers. Trees unpacked otherwise are
// prepared again when next asked for. Call it before the cache is used.
func (c *Cache) UseSubIDs(s *runtime.SubIDs) {
	c.SubIDs, c.Owners = s, SubIDOwners
	c.cleanTmp() // what a crashed predecessor left may be theirs
}

// ref maps a source to the digest it was last prepared as. For an archive
// on disk it also holds the file's identity then, so an unchanged file is
// not read again.
type ref struct {
	Source  string    `json:"source"`
	Name    string    `json:"name"`
	Digest  string    `json:"digest"`
	File    *fileID   `json:"file,omitempty"`
	Updated time.Time `json:"updated"`
}

func refName(source string) string {
	h := sha256.Sum256([]byte(source))
	return hex.EncodeToString(h[:16])
}

func (c *Cache) readRef(source string) (*ref, error) {
	b, err := os.ReadFile(c.path("refs", refName(source)+".json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r ref
	if err := json.Unmarshal(b, &r); err != nil || r.Source != source {
		return nil, nil // a damaged ref is as good as none: the source is prepared again
	}
	return &r, nil
}

func (c *Cache) writeRef(r ref) error {
	r.Updated = time.Now().UTC()
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(c.path("refs", refName(r.Source)+".json"), b)
}

func (c *Cache) refs() ([]ref, error) {
	es, err := os.ReadDir(c.path("refs"))
	if err != nil {
		return nil, err
	}
	var out []ref
	for _, e := range es {
		b, err := os.ReadFile(c.path("refs", e.Name()))
		if err != nil {
			continue
		}
		var r ref
		if json.Unmarshal(b, &r) == nil && r.Source != "" {
			out = append(out, r)
		}
	}
	return out, nil
}

// writeFileAtomic writes p through a temporary name and a rename, so a
// reader sees the old file or the new one, never half of one.
func writeFileAtomic(p string, b []byte) error {
	tmp := p + ".tmp-" + strconv.Itoa(os.Getpid()) + "-" + randHex(4)
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		_ = os.Remove(tmp) // half written
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		_ = os.Remove(tmp) // not renamed: ours alone
		return err
	}
	return nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails
	return hex.EncodeToString(b)
}

func readMeta(dir string) (*Meta, error) {
	b, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil {
		return nil, err
	}
	var m Meta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "meta.json"), err)
	}
	return &m, nil
}

// open returns the tree of key, holding a shared lock on it, or nil when
// the cache has none (or one of an older format, or unpacked for other
// owners).
func (c *Cache) open(ctx context.Context, key string, src Source) (*Image, error) {
	dir := c.path("rootfs", key)
	if _, err := os.Stat(filepath.Join(dir, "meta.json")); err != nil {
		return nil, nil
	}
	lock, err := lockFile(ctx, c.path("locks", key+".lock"), false, nil)
	if err != nil {
		return nil, err
	}
	m, err := readMeta(dir)
	if err != nil || m.Format != metaFormat || m.Owners != c.ownersName() {
		_ = lock.Close() // not ours to use
		if err == nil {
			c.Log.Info().Str("digest", m.Digest).Msg("cached tree is of another format or owner mode; preparing it again")
			_ = c.discard(key)
		}
		return nil, nil
	}
	now := time.Now()
	_ = os.Chtimes(filepath.Join(dir, "used"), now, now) // "last used" is a nicety
	return &Image{
		Name:   src.Name,
		Source: src,
		Dir:    filepath.Join(dir, "root"),
		Digest: m.Digest,
		Config: m.Config,
		Size:   m.Size,
		lock:   lock,
	}, nil
}

// newTemp makes an empty work directory under tmp/, with root/ in it.
func (c *Cache) newTemp() (string, error) {
	d := c.path("tmp", strconv.Itoa(os.Getpid())+"-"+randHex(6))
	if err := os.Mkdir(d, 0o700); err != nil {
		return "", fmt.Errorf("cache: %w", err)
	}
	if err := os.Mkdir(filepath.Join(d, "root"), 0o755); err != nil {
		_ = os.RemoveAll(d) // just made: ours
		return "", fmt.Errorf("cache: %w", err)
	}
	return d, nil
}

// install moves a finished work directory into the cache as key, with its
// meta, and opens it. When another process installed the same content
// meanwhile, ours is thrown away and theirs used.
func (c *Cache) install(ctx context.Context, tmp, key string, m Meta, src Source) (*Image, error) {
	m.Format = metaFormat
	m.Owners = c.ownersName()
	m.Created = time.Now().UTC()
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(tmp, "meta.json"), b, 0o600); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "used"), nil, 0o600); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	if err := syncTree(filepath.Join(tmp, "root")); err != nil {
		return nil, fmt.Errorf("cache: sync: %w", err)
	}
	// A shared lock first, so that an rm cannot slip in between the
	// rename and our use.
	lock, err := lockFile(ctx, c.path("locks", key+".lock"), false, nil)
	if err != nil {
		return nil, err
	}
	final := c.path("rootfs", key)
	if err := os.Rename(tmp, final); err != nil {
		if !errors.Is(err, fs.ErrExist) && !errors.Is(err, errNotEmpty) {
			_ = lock.Close()
			return nil, fmt.Errorf("cache: install %s: %w", key, err)
		}
		_ = c.removeTree(tmp) // the same content is there already
	}
	_ = lock.Close() // open takes its own
	img, err := c.open(ctx, key, src)
	if err == nil && img == nil {
		err = fmt.Errorf("cache: %s vanished after install", key)
	}
	return img, err
}

// discard removes the tree of key if nobody uses it.
func (c *Cache) discard(key string) error {
	lock, ok, err := tryLock(c.path("locks", key+".lock"), true)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%s is in use by a running playground", key)
	}
	defer lock.Close()
	final := c.path("rootfs", key)
	gone := c.path("tmp", strconv.Itoa(os.Getpid())+"-rm-"+randHex(6))
	// Out of sight at once, then removed at leisure.
	if err := os.Rename(final, gone); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	return c.removeTree(gone)
}

// cleanTmp removes tmp/ entries whose process is gone.
func (c *Cache) cleanTmp() int {
	es, err := os.ReadDir(c.path("tmp"))
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range es {
		pid, _, ok := strings.Cut(e.Name(), "-")
		p, err := strconv.Atoi(pid)
		if !ok || err != nil || p <= 0 || p == os.Getpid() || processAlive(p) {
			continue
		}
		if c.removeTree(c.path("tmp", e.Name())) == nil {
			n++
		}
	}
	return n
}

// removeTree removes a tree of the cache: with removeTree, else, for a
// tree of the subordinate ids, which the server's user cannot remove, with
// their helper.
func (c *Cache) removeTree(p string) error {
	err := removeTree(p)
	if err != nil && c.SubIDs != nil && errors.Is(err, fs.ErrPermission) {
		err = c.SubIDs.RemoveTree(p)
	}
	return err
}

// removeTree removes a tree the way os.RemoveAll does, first making its
// directories writable where an ordinary user's unpack made them
// read-only (a 0555 /usr/lib/...).
func removeTree(p string) error {
	err := os.RemoveAll(p)
	if err == nil || !errors.Is(err, fs.ErrPermission) {
		return err
	}
	_ = filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		if d != nil && d.IsDir() {
			_ = os.Chmod(q, 0o700) // best effort; RemoveAll says what is left
		}
		return nil
	})
	return os.RemoveAll(p)
}

// checkOwnDir checks that dir is a directory of this user and makes its
// mode 0700.
func checkOwnDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("cache %s: not a directory", dir)
	}
	if uid, ok := fileOwner(fi); ok && uid != os.Geteuid() {
		return fmt.Errorf("cache %s: owned by uid %d, not by this user (uid %d)", dir, uid, os.Geteuid())
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("cache: %w", err)
		}
	}
	return nil
}
