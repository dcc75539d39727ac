package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/rs/zerolog"

	"github.com/guntainer/playground/runtime"
	"github.com/guntainer/playground/server"
	"github.com/guntainer/playground/static"
)

const serveUsage = `Usage: playground [serve] [flags]

Serves the web playground: open the address in a browser and get a shell in
a fresh, isolated container. Every flag can also be set by an environment
variable, PLAYGROUND_ and the flag's name in capitals (PLAYGROUND_LISTEN,
PLAYGROUND_ROOTFS, PLAYGROUND_ORIGINS as a comma-separated list, ...).
SIGINT or SIGTERM ends every session, tears its container down, and exits 0.

Flags:
`

func serveMain(ctx context.Context, args []string, stderr io.Writer) error {
	cfg := defaultServeConfig()
	if err := cfg.fromEnv(getenv); err != nil {
		return err
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.bind(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), serveUsage)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("serve takes no arguments, got %q", fs.Args())
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := newLogger(cfg.LogFormat, cfg.LogLevel, stderr)
	return serve(ctx, cfg, log)
}

func serve(ctx context.Context, cfg serveConfig, log zerolog.Logger) error {
	if n, err := runtime.CleanStateDir(cfg.StateDir); err != nil {
		log.Warn().Err(err).Msg("clean state dir")
	} else if n > 0 {
		log.Info().Int("removed", n).Str("dir", cfg.StateDir).Msg("removed what a previous server left")
	}
	spec := runtime.Spec{
		Rootfs:   cfg.Rootfs,
		Hostname: cfg.Hostname,
		StateDir: cfg.StateDir,
	}
	host, err := withLimits(&spec, cfg.LimitsConfig, cfg.MaxSessions, &log)
	if err != nil {
		return err
	}
	defer host.Close() // after the server and the pool below: removes the sessions' parent cgroup
	// Fail now, loudly, rather than at the first visitor.
	t0 := time.Now()
	if err := runtime.Check(spec); err != nil {
		return fmt.Errorf("cannot start containers with rootfs %q: %w", cfg.Rootfs, err)
	}
	log.Info().Str("rootfs", cfg.Rootfs).Float64("check_ms", float64(time.Since(t0).Microseconds())/1000).Msg("containers work")
	cfg.LimitsConfig.logModes(host, cfg.MaxSessions, log)

	start := server.ContainerStart(spec)
	var pool *server.Pool
	if cfg.Warm > 0 {
		pool = server.NewPool(start, cfg.Warm, log)
		defer pool.Close() // on every way out; idempotent
		start = pool.Start
	}
	srv, err := server.New(server.Config{
		AllowedOrigins: cfg.Origins,
		Credential:     cfg.Credential,
		MaxSessions:    cfg.MaxSessions,
	}, server.Deps{
		Log:    log,
		Start:  start,
		Static: static.FS(),
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	logServing(log, cfg.Listen, ln.Addr()) // listen.go: the URLs to hand out

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info().Msg("shutting down: ending sessions")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Grace)
	defer cancel()
	// Stop taking connections first, then end the sessions (hijacked
	// WebSockets are the server package's, not net/http's).
	_ = hs.Shutdown(sctx) // its only error is the deadline, which srv.Shutdown reports too
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutdown: %w", err)
	} else if err != nil {
		log.Warn().Err(err).Msg("sessions still open at the end of the grace period")
	}
	<-served
	if pool != nil {
		_ = pool.Close() // ends the warm containers; it reports nothing
	}
	log.Info().Msg("stopped")
	return nil
}
