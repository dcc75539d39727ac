package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/guntainer/playground/runtime"
)

// serveConfig is the serve command's configuration: defaults in code, then
// PLAYGROUND_* environment variables (read here and only here), then flags.
type serveConfig struct {
	Listen       string
	Rootfs       string
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
}

func defaultServeConfig() serveConfig {
	return serveConfig{
		Listen:       "127.0.0.1:8080",
		Rootfs:       runtime.HostRootfs,
		Hostname:     "playground",
		LogFormat:    logAuto,
		LogLevel:     "info",
		LimitsConfig: defaultLimitsConfig(),
		StateDir:     runtime.DefaultStateDir(),
		Grace:        10 * time.Second,
		Warm:         2,
	}
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
	str("PLAYGROUND_ROOTFS", &c.Rootfs)
	str("PLAYGROUND_HOSTNAME", &c.Hostname)
	str("PLAYGROUND_LOG_FORMAT", &c.LogFormat)
	str("PLAYGROUND_LOG_LEVEL", &c.LogLevel)
	str("PLAYGROUND_CREDENTIAL", &c.Credential)
	str("PLAYGROUND_STATE_DIR", &c.StateDir)
	if v := getenv("PLAYGROUND_ORIGINS"); v != "" {
		c.Origins = strings.Split(v, ",")
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
	fs.StringVar(&c.Rootfs, "rootfs", c.Rootfs, "root file system of the containers: `DIR` (an unpacked tree) or \"host\" (the host's /usr, /bin, /lib read-only)")
	fs.StringVar(&c.Hostname, "hostname", c.Hostname, "hostname inside the containers")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format: auto (console on a terminal, else json), json or console")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn or error")
	fs.Var(&c.Origins, "origin", "also allow WebSocket connections from this `origin` (https://host:port); repeatable; \"*\" allows any")
	fs.StringVar(&c.Credential, "credential", c.Credential, "HTTP basic auth `user:pass`, as ttyd's -c; empty: no auth")
	fs.IntVar(&c.MaxSessions, "max-sessions", c.MaxSessions, "most sessions at once; more are refused with 1013 (0: no limit)")
	fs.IntVar(&c.Warm, "warm", c.Warm, "containers kept started ahead of visitors, so a session starts at once (0: none)")
	fs.StringVar(&c.StateDir, "state-dir", c.StateDir, "host `directory` for the containers' mount points")
	fs.DurationVar(&c.Grace, "shutdown-grace", c.Grace, "on SIGINT/SIGTERM, how long to wait for sessions to end")
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
	if c.Rootfs == "" {
		bad = append(bad, "--rootfs is empty")
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
	if len(bad) > 0 {
		return usagef("%s", strings.Join(bad, "; "))
	}
	return nil
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// byteSize is a size flag: 1048576, 512K, 256M, 1G.
type byteSize int64

func (b *byteSize) String() string { return fmt.Sprintf("%dM", int64(*b)>>20) }
func (b *byteSize) Set(v string) error {
	mult := int64(1)
	s := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(v), "B"), "I")
	switch {
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, s[:len(s)-1]
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, s[:len(s)-1]
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, s[:len(s)-1]
	}
	var n int64
	if _, err := fmt.Sscan(s, &n); err != nil || n <= 0 || fmt.Sprint(n) != s {
		return fmt.Errorf("want a size such as 256M")
	}
	*b = byteSize(n * mult)
	return nil
}

func getenv(name string) string { return os.Getenv(name) }
