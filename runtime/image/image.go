// Package image turns a source ("ubuntu", "ubuntu:22.04", "docker://REF",
// a directory or archive, "host", "auto") into an environment a container
// can run on: an unpacked root file system in a cache, shared read-only by
// every container as the overlay's lower layer (nothing is copied per
// session), and the image's config (Env, WorkingDir, User, shell).
//
// Downloads are checked against a pinned SHA-256 or an image's digests
// before anything of them becomes a root file system; archives are hostile
// input and unpacked through os.Root with the rules in unpack.go; the
// cache is content-addressed and safe for several processes at once.
//
// A server prepares its environments with a Set, in the background, and
// asks it whether the default one is ready (for /readyz) and for an
// environment by name (waiting, with progress, while it is prepared).
package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/guntainer/playground/runtime"
)

// ErrUnsupported is returned where the cache cannot work (no flock).
var ErrUnsupported = errors.New("image: not supported on this system")

// Image is a prepared environment. Close it when no container will be
// started on it any more: until then the cache will not remove its tree.
type Image struct {
	// Name is the environment's name.
	Name string
	// Source is what it was prepared from.
	Source Source
	// Dir is the root file system for runtime.Spec.Rootfs: an unpacked
	// tree (never written to), or runtime.HostRootfs.
	Dir string
	// Digest is the content's digest ("sha256:..."): of the tarball, the
	// archive or the image manifest; empty for a directory or host.
	Digest string
	// Config is how to run programs in it.
	Config Config
	// Size is the bytes of file content unpacked; 0 when not unpacked.
	Size int64
	// Warning, when set, is why this is not what was asked for: "auto"
	// that fell back to host, with how to get Ubuntu.
	Warning string

	lock io.Closer
}

// Config is how to run programs in an environment, from the image's
// config (docker://) or nothing (other sources).
type Config struct {
	// Env is added to the container's environment ("PATH=...").
	Env []string `json:"env,omitempty"`
	// WorkingDir is the image's working directory; "" for HOME.
	WorkingDir string `json:"working_dir,omitempty"`
	// User is the image's user as numeric "UID:GID", resolved against
	// the rootfs's own /etc/passwd and /etc/group; "" for root.
	User string `json:"user,omitempty"`
	// Shell is the interactive shell's argv when the image names one
	// (its Cmd is a lone shell: ["/bin/zsh", "-l"]); nil for the
	// runtime's default (bash -l, else sh -l).
	Shell []string `json:"shell,omitempty"`
	// Cmd is the image's Entrypoint and Cmd, for information.
	Cmd []string `json:"cmd,omitempty"`
}

// Close lets the cache remove the tree again. Idempotent.
func (img *Image) Close() error {
	if img == nil || img.lock == nil {
		return nil
	}
	err := img.lock.Close()
	img.lock = nil
	return err
}

// Prepare makes src ready to run on: from the cache when it is there
// (no request, nothing unpacked; a docker:// tag is not looked up again),
// else downloaded or unpacked into it. progress, which may be nil, is
// told how it goes.
func (c *Cache) Prepare(ctx context.Context, src Source, progress ProgressFunc) (*Image, error) {
	return c.prepare(ctx, src, progress, false)
}

// Pull is Prepare that looks a docker:// tag up again, as `playground
// rootfs pull` does, to get what the tag names now.
func (c *Cache) Pull(ctx context.Context, src Source, progress ProgressFunc) (*Image, error) {
	return c.prepare(ctx, src, progress, true)
}

func (c *Cache) prepare(ctx context.Context, src Source, progress ProgressFunc, refresh bool) (*Image, error) {
	base := Progress{Env: src.Name, Source: src.String()}
	report := func(ph Phase) {
		if progress != nil {
			p := base
			p.Phase = ph
			progress(p)
		}
	}
	report(PhasePreparing)
	var img *Image
	var err error
	switch src.Kind {
	case KindHost:
		img = &Image{Name: src.Name, Source: src, Dir: runtime.HostRootfs}
	case KindAuto:
		img, err = c.prepareAuto(ctx, src, base, progress)
	case KindUbuntu:
		img, err = c.prepareUbuntu(ctx, src, base, progress, false)
	case KindDocker:
		img, err = c.preparePull(ctx, src, base, progress, refresh)
	case KindPath:
		img, err = c.preparePath(ctx, src, base, progress)
	default:
		err = fmt.Errorf("unknown source kind %q", src.Kind)
	}
	if err != nil {
		err = fmt.Errorf("environment %s (%s): %w", src.Name, src, err)
		if progress != nil {
			p := base
			p.Phase, p.Err = PhaseFailed, err
			progress(p)
		}
		return nil, err
	}
	report(PhaseReady)
	return img, nil
}

// prepareAuto is the cached Ubuntu, else Ubuntu downloaded now, else host
// with a warning that says how to get Ubuntu.
func (c *Cache) prepareAuto(ctx context.Context, src Source, base Progress, progress ProgressFunc) (*Image, error) {
	ub := Source{Kind: KindUbuntu, Version: DefaultUbuntu, Name: src.Name}
	img, err := c.prepareUbuntu(ctx, ub, base, progress, true)
	if err == nil {
		img.Source = src
		return img, nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	rel, _ := findRelease(c.Releases, DefaultUbuntu, c.Arch)
	img = &Image{Name: src.Name, Source: src, Dir: runtime.HostRootfs}
	img.Warning = fmt.Sprintf("environment %s: Ubuntu %s could not be had (%v); using the host's /usr, /bin and /lib read-only instead. "+
		"To get Ubuntu, run `playground rootfs pull ubuntu` where %s is reachable, or fetch that file elsewhere and start with --rootfs PATH-OF-IT",
		src.Name, DefaultUbuntu, err, rel.URL)
	c.Log.Warn().Msg(img.Warning)
	return img, nil
}

// prepareUbuntu is the pinned ubuntu-base tarball, downloaded, verified
// and unpacked once. With probe (auto), a download first checks, within
// ProbeTimeout, that the mirror can be reached at all: offline, auto
// falls back to host at once rather than after the download's retries.
func (c *Cache) prepareUbuntu(ctx context.Context, src Source, base Progress, progress ProgressFunc, probe bool) (*Image, error) {
	rel, ok := findRelease(c.Releases, src.Version, c.Arch)
	if !ok {
		return nil, fmt.Errorf("no ubuntu-base %s is pinned for %s", src.Version, c.Arch)
	}
	digest := "sha256:" + rel.SHA256
	key, err := keyOf(digest)
	if err != nil {
		return nil, err
	}
	canonical := Source{Kind: KindUbuntu, Version: src.Version, Name: "ubuntu"}
	if src.Version != DefaultUbuntu {
		canonical.Name = "ubuntu-" + src.Version
	}
	unlock, err := c.lockSource(ctx, canonical.String(), base, progress)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if img, err := c.open(ctx, key, src); img != nil || err != nil {
		return img, err
	}
	part := c.path("downloads", key+".part")
	if probe {
		if err := c.probe(ctx, rel.URL); err != nil {
			return nil, err
		}
	}
	if err := c.download(ctx, rel.URL, rel.SHA256, part, base, progress); err != nil {
		return nil, err
	}
	img, err := c.unpackFile(ctx, part, filepath.Base(rel.URL), key, digest, canonical, src, base, progress)
	if err != nil {
		return nil, err
	}
	_ = os.Remove(part) // unpacked: the tarball is of no more use
	if err := c.writeRef(ref{Source: canonical.String(), Name: canonical.Name, Digest: digest}); err != nil {
		c.Log.Warn().Err(err).Msg("cache: write ref")
	}
	return img, nil
}

// preparePath is a directory, used in place, or an archive, unpacked into
// the cache once (again only when the file changes).
func (c *Cache) preparePath(ctx context.Context, src Source, base Progress, progress ProgressFunc) (*Image, error) {
	fi, err := os.Stat(src.Path)
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return &Image{Name: src.Name, Source: src, Dir: src.Path}, nil
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: neither a directory nor an archive file", src.Path)
	}
	unlock, err := c.lockSource(ctx, src.String(), base, progress)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if r, err := c.readRef(src.String()); err == nil && r != nil && r.File != nil && *r.File == *identity(fi) {
		if key, err := keyOf(r.Digest); err == nil {
			if img, err := c.open(ctx, key, src); img != nil || err != nil {
				return img, err
			}
		}
	}
	img, err := c.unpackFile(ctx, src.Path, filepath.Base(src.Path), "", "", src, src, base, progress)
	if err != nil {
		return nil, err
	}
	// The identity from before reading: a file changed while it was read
	// does not match it, and is read again next time.
	if err := c.writeRef(ref{Source: src.String(), Name: src.Name, Digest: img.Digest, File: identity(fi)}); err != nil {
		c.Log.Warn().Err(err).Msg("cache: write ref")
	}
	return img, nil
}

// lockSource takes the exclusive lock of a source, reporting the wait.
func (c *Cache) lockSource(ctx context.Context, source string, base Progress, progress ProgressFunc) (func(), error) {
	f, err := lockFile(ctx, c.path("locks", "src-"+refName(source)+".lock"), true, func() {
		if progress != nil {
			p := base
			p.Phase = PhaseWaiting
			progress(p)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("cache lock: %w", err)
	}
	return func() { _ = f.Close() }, nil // closing drops the lock
}
