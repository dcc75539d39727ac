package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/guntainer/playground/runtime"
	"github.com/guntainer/playground/runtime/image"
	"github.com/guntainer/playground/server"
)

// serveConfig is the serve command's configuration: defaults in code, then
// PLAYGROUND_* environment variables (read here and only here), then flags.
type serveConfig struct {
	Listen       string
	Rootfs       sourceList // the environments, the first the default
	Cache        string     // the cache of prepared environments
	Hostname     string
	LogFormat    string
	LogLevel     string
	Origins      stringList
	Credential   string
	MaxSessions  int
	Warm         int
	LimitsConfig limitsConfig // --memory, --pids, --cpus, --disk, --net, --net-allow: limits.go
	StateDir     string
	Grace        time.Duration

	// Sessions (server/): auth, hosts, limits, drain.
	Auth                 string // auto, token or none
	Token                string
	AuthHeader           string
	AdminToken           string
	AllowedHosts         stringList
	TrustedProxies       stringList
	IdleTimeout          time.Duration
	MaxLifetime          time.Duration
	ReconnectGrace       time.Duration
	MaxSessionsPerClient int
	MaxWatchersPerClient int
	Rate                 float64
	RateBurst            int
	DrainTimeout         time.Duration
	RouteID              string
	Routed               bool // the route id was given: one of several servers behind a routing proxy
}

func defaultServeConfig() serveConfig {
	return serveConfig{
		Listen:       "127.0.0.1:8080",
		Rootfs:       sourceList{list: []string{"auto"}},
		Cache:        defaultCacheDir(),
		Hostname:     "playground",
		LogFormat:    logAuto,
		LogLevel:     "info",
		LimitsConfig: defaultLimitsConfig(),
		StateDir:     runtime.DefaultStateDir(),
		Grace:        10 * time.Second,
		Warm:         2,

		Auth:                 "auto",
		IdleTimeout:          server.DefaultIdleTimeout,
		MaxLifetime:          server.DefaultMaxLifetime,
		ReconnectGrace:       server.DefaultReconnectGrace,
		MaxSessionsPerClient: server.DefaultMaxSessionsPerClient,
		MaxWatchersPerClient: server.DefaultMaxWatchersPerClient,
		Rate:                 server.DefaultConnRate,
		RateBurst:            server.DefaultConnBurst,
		DrainTimeout:         10 * time.Minute,
		RouteID:              hostname(),
	}
}

// hostname is the machine's name, the default route id; "" if unknown.
func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	return h
}

// fromEnv overrides defaults with PLAYGROUND_* variables, so a deployment
// can configure the server without flags.
func (c *serveConfig) fromEnv(getenv func(string) string) error {
	str := func(name string, dst *string) {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
	str("PLAYGROUND_LISTEN", &c.Listen)
	if v := getenv("PLAYGROUND_ROOTFS"); v != "" {
		c.Rootfs = sourceList{}
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				c.Rootfs.list = append(c.Rootfs.list, s)
			}
		}
	}
	str("PLAYGROUND_CACHE", &c.Cache)
	str("PLAYGROUND_HOSTNAME", &c.Hostname)
	str("PLAYGROUND_LOG_FORMAT", &c.LogFormat)
	str("PLAYGROUND_LOG_LEVEL", &c.LogLevel)
	str("PLAYGROUND_CREDENTIAL", &c.Credential)
	str("PLAYGROUND_STATE_DIR", &c.StateDir)
	if v := getenv("PLAYGROUND_ORIGINS"); v != "" {
		c.Origins = strings.Split(v, ",")
	}
	str("PLAYGROUND_AUTH", &c.Auth)
	str("PLAYGROUND_TOKEN", &c.Token)
	str("PLAYGROUND_AUTH_HEADER", &c.AuthHeader)
	str("PLAYGROUND_ADMIN_TOKEN", &c.AdminToken)
	str("PLAYGROUND_ROUTE_ID", &c.RouteID)
	c.Routed = getenv("PLAYGROUND_ROUTE_ID") != ""
	if v := getenv("PLAYGROUND_ALLOWED_HOSTS"); v != "" {
		c.AllowedHosts = strings.Split(v, ",")
	}
	if v := getenv("PLAYGROUND_TRUSTED_PROXIES"); v != "" {
		c.TrustedProxies = strings.Split(v, ",")
	}
	for _, d := range []struct {
		name string
		dst  *time.Duration
	}{
		{"PLAYGROUND_IDLE_TIMEOUT", &c.IdleTimeout},
		{"PLAYGROUND_MAX_LIFETIME", &c.MaxLifetime},
		{"PLAYGROUND_RECONNECT_GRACE", &c.ReconnectGrace},
		{"PLAYGROUND_DRAIN_TIMEOUT", &c.DrainTimeout},
		{"PLAYGROUND_SHUTDOWN_GRACE", &c.Grace},
	} {
		if v := getenv(d.name); v != "" {
			dur, err := time.ParseDuration(v)
			if err != nil {
				return usagef("%s=%q: not a duration such as 30m", d.name, v)
			}
			*d.dst = dur
		}
	}
	for _, n := range []struct {
		name string
		dst  any
	}{
		{"PLAYGROUND_MAX_SESSIONS_PER_CLIENT", &c.MaxSessionsPerClient},
		{"PLAYGROUND_MAX_WATCHERS_PER_CLIENT", &c.MaxWatchersPerClient},
		{"PLAYGROUND_RATE", &c.Rate},
		{"PLAYGROUND_RATE_BURST", &c.RateBurst},
	} {
		if v := getenv(n.name); v != "" {
			if _, err := fmt.Sscan(v, n.dst); err != nil {
				return usagef("%s=%q: not a number", n.name, v)
			}
		}
	}
	if v := getenv("PLAYGROUND_MAX_SESSIONS"); v != "" {
		if _, err := fmt.Sscan(v, &c.MaxSessions); err != nil {
			return usagef("PLAYGROUND_MAX_SESSIONS=%q: not a number", v)
		}
	}
	if v := getenv("PLAYGROUND_WARM"); v != "" {
		if _, err := fmt.Sscan(v, &c.Warm); err != nil {
			return usagef("PLAYGROUND_WARM=%q: not a number", v)
		}
	}
	return c.LimitsConfig.fromEnv(getenv)
}

func (c *serveConfig) bind(fs *flag.FlagSet) {
	fs.StringVar(&c.Listen, "listen", c.Listen, "`address` to serve HTTP on")
	fs.Var(&c.Rootfs, "rootfs", "an environment (root file system) to offer: `[NAME=]SOURCE`, SOURCE one of auto, ubuntu, ubuntu:22.04, docker://REF, a directory, an archive, host; repeatable, the first is the default and the page picks another with ?env=NAME; auto: the cached Ubuntu, else downloaded, else, offline, host")
	fs.StringVar(&c.Cache, "cache", c.Cache, "cache `directory` of prepared environments")
	fs.StringVar(&c.Hostname, "hostname", c.Hostname, "hostname inside the containers")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format: auto (console on a terminal, else json), json or console")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn or error")
	fs.Var(&c.Origins, "origin", "also allow WebSocket connections from this `origin` (https://host:port); repeatable; \"*\" allows any")
	fs.StringVar(&c.Credential, "credential", c.Credential, "HTTP basic auth `user:pass`, as ttyd's -c; empty: no auth")
	fs.IntVar(&c.MaxSessions, "max-sessions", c.MaxSessions, "most sessions at once, detached ones included; a new one beyond is closed with 1013 after its init (a routed server, see --route-id, answers its handshake with 503) (0: from the machine's size, "+fmt.Sprint(server.DefaultMaxSessions())+" here)")
	fs.IntVar(&c.Warm, "warm", c.Warm, "containers kept started ahead of visitors, so a session starts at once (0: none)")
	fs.StringVar(&c.StateDir, "state-dir", c.StateDir, "host `directory` for the containers' mount points")
	fs.DurationVar(&c.Grace, "shutdown-grace", c.Grace, "after the drain, how long ending the remaining sessions and their containers may take")

	fs.StringVar(&c.Auth, "auth", c.Auth, "who may open sessions: auto (a token when listening beyond loopback, none on loopback), token, or none (anyone who reaches the port)")
	fs.StringVar(&c.Token, "token", c.Token, "the access `token` (?token=, a cookie, Bearer, or ttyd's AuthToken); default: generated and printed in the URL when auth needs one")
	fs.StringVar(&c.AuthHeader, "auth-header", c.AuthHeader, "believe the user `name` in this request header (oauth2-proxy's X-Forwarded-User) from --trusted-proxies")
	fs.StringVar(&c.AdminToken, "admin-token", c.AdminToken, "the `token` of the admin API, /api (Authorization: Bearer); empty: the admin API is off")
	fs.Var(&c.AllowedHosts, "allowed-host", "also answer to this host `name` (the name the server is reached by); repeatable. Always allowed: the address a request came in on, localhost")
	fs.Var(&c.TrustedProxies, "trusted-proxies", "reverse proxies (`CIDR,...`) whose X-Forwarded-For and --auth-header are believed; repeatable")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", c.IdleTimeout, "end a session after this long without input, with a warning a minute before (0: never)")
	fs.DurationVar(&c.MaxLifetime, "max-lifetime", c.MaxLifetime, "end a session this long after it started, with a warning a minute before (0: never)")
	fs.DurationVar(&c.ReconnectGrace, "reconnect-grace", c.ReconnectGrace, "how long a session whose client dropped waits for a resume (0: ends at once)")
	fs.IntVar(&c.MaxSessionsPerClient, "max-sessions-per-client", c.MaxSessionsPerClient, "most sessions of one client address (0: no cap; a class behind one NAT is one address)")
	fs.IntVar(&c.MaxWatchersPerClient, "max-watchers-per-client", c.MaxWatchersPerClient, "most watchers of one client address, over all sessions (0: no cap)")
	fs.Float64Var(&c.Rate, "rate", c.Rate, "new connections per second a client address may open (0: no limit)")
	fs.IntVar(&c.RateBurst, "rate-burst", c.RateBurst, "connections a client address may open at once, beyond --rate")
	fs.StringVar(&c.RouteID, "route-id", c.RouteID, "this server's `name` behind a proxy with several: sent in SESSION and as X-Playground-Route, and a page reconnects with /ws?route=NAME; given explicitly, a draining or full server answers a new session's handshake with 503 so the proxy tries another (see docs/DEPLOY.md)")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", c.DrainTimeout, "on SIGINT/SIGTERM, how long open sessions may go on (no new ones start) before they are ended; a second signal ends them at once (0: at once)")
	c.LimitsConfig.bind(fs)
}

// Validate checks what flags cannot: every field in range, together.
func (c *serveConfig) Validate() error {
	var bad []string
	if err := checkListen(c.Listen); err != nil {
		bad = append(bad, err.Error())
	}
	if err := checkLogFormat(c.LogFormat); err != nil {
		bad = append(bad, err.Error())
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad = append(bad, fmt.Sprintf("--log-level %q: want debug, info, warn or error", c.LogLevel))
	}
	if _, err := c.sources(); err != nil {
		bad = append(bad, err.Error())
	}
	if c.Cache == "" {
		bad = append(bad, "--cache is empty")
	}
	if c.MaxSessions < 0 {
		bad = append(bad, "--max-sessions must not be negative")
	}
	if c.Warm < 0 || c.Warm > 1000 {
		bad = append(bad, "--warm must be 0 to 1000")
	}
	bad = append(bad, c.LimitsConfig.validate()...)
	if c.Grace < 0 {
		bad = append(bad, "--shutdown-grace must not be negative")
	}
	switch c.Auth {
	case "auto", "token", "none":
	default:
		bad = append(bad, fmt.Sprintf("--auth %q: want auto, token or none", c.Auth))
	}
	if c.Auth == "none" && c.Token != "" {
		bad = append(bad, "--auth none with --token: choose one")
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{
		{"--idle-timeout", c.IdleTimeout}, {"--max-lifetime", c.MaxLifetime},
		{"--reconnect-grace", c.ReconnectGrace}, {"--drain-timeout", c.DrainTimeout},
	} {
		if d.v < 0 {
			bad = append(bad, d.flag+" must not be negative")
		}
	}
	if c.MaxSessionsPerClient < 0 || c.MaxWatchersPerClient < 0 || c.Rate < 0 || c.RateBurst < 0 {
		bad = append(bad, "--max-sessions-per-client, --max-watchers-per-client, --rate and --rate-burst must not be negative")
	}
	if len(bad) > 0 {
		return usagef("%s", strings.Join(bad, "; "))
	}
	return nil
}

// sources parses the environments: each a source, their names distinct.
func (c *serveConfig) sources() ([]image.Source, error) {
	if len(c.Rootfs.list) == 0 {
		return nil, errors.New("--rootfs: no environment given")
	}
	var out []image.Source
	seen := map[string]string{}
	for _, text := range c.Rootfs.list {
		src, err := image.ParseSource(text)
		if err != nil {
			return nil, fmt.Errorf("--rootfs: %v", err)
		}
		if prev, ok := seen[src.Name]; ok {
			return nil, fmt.Errorf("--rootfs: two environments named %q (%s and %s): name them with NAME=SOURCE", src.Name, prev, text)
		}
		seen[src.Name] = text
		out = append(out, src)
	}
	return out, nil
}

// sourceList is --rootfs: repeatable; given on the command line, it
// replaces the default (or PLAYGROUND_ROOTFS's list) rather than adding
// to it.
type sourceList struct {
	list []string
	set  bool // a flag has set it
}

func (l *sourceList) String() string { return strings.Join(l.list, ",") }
func (l *sourceList) Set(v string) error {
	if !l.set {
		l.list, l.set = nil, true
	}
	if strings.TrimSpace(v) == "" {
		return errors.New("empty source")
	}
	l.list = append(l.list, v)
	return nil
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

func getenv(name string) string { return os.Getenv(name) }
