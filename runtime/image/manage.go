package image

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Entry is one environment in the cache, as `playground rootfs ls` shows
// it.
type Entry struct {
	Name     string    // from the source that made it
	Sources  []string  // every source that names it now
	Digest   string    // sha256:HEX
	Size     int64     // bytes of file content
	Entries  int       // files, directories, links
	Created  time.Time // when it was unpacked
	LastUsed time.Time // when it was last prepared
	Dir      string    // the root file system
	InUse    bool      // a running playground holds it
}

// List is the cache's environments, most recently used first.
func (c *Cache) List() ([]Entry, error) {
	es, err := os.ReadDir(c.path("rootfs"))
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	refs, err := c.refs()
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	var out []Entry
	for _, e := range es {
		dir := c.path("rootfs", e.Name())
		m, err := readMeta(dir)
		if err != nil {
			continue // not one of ours, or being removed
		}
		en := Entry{Name: m.Name, Digest: m.Digest, Size: m.Size, Entries: m.Entries, Created: m.Created, Dir: filepath.Join(dir, "root")}
		if fi, err := os.Stat(filepath.Join(dir, "used")); err == nil {
			en.LastUsed = fi.ModTime()
		}
		for _, r := range refs {
			if r.Digest == m.Digest {
				en.Sources = append(en.Sources, r.Source)
			}
		}
		sort.Strings(en.Sources)
		if len(en.Sources) == 0 {
			en.Sources = []string{m.Source}
		}
		if lock, ok, err := tryLock(c.path("locks", e.Name()+".lock"), true); err == nil {
			en.InUse = !ok
			if ok {
				_ = lock.Close() // only looking
			}
		}
		out = append(out, en)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].LastUsed.After(out[j].LastUsed) })
	return out, nil
}

// Remove removes the environments that arg names: a name, a source (as
// given to --rootfs), or a digest or a prefix of its hex of at least 6
// digits. An environment in use by a running playground is not removed:
// that is an error, after the others are gone.
func (c *Cache) Remove(arg string) ([]Entry, error) {
	all, err := c.List()
	if err != nil {
		return nil, err
	}
	canon := arg
	if src, err := ParseSource(arg); err == nil {
		canon = src.String()
	}
	var match []Entry
	for _, e := range all {
		hx := strings.TrimPrefix(e.Digest, "sha256:")
		ok := e.Name == arg || e.Digest == arg || len(strings.TrimPrefix(arg, "sha256:")) >= 6 && strings.HasPrefix(hx, strings.TrimPrefix(arg, "sha256:"))
		for _, s := range e.Sources {
			ok = ok || s == arg || s == canon
		}
		if ok {
			match = append(match, e)
		}
	}
	if len(match) == 0 {
		return nil, fmt.Errorf("no environment in %s matches %q (see 'playground rootfs ls')", c.dir, arg)
	}
	var removed []Entry
	var errs []error
	for _, e := range match {
		if err := c.removeEntry(e); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, e)
	}
	return removed, errors.Join(errs...)
}

func (c *Cache) removeEntry(e Entry) error {
	key, err := keyOf(e.Digest)
	if err != nil {
		return err
	}
	if err := c.discard(key); err != nil {
		return fmt.Errorf("%s (%s): %w", e.Name, e.Digest, err)
	}
	refs, _ := c.refs() // a ref left behind points at nothing and is pruned
	for _, r := range refs {
		if r.Digest == e.Digest {
			_ = os.Remove(c.path("refs", refName(r.Source)+".json")) // see above
		}
	}
	return nil
}

// PruneResult says what Prune removed.
type PruneResult struct {
	Removed   []Entry // environments removed
	Leftovers int     // work directories and partial downloads of processes that are gone
	Refs      int     // refs to environments no longer cached
	Bytes     int64   // of file content, in the removed environments
}

// Prune removes what nothing needs: work directories of processes that
// are gone, unfinished downloads nobody is resuming, refs to nothing, and
// environments that no source names any more (an image tag that moved).
// With all, it also removes every environment not in use; with unusedFor
// above zero, those not used for that long.
func (c *Cache) Prune(all bool, unusedFor time.Duration) (PruneResult, error) {
	var res PruneResult
	res.Leftovers += c.cleanTmp()
	if es, err := os.ReadDir(c.path("downloads")); err == nil {
		for _, e := range es {
			// A download is made under its source's lock: one that is
			// free means nobody is at it now.
			if c.downloading(strings.TrimSuffix(e.Name(), ".part")) {
				continue
			}
			if os.Remove(c.path("downloads", e.Name())) == nil {
				res.Leftovers++
			}
		}
	}
	entries, err := c.List()
	if err != nil {
		return res, err
	}
	have := map[string]bool{}
	var errs []error
	for _, e := range entries {
		have[e.Digest] = true
		refs, _ := c.refs()
		named := false
		for _, r := range refs {
			named = named || r.Digest == e.Digest
		}
		old := unusedFor > 0 && !e.LastUsed.IsZero() && time.Since(e.LastUsed) > unusedFor
		if (all || old || !named) && !e.InUse {
			if err := c.removeEntry(e); err != nil {
				errs = append(errs, err)
				continue
			}
			res.Removed = append(res.Removed, e)
			res.Bytes += e.Size
			delete(have, e.Digest)
		}
	}
	refs, _ := c.refs()
	for _, r := range refs {
		if !have[r.Digest] {
			if err := os.Remove(c.path("refs", refName(r.Source)+".json")); err == nil || errors.Is(err, fs.ErrNotExist) {
				res.Refs++
			}
		}
	}
	return res, errors.Join(errs...)
}

// downloading reports whether some process holds the source lock of the
// Ubuntu release whose download key is key.
func (c *Cache) downloading(key string) bool {
	for _, r := range c.Releases {
		if "sha256-"+r.SHA256 != key {
			continue
		}
		src := Source{Kind: KindUbuntu, Version: r.Version}
		lock, ok, err := tryLock(c.path("locks", "src-"+refName(src.String())+".lock"), true)
		if err != nil || !ok {
			return true
		}
		_ = lock.Close()
	}
	return false
}
