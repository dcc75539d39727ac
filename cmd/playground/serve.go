package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/guntainer/playground/runtime"
	"github.com/guntainer/playground/server"
	"github.com/guntainer/playground/static"
)

const serveUsage = `Usage: playground [serve] [flags]

Serves the web playground: open the address in a browser and get a shell in
a fresh, isolated container. Every flag can also be set by an environment
variable, PLAYGROUND_ and the flag's name in capitals
(PLAYGROUND_LISTEN, PLAYGROUND_IDLE_TIMEOUT, ...); a repeatable flag takes
a comma-separated list (PLAYGROUND_ROOTFS, PLAYGROUND_NET_ALLOW, and in the
plural PLAYGROUND_ORIGINS, PLAYGROUND_ALLOWED_HOSTS). Flags win.
SIGINT or SIGTERM drains: no new sessions, each open one is told, and they
get --drain-timeout to finish; then (or at a second signal) every session is
closed with 1001, its container torn down, and the server exits 0.

Environments (root file systems): --rootfs [NAME=]SOURCE, repeatable, the
first the default; a page picks another with ?env=NAME (the init frame's
"env"). SOURCE is auto, ubuntu, ubuntu:22.04, docker://REF, a directory,
an archive or host (see 'playground rootfs --help'). The default, auto, is
the cached Ubuntu, else Ubuntu downloaded now, else, offline, host: the
host's /usr read-only, with a warning that says how to get Ubuntu. Every
environment is prepared in the background from the start, and checked
with a container once it is; /readyz says 503 with the progress until the
default one is ready, and a session that asks for one still preparing
waits, with its progress shown. PLAYGROUND_ROOTFS is a comma-separated
list of sources.

Auth: on a loopback address anyone who can reach the port may open a
session; on any other address a token is needed (--token, or one generated
and printed in the URL to open, as Jupyter does), unless --auth none.

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
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "route-id" {
			cfg.Routed = true
		}
	})
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
		Hostname: cfg.Hostname,
		StateDir: cfg.StateDir,
		// A session's login shell is its container's PID 1: no init
		// stays resident beside it (its memory and a fork saved).
		ProgramIsInit: true,
	}
	if cfg.MaxSessions == 0 {
		// The server's cap from the machine's size, which the limits'
		// checks (sessions x --pids against RLIMIT_NPROC) must know too.
		cfg.MaxSessions = server.DefaultMaxSessions()
	}
	host, err := withLimits(&spec, cfg.LimitsConfig, cfg.MaxSessions, true, &log)
	if err != nil {
		return err
	}
	defer host.Close() // after the server and the pool below: removes the sessions' parent cgroup
	// Fail now, loudly, rather than at the first visitor: a container on
	// the host rootfs, which needs nothing downloaded. Each environment is
	// checked the same way once it is prepared.
	t0 := time.Now()
	check := spec
	check.Rootfs = runtime.HostRootfs
	if err := runtime.Check(check); err != nil {
		return fmt.Errorf("cannot start containers: %w", err)
	}
	log.Info().Float64("check_ms", float64(time.Since(t0).Microseconds())/1000).Msg("containers work")
	cfg.LimitsConfig.logModes(host, cfg.MaxSessions, log)

	envs, err := openEnvironments(ctx, &cfg, spec, true, log)
	if err != nil {
		return err
	}
	defer envs.Close() // after the pool and the sessions: their trees stay in the cache until then
	var start server.StartFunc = envs.start
	var pool *server.Pool
	if cfg.Warm > 0 {
		// Warm containers of the default environment: the pool's starts
		// wait, as a session's would, until it is ready.
		pool = server.NewPool(start, cfg.Warm, log)
		defer pool.Close() // on every way out; idempotent
		start = pool.Start
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	scfg, err := cfg.serverConfig(ln.Addr(), log)
	if err != nil {
		_ = ln.Close()
		return err
	}
	srv, err := server.New(scfg, server.Deps{
		Log:       log,
		Start:     start,
		Static:    static.FS(),
		Pool:      pool,
		Envs:      envs.set.Names(),
		Ready:     envs.set.Ready,
		EnvStatus: envs.status,
	})
	if err != nil {
		_ = ln.Close()
		return err
	}
	hs := srv.HTTPServer(nil)
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	// The URLs to hand out (listen.go's), each with the token when there is one.
	urls := listenURLs(cfg.Listen, ln.Addr(), net.InterfaceAddrs)
	if scfg.Token != "" {
		for i := range urls {
			urls[i] += "?token=" + scfg.Token
		}
	}
	ev := log.Info().Str("url", urls[0]).Int("max_sessions", srv.MaxSessions()).Strs("envs", envs.set.Names())
	if len(urls) > 1 {
		ev = ev.Strs("urls", urls)
	}
	ev.Msg("serving")
	if scfg.Token != "" && cfg.Token == "" {
		// As Jupyter does: the generated token, in the URL to open.
		log.Info().Str("url", urls[0]).Msg("open the playground at this URL: it carries the access token, generated for this run")
	}

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	// Drain: no new sessions, the open ones told and given the drain
	// timeout to finish; a second signal ends them at once.
	log.Info().Float64("drain_timeout_ms", float64(cfg.DrainTimeout.Microseconds())/1000).Int("sessions", srv.Sessions()).
		Msg("draining: no new sessions; open ones may finish (a second signal ends them now)")
	dctx, dcancel := context.WithTimeout(context.Background(), cfg.DrainTimeout)
	defer dcancel()
	second := make(chan os.Signal, 1)
	signal.Notify(second, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(second)
	go func() {
		select {
		case <-second:
			log.Info().Msg("second signal: ending the sessions now")
			dcancel()
		case <-dctx.Done():
		}
	}()
	if err := srv.Drain(dctx); err != nil {
		log.Info().Err(err).Msg("drain over: ending the sessions left")
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Grace)
	defer cancel()
	// Stop taking connections, then end the sessions (hijacked
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

// serverConfig is the server's configuration from the command line's,
// with the auth the listen address calls for: none on loopback, else a
// token (generated when none was given) unless --auth none says so.
func (c *serveConfig) serverConfig(addr net.Addr, log zerolog.Logger) (server.Config, error) {
	sc := server.Config{
		AllowedOrigins:       c.Origins,
		AllowedHosts:         c.AllowedHosts,
		Credential:           c.Credential,
		Token:                c.Token,
		AuthHeader:           c.AuthHeader,
		AdminToken:           c.AdminToken,
		MaxSessions:          c.MaxSessions,
		MaxSessionsPerClient: orNone(c.MaxSessionsPerClient),
		MaxWatchersPerClient: orNone(c.MaxWatchersPerClient),
		ConnRate:             c.Rate,
		ConnBurst:            c.RateBurst,
		IdleTimeout:          orNever(c.IdleTimeout),
		MaxLifetime:          orNever(c.MaxLifetime),
		ReconnectGrace:       orNever(c.ReconnectGrace),
		RouteID:              c.RouteID,
		Routed:               c.Routed,
	}
	if c.Rate == 0 {
		sc.ConnRate = -1
	}
	for _, p := range c.TrustedProxies {
		for _, q := range strings.Split(p, ",") {
			if q = strings.TrimSpace(q); q != "" {
				sc.TrustedProxies = append(sc.TrustedProxies, q)
			}
		}
	}
	loopback := isLoopback(addr)
	switch {
	case c.Auth == "none":
		if !loopback {
			log.Warn().Str("listen", addr.String()).Msg("--auth none: anyone who reaches this address gets a shell")
		}
	case c.Token != "", c.Credential != "", c.AuthHeader != "":
		// Auth as configured.
	case c.Auth == "token" || !loopback:
		sc.Token = rand.Text()
	}
	if err := sc.Validate(); err != nil {
		return sc, usagef("%v", err)
	}
	return sc, nil
}

// orNever maps the command line's 0 ("never", "off") to the server's -1.
func orNever(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

func orNone(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

func isLoopback(addr net.Addr) bool {
	ta, ok := addr.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}
