package image

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	goruntime "runtime"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// preparePull is an image from a registry, for this machine's platform,
// flattened layer by layer into one tree (whiteouts and opaque
// directories honoured) and cached by its manifest digest. A tag once
// pulled is not looked up again unless refresh (rootfs pull) says so.
func (c *Cache) preparePull(ctx context.Context, src Source, base Progress, progress ProgressFunc, refresh bool) (*Image, error) {
	ref, err := name.ParseReference(src.Ref)
	if err != nil {
		return nil, err
	}
	unlock, err := c.lockSource(ctx, src.String(), base, progress)
	if err != nil {
		return nil, err
	}
	defer unlock()
	_, byDigest := ref.(name.Digest)
	if !refresh || byDigest {
		if r, err := c.readRef(src.String()); err == nil && r != nil {
			if key, err := keyOf(r.Digest); err == nil {
				if img, err := c.open(ctx, key, src); img != nil || err != nil {
					return img, err
				}
			}
		}
	}
	if progress != nil {
		p := base
		p.Phase = PhaseResolving
		progress(p)
	}
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(c.Keychain),
		remote.WithPlatform(v1.Platform{OS: "linux", Architecture: goruntime.GOARCH}),
	}
	if c.Transport != nil {
		opts = append(opts, remote.WithTransport(c.Transport))
	}
	img, err := remote.Image(ref, opts...)
	if err != nil {
		return nil, err
	}
	dg, err := img.Digest()
	if err != nil {
		return nil, err
	}
	digest := dg.String()
	key, err := keyOf(digest)
	if err != nil {
		return nil, err
	}
	if cached, err := c.open(ctx, key, src); cached != nil || err != nil {
		if cached != nil {
			c.saveRef(src, digest)
		}
		return cached, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	if cf.OS != "" && cf.OS != "linux" || cf.Architecture != "" && cf.Architecture != goruntime.GOARCH {
		return nil, fmt.Errorf("image is for %s/%s, this machine is linux/%s", cf.OS, cf.Architecture, goruntime.GOARCH)
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	var total int64
	for _, l := range layers {
		n, err := l.Size()
		if err != nil {
			return nil, err
		}
		if n > c.Limits.MaxDownload {
			return nil, fmt.Errorf("a layer of %s is larger than the %s limit", HumanBytes(n), HumanBytes(c.Limits.MaxDownload))
		}
		total += n
	}
	tmp, err := c.newTemp()
	if err != nil {
		return nil, err
	}
	done := false
	defer func() {
		if !done {
			_ = c.removeTree(tmp) // nothing half pulled stays
		}
	}()
	u, err := newUnpacker(filepath.Join(tmp, "root"), c.Owners, c.Limits, c.Log.With().Str("image", src.Ref).Logger())
	if err != nil {
		return nil, err
	}
	defer u.close()
	m := newMeter(progress, base, PhasePulling, total)
	for i, l := range layers {
		ld, err := l.Digest()
		if err != nil {
			return nil, err
		}
		archive := fmt.Sprintf("%s layer %d of %d (%s)", src.Ref, i+1, len(layers), ld)
		if err := c.unpackLayer(ctx, u, l, archive, m); err != nil {
			return nil, err
		}
	}
	m.end()
	ic := imageConfig{Env: cf.Config.Env, WorkingDir: cf.Config.WorkingDir, User: cf.Config.User, Entrypoint: cf.Config.Entrypoint, Cmd: cf.Config.Cmd}
	cfg, err := c.finishTree(u, base, progress, &ic)
	if err != nil {
		return nil, &UnpackError{Archive: src.Ref, Err: err}
	}
	out, err := c.install(ctx, tmp, key, Meta{Digest: digest, Kind: KindDocker, Source: src.String(), Name: src.Name, Size: u.stats.Bytes, Entries: u.stats.Entries, Config: cfg}, src)
	if err != nil {
		return nil, err
	}
	done = true
	c.saveRef(src, digest)
	return out, nil
}

func (c *Cache) saveRef(src Source, digest string) {
	if err := c.writeRef(ref{Source: src.String(), Name: src.Name, Digest: digest}); err != nil {
		c.Log.Warn().Err(err).Msg("cache: write ref")
	}
}

// unpackLayer streams one layer from the registry into the tree. The
// compressed stream is checked against the layer's digest as it is read
// (go-containerregistry's verifying reader), to its very end: what
// follows the tar stream is drained, so a wrong digest fails the pull.
func (c *Cache) unpackLayer(ctx context.Context, u *unpacker, l v1.Layer, archive string, m *meter) error {
	rc, err := l.Compressed()
	if err != nil {
		return &UnpackError{Archive: archive, Err: err}
	}
	defer rc.Close()
	cr := &countingReader{r: rc, m: m}
	d, err := decompress(cr, true)
	if err != nil {
		return &UnpackError{Archive: archive, Err: err}
	}
	defer d.Close()
	u.startLayer()
	if err := u.unpack(ctx, d, archive); err != nil {
		return err
	}
	if err := drain(d, maxTrailing); err != nil {
		return &UnpackError{Archive: archive, Err: fmt.Errorf("after the layer's end: %w", err)}
	}
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return &UnpackError{Archive: archive, Err: err}
	}
	return nil
}
