package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/guntainer/playground/runtime"
	"github.com/guntainer/playground/runtime/image"
	"github.com/guntainer/playground/server"
)

// environments are the server's root file systems (--rootfs), prepared
// in the background from start (image.Set), each checked with a
// container before it is offered, and the StartFunc that starts a
// session's container on the one it asks for.
type environments struct {
	set     *image.Set
	sources []image.Source
	base    runtime.Spec // hostname, state dir, Host, limits, network
	log     zerolog.Logger
	rep     *image.Reporter

	hostChecked bool     // the start-up check ran on the host rootfs already
	rootOnce    sync.Map // environment name -> struct{}: its user's fallback is logged
}

// openEnvironments opens the cache (when a source needs one) and starts
// preparing every environment. Those that need no preparing, host and a
// directory, are checked at once, and a failure is returned: bad
// configuration fails at start. What needs downloading or unpacking is
// prepared in the background; a failure there is logged, and that
// environment is failed (tried again a while later), the others served.
func openEnvironments(ctx context.Context, cfg *serveConfig, base runtime.Spec, hostChecked bool, log zerolog.Logger) (*environments, error) {
	sources, err := cfg.sources()
	if err != nil {
		return nil, usagef("%v", err)
	}
	var cache *image.Cache
	var texts []string
	for i, src := range sources {
		texts = append(texts, cfg.Rootfs.list[i])
		if src.Kind == image.KindPath {
			if _, err := os.Stat(src.Path); err != nil {
				return nil, fmt.Errorf("environment %s: rootfs: %w", src.Name, err)
			}
		}
		if needsCache(src) && cache == nil {
			if cache, err = image.OpenCache(cfg.Cache, log); err != nil {
				return nil, err
			}
			useSubIDs(cache, base.Host)
		}
	}
	e := &environments{sources: sources, base: base, log: log, hostChecked: hostChecked}
	// A server's stderr is its log: progress goes there as lines, at
	// every change of phase and every few seconds between.
	e.rep = image.NewReporter(os.Stderr, false, log, 5*time.Second)
	if e.set, err = image.NewSet(cache, texts, e.report); err != nil {
		e.rep.Close()
		return nil, usagef("--rootfs: %v", err)
	}
	e.set.Check = e.check
	e.set.Start()
	for _, src := range sources {
		if needsCache(src) {
			continue
		}
		if _, err := e.set.Get(ctx, src.Name, nil); err != nil {
			_ = e.Close()
			return nil, err
		}
	}
	return e, nil
}

// needsCache reports whether src is prepared in the cache: everything but
// host and a directory, which are used where they are.
func needsCache(src image.Source) bool {
	switch src.Kind {
	case image.KindHost:
		return false
	case image.KindPath:
		fi, err := os.Stat(src.Path)
		return err == nil && !fi.IsDir()
	}
	return true
}

// report passes progress to the log, less the steps of no interest.
func (e *environments) report(p image.Progress) {
	switch p.Phase {
	case image.PhaseQueued, image.PhasePreparing, image.PhaseFinishing:
		return // nothing a reader of the log needs
	case image.PhaseReady:
		return // check says it, with what it checked
	}
	e.rep.Report(p)
}

// check starts a container on a prepared environment, as the start-up
// check does on the host rootfs, before the environment is offered: a
// tree without a shell, or one the runtime cannot use, fails here, in
// the log, rather than at a visitor's session.
func (e *environments) check(img *image.Image) error {
	ev := e.log.Info().Str("env", img.Name).Str("source", img.Source.String()).Str("rootfs", img.Dir)
	// (auto's fallback to host has logged its warning: the cache did.)
	if img.Dir != runtime.HostRootfs || !e.hostChecked { // else checked at start
		t0 := time.Now()
		if err := runtime.Check(e.spec(img)); err != nil {
			// The Set fails the environment, and the Reporter logs it.
			return fmt.Errorf("cannot start containers in it: %w", err)
		}
		ev = ev.Float64("check_ms", float64(time.Since(t0).Microseconds())/1000)
	}
	if img.Digest != "" {
		ev = ev.Str("digest", img.Digest)
	}
	ev.Msg("environment ready")
	return nil
}

// spec is a container of the environment img: the image's root file
// system, environment, working directory, user and shell.
func (e *environments) spec(img *image.Image) runtime.Spec {
	s := e.base
	s.Rootfs = img.Dir
	s.Env = append(append([]string{}, e.base.Env...), img.Config.Env...)
	s.Dir = img.Config.WorkingDir
	s.Args = img.Config.Shell
	s.User = img.Config.User
	if !isRoot(s.User) && !e.idRange(img.Dir) {
		// One id mapped (an ordinary user's server without subordinate
		// ids): no user but root exists in the container, and a start as
		// the image's user would fail. Root it is, said once.
		s.User = ""
		if _, said := e.rootOnce.LoadOrStore(img.Name, struct{}{}); !said {
			e.log.Warn().Str("env", img.Name).Str("image_user", img.Config.User).
				Msg("the image's user cannot exist in this server's containers (one id mapped: no /etc/subuid range for the server's user); its sessions run as root")
		}
	}
	return s
}

func (e *environments) idRange(rootfs string) bool {
	return e.base.Host != nil && e.base.Host.IDRange(rootfs)
}

// isRoot reports whether a Spec.User ("UID[:GID]") is container root.
func isRoot(user string) bool {
	u, _, _ := strings.Cut(user, ":")
	n, err := strconv.Atoi(u)
	return user == "" || (err == nil && n == 0)
}

// start is the server's StartFunc: it waits, with progress NOTICEs, for
// the environment the session asks for, then starts a container on it.
func (e *environments) start(ctx context.Context, req server.StartRequest) (server.Terminal, error) {
	var notify image.ProgressFunc
	if req.Notify != nil {
		notify = func(p image.Progress) {
			if p.Phase != image.PhaseFailed {
				req.Notify("info", "preparing the environment: "+p.String())
			}
		}
	}
	img, err := e.set.Get(ctx, req.Env, notify)
	if err != nil {
		if req.Notify != nil && ctx.Err() == nil {
			name := req.Env
			if name == "" {
				name = e.set.Default()
			}
			req.Notify("error", fmt.Sprintf("environment %s could not be prepared; try again later, or another environment", name))
		}
		return nil, err
	}
	spec := e.spec(img)
	spec.Cols, spec.Rows = req.Cols, req.Rows
	return server.StartAbandonable(ctx, func() (server.Terminal, error) {
		c, err := runtime.Start(spec)
		if err != nil {
			return nil, err // a nil *Container must not become a non-nil Terminal
		}
		return c, nil
	})
}

// status is /api/envs's view of the environments.
func (e *environments) status() []server.EnvStatus {
	var out []server.EnvStatus
	for _, st := range e.set.Status() {
		es := server.EnvStatus{Name: st.Name, Source: st.Source}
		switch {
		case st.Image != nil:
			es.State = "ready"
			if st.Image.Warning != "" && st.Image.Dir == runtime.HostRootfs {
				es.Detail = "the host's /usr read-only: Ubuntu could not be downloaded"
			}
		case st.Err != nil && st.Progress.Phase == image.PhaseFailed:
			es.State, es.Detail = "failed", "could not be prepared; the server's log says why"
		default:
			es.State = "preparing"
			if p := st.Progress; p.Phase != image.PhaseQueued {
				es.Detail = strings.TrimPrefix(p.String(), p.Env+": ")
			}
		}
		out = append(out, es)
	}
	return out
}

// Close stops what is still being prepared and releases the trees.
func (e *environments) Close() error {
	err := e.set.Close()
	e.rep.Close()
	return err
}

// useSubIDs makes the cache unpack trees through the subordinate ids when
// the server's containers map them, so that an archive's owners are kept
// inside the container (an ordinary user with /etc/subuid).
func useSubIDs(c *image.Cache, h *runtime.Host) {
	if h == nil || h.SubIDs() == nil {
		return
	}
	c.UseSubIDs(h.SubIDs())
}
