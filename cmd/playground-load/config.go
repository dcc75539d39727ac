//go:build linux

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/guntainer/playground/runtime"
)

const usage = `Usage: playground-load [flags]

Measures web terminal servers from the outside, through the ttyd WebSocket
protocol only, beside baselines measured in the same run:

  self     the playground server, every session a container (cold: no warm
           pool), limited as serve limits it (cgroups where this user has them)
  warm     the same, with a warm pool of 4 containers started ahead of sessions
  rlimits  self with cgroups off: rlimits and a nice level, as for an ordinary
           user without a delegated cgroup
  plain  the same server code, every session an unisolated /bin/sh on a pty
  bwrap  the same server code, every session bubblewrap running /bin/sh in
         new user, pid, mount, net, uts, ipc and cgroup namespaces
  raw    /bin/sh on a pty read by this process: no server, no network
  ttyd   ttyd running /bin/sh (--ttyd PATH, or ttyd in PATH)
  url    the server at --url, which may be anything that speaks ttyd's protocol
         (a playground server's limits per client apply to this command too:
         serve it with --max-sessions-per-client 0 --max-watchers-per-client 0
         --rate 0 to measure it)
  serve  the playground binary itself (--playground PATH), with the host
         rootfs: measured for startup only

Every shell is /bin/sh with PS1='$ '. The servers of self, plain, bwrap and
ttyd are started by this command on 127.0.0.1, a fresh one for every target
and measurement, each in a session of its own (as a service runs), and
stopped after it.

Measurements:

  ready       dial to the answer of 'echo $((6*7))', over N sequential sessions
  many        N sessions opened at once, each answering; the server's memory
              while all are open
  burst       U sessions opened at once with no warm container to hand out
              (warm's pool drained first): the time until all answer, the
              median of R rounds taken by the targets in turn
  throughput  one session prints B bytes (head -c B /dev/zero | tr); MB/s,
              the median of R rounds
  echo        one byte typed into cat in raw mode and echoed back, K round
              trips: idle; while M other sessions flood output; and (servers)
              while S more flood to clients that read a frame every 50 ms,
              with the server's memory; then, the floods ended, while H
              clients send their own messages without pause (one-byte INPUT
              and RESIZE in turn) to sessions of their own, from a process at
              the lowest CPU priority, standing for clients on other machines.
              The flooding sessions' clients run in a process of their own.
              R rounds, the targets in turn; the round with the median p99
              under the floods counts
  churn       C connect, command, disconnect cycles; then what is left over
              (processes, mounts, fds, goroutines)
  resume      a session's connection dropped and resumed N times: drop to
              screen restored, beside a new session on the same server
  detached    N sessions attached, then their clients gone: the server's
              memory per attached and per detached session
  watch       N sessions at once with a watcher each: all answer, watchers
              see it; the server's memory per session and per watcher
  startup     R starts of each server: exec to /readyz 200 (ttyd: to /)

The sessions per pod at the requests of the shipped manifest (--pod-memory,
--pod-cpu) are worked out from self's many and echo figures.

MB is 10^6 bytes, KiB and MiB are 2^10 and 2^20. Exit status: 0 when every
measurement was made (a missed goal, or sessions that failed within a
measurement, are findings in the report, not errors), 1 when one could not
be made at all, 2 for a usage error.

Flags:
`

// measurement names, in the order they run.
var allMeasurements = []string{"ready", "many", "burst", "throughput", "echo", "churn", "resume", "detached", "watch", "startup"}

// target names, in the order of the report's columns.
var allTargets = []string{"self", "warm", "rlimits", "plain", "bwrap", "ttyd", "url", "serve", "raw"}

// Config is what to measure and how much. Defaults in code; flags override.
type Config struct {
	Targets    []string
	Measure    []string
	URL        string // ws:// URL of an external server, for the url target
	PID        int    // the external server's pid; 0: found from its port when local
	Rootfs     string
	TTYD       string // ttyd binary for the ttyd target
	Ready      int
	Many       int
	Burst      int
	Bytes      int64
	Rounds     int // throughput, burst and echo: runs per target, in turn, of which the median counts
	Echo       int
	Flood      int
	Slow       int // echo: sessions flooding to slow readers, in a third phase
	Hostile    int // echo: clients that send their own messages without pause, in a last phase, the floods ended
	Churn      int
	Resume     int    // resumes of one session
	Detached   int    // sessions detached at once
	Watch      int    // sessions with a watcher each
	Startup    int    // server starts timed to /readyz 200
	Playground string // the playground binary, for the serve target
	// PodMemory and PodCPU are a pod's requested resources (the shipped
	// manifest's), for the sessions-per-pod figure.
	PodMemory int64
	PodCPU    float64
	Format    string // table, json or markdown
	Timeout   time.Duration
	Quiet     bool
	Short     bool
	All       bool
	cmdline   []string
	explicit  map[string]bool // flags set on the command line
}

func defaultConfig() Config {
	return Config{
		Rootfs:    runtime.HostRootfs,
		Ready:     200,
		Many:      1000,
		Burst:     300,
		Bytes:     100_000_000,
		Rounds:    3,
		Echo:      2000,
		Flood:     8,
		Slow:      20,
		Hostile:   3,
		Churn:     1000,
		Resume:    200,
		Detached:  300,
		Watch:     1000,
		Startup:   10,
		PodMemory: 160 << 20,
		PodCPU:    0.25,
		Format:    "table",
		Timeout:   60 * time.Minute,
	}
}

// shortSizes are --short's: enough to exercise every path in a few seconds.
func (c *Config) shortSizes() {
	set := func(name string, f func()) {
		if !c.explicit[name] {
			f()
		}
	}
	set("ready", func() { c.Ready = 5 })
	set("many", func() { c.Many = 10 })
	set("burst", func() { c.Burst = 10 })
	set("bytes", func() { c.Bytes = 16_000_000 })
	set("echo", func() { c.Echo = 50 })
	set("flood", func() { c.Flood = 2 })
	set("slow", func() { c.Slow = 2 })
	set("hostile", func() { c.Hostile = 1 })
	set("churn", func() { c.Churn = 10 })
	set("resume", func() { c.Resume = 5 })
	set("detached", func() { c.Detached = 5 })
	set("watch", func() { c.Watch = 10 })
	set("startup", func() { c.Startup = 2 })
}

func parseConfig(args []string, stderr io.Writer) (Config, error) {
	c := defaultConfig()
	c.cmdline = append([]string{"playground-load"}, args...)
	var targets, measures, format string
	var asJSON, asMarkdown bool
	fs := flag.NewFlagSet("playground-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	fs.StringVar(&targets, "targets", "", "comma-separated `list` of targets: self, warm, rlimits, plain, bwrap, raw, ttyd, url, serve (default self,warm,plain,bwrap,raw; with --url, url and raw)")
	fs.StringVar(&measures, "measure", strings.Join(allMeasurements, ","), "comma-separated `list` of measurements")
	fs.BoolVar(&c.All, "all", false, "every target this machine has (ttyd too when found, url with --url, serve with --playground) and, unless --measure says otherwise, every measurement")
	fs.BoolVar(&c.Short, "short", false, "small sizes (ready 5, many 10, burst 10, bytes 16 MB, echo 50, flood 2, slow 2, hostile 1, churn 10, resume 5, detached 5, watch 10, startup 2), for a quick look; explicit sizes win")
	fs.StringVar(&c.URL, "url", "", "measure the server at `URL` (ws://host:port/ws, or http://host:port/ for its /ws)")
	fs.IntVar(&c.PID, "server-pid", 0, "`pid` of the --url server, for memory, descriptor and process figures from /proc (default: found from its port when it listens here)")
	fs.StringVar(&c.Rootfs, "rootfs", c.Rootfs, "root file system of the self target's containers: `DIR` or \"host\"")
	fs.StringVar(&c.TTYD, "ttyd", "", "ttyd `binary` for the ttyd target (default: ttyd in PATH)")
	fs.IntVar(&c.Ready, "ready", c.Ready, "ready: `N` sequential sessions")
	fs.IntVar(&c.Many, "many", c.Many, "many: `N` sessions at once")
	fs.IntVar(&c.Burst, "burst", c.Burst, "burst: `U` sessions at once, no warm container")
	fs.Int64Var(&c.Bytes, "bytes", c.Bytes, "throughput: `B` bytes printed")
	fs.IntVar(&c.Rounds, "rounds", c.Rounds, "throughput, burst and echo: `R` runs on each target, in turn; the median counts")
	fs.IntVar(&c.Echo, "echo", c.Echo, "echo: `K` round trips, idle and again under flood")
	fs.IntVar(&c.Flood, "flood", c.Flood, "echo: `M` sessions flooding output meanwhile")
	fs.IntVar(&c.Slow, "slow", c.Slow, "echo: `S` more sessions flooding to clients that read a frame every 50 ms, in a third phase (servers only; 0: none)")
	fs.IntVar(&c.Hostile, "hostile", c.Hostile, "echo: `H` clients that send their own messages without pause (one-byte INPUT and RESIZE in turn) to sessions of their own, in a last phase, the floods ended, from a process at the lowest CPU priority (servers only; 0: none)")
	fs.IntVar(&c.Churn, "churn", c.Churn, "churn: `C` connect, command, disconnect cycles")
	fs.IntVar(&c.Resume, "resume", c.Resume, "resume: `N` drops and resumes of one session")
	fs.IntVar(&c.Detached, "detached", c.Detached, "detached: `N` sessions detached at once")
	fs.IntVar(&c.Watch, "watch", c.Watch, "watch: `N` sessions with a watcher each")
	fs.IntVar(&c.Startup, "startup", c.Startup, "startup: `R` starts of each server, timed to /readyz 200")
	fs.StringVar(&c.Playground, "playground", "", "the playground `binary`, for the serve target (startup only; go build -o /tmp/playground ./cmd/playground)")
	var podMemory string
	fs.StringVar(&podMemory, "pod-memory", "160M", "a pod's memory request, for the sessions-per-pod figure (the shipped manifest's)")
	fs.Float64Var(&c.PodCPU, "pod-cpu", c.PodCPU, "a pod's CPU request in CPUs, for the sessions-per-pod figure (the shipped manifest's)")
	fs.BoolVar(&asJSON, "json", false, "write the report as JSON, for machines")
	fs.BoolVar(&asMarkdown, "markdown", false, "write the report as Markdown (BENCHMARKS.md)")
	fs.StringVar(&format, "format", "", "report `format`: table, json or markdown (--json and --markdown are short for it)")
	fs.DurationVar(&c.Timeout, "timeout", c.Timeout, "bound on the whole run")
	fs.BoolVar(&c.Quiet, "q", false, "no progress lines on stderr")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		return c, usagef("%v (see playground-load --help)", err)
	}
	if fs.NArg() > 0 {
		return c, usagef("no arguments expected, got %q (see playground-load --help)", fs.Args())
	}
	if n, err := runtime.ParseSize(podMemory); err != nil || n <= 0 {
		return c, usagef("--pod-memory %q: want a size such as 160M", podMemory)
	} else {
		c.PodMemory = n
	}
	c.explicit = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { c.explicit[f.Name] = true })
	if c.Short {
		c.shortSizes()
	}

	switch {
	case format != "" && (asJSON || asMarkdown), asJSON && asMarkdown:
		return c, usagef("--format, --json and --markdown: give one")
	case asJSON:
		c.Format = "json"
	case asMarkdown:
		c.Format = "markdown"
	case format != "":
		c.Format = format
	}

	if c.URL != "" {
		u, err := wsURL(c.URL)
		if err != nil {
			return c, usagef("--url %q: %v", c.URL, err)
		}
		c.URL = u
	}
	switch {
	case targets != "":
		c.Targets = splitList(targets)
	case c.All:
		c.Targets = []string{"self", "warm", "rlimits", "plain", "bwrap", "raw"}
		if c.ttydPath() != "" {
			c.Targets = append(c.Targets, "ttyd")
		}
		if c.URL != "" {
			c.Targets = append(c.Targets, "url")
		}
		if c.Playground != "" {
			c.Targets = append(c.Targets, "serve")
		}
	case c.URL != "":
		c.Targets = []string{"url", "raw"}
	default:
		c.Targets = []string{"self", "warm", "plain", "bwrap", "raw"}
	}
	c.Measure = splitList(measures)
	return c, c.Validate()
}

// Validate reports every bad field together.
func (c *Config) Validate() error {
	var bad []string
	for _, t := range c.Targets {
		if !slices.Contains(allTargets, t) {
			bad = append(bad, fmt.Sprintf("unknown target %q (want %s)", t, strings.Join(allTargets, ", ")))
		}
	}
	if len(c.Targets) == 0 {
		bad = append(bad, "no targets")
	}
	for _, m := range c.Measure {
		if !slices.Contains(allMeasurements, m) {
			bad = append(bad, fmt.Sprintf("unknown measurement %q (want %s)", m, strings.Join(allMeasurements, ", ")))
		}
	}
	if len(c.Measure) == 0 {
		bad = append(bad, "no measurements")
	}
	if slices.Contains(c.Targets, "url") && c.URL == "" {
		bad = append(bad, "target url needs --url")
	}
	if c.PID < 0 {
		bad = append(bad, "--server-pid must not be negative")
	}
	if slices.Contains(c.Targets, "serve") && c.Playground == "" {
		bad = append(bad, "target serve needs --playground PATH")
	}
	if c.PodCPU <= 0 {
		bad = append(bad, "--pod-cpu must be positive")
	}
	if slices.Contains(c.Targets, "ttyd") && c.ttydPath() == "" {
		bad = append(bad, "target ttyd: no ttyd in PATH; give --ttyd PATH")
	}
	for _, n := range []struct {
		name string
		v    int64
		max  int64
	}{
		{"--ready", int64(c.Ready), 1_000_000}, {"--many", int64(c.Many), 100_000}, {"--burst", int64(c.Burst), 100_000},
		{"--bytes", c.Bytes, 1 << 40}, {"--rounds", int64(c.Rounds), 100}, {"--echo", int64(c.Echo), 10_000_000},
		{"--churn", int64(c.Churn), 1_000_000}, {"--resume", int64(c.Resume), 1_000_000}, {"--detached", int64(c.Detached), 100_000},
		{"--watch", int64(c.Watch), 100_000}, {"--startup", int64(c.Startup), 10_000},
	} {
		if n.v < 1 || n.v > n.max {
			bad = append(bad, fmt.Sprintf("%s %d: want 1 to %d", n.name, n.v, n.max))
		}
	}
	if c.Flood < 0 || c.Flood > 10_000 {
		bad = append(bad, fmt.Sprintf("--flood %d: want 0 to 10000", c.Flood))
	}
	if c.Slow < 0 || c.Slow > 10_000 {
		bad = append(bad, fmt.Sprintf("--slow %d: want 0 to 10000", c.Slow))
	}
	if c.Hostile < 0 || c.Hostile > 10_000 {
		bad = append(bad, fmt.Sprintf("--hostile %d: want 0 to 10000", c.Hostile))
	}
	if c.Timeout <= 0 {
		bad = append(bad, "--timeout must be positive")
	}
	switch c.Format {
	case "table", "json", "markdown":
	default:
		bad = append(bad, fmt.Sprintf("--format %q: want table, json or markdown", c.Format))
	}
	if c.Rootfs == "" {
		bad = append(bad, "--rootfs is empty")
	}
	if len(bad) > 0 {
		return usagef("%s", strings.Join(bad, "; "))
	}
	return nil
}

func (c *Config) ttydPath() string {
	if c.TTYD != "" {
		return c.TTYD
	}
	p, err := exec.LookPath("ttyd")
	if err != nil {
		return ""
	}
	return p
}

func (c *Config) measures(m string) bool { return slices.Contains(c.Measure, m) }

func splitList(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// wsURL turns http(s)://host:port/[path] into ws(s)://host:port/path, with
// /ws for an empty path, and checks a ws(s) URL.
func wsURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", err
	}
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	case "ws", "wss":
	default:
		return "", errors.New("want ws://, wss://, http:// or https://")
	}
	if u.Host == "" {
		return "", errors.New("no host")
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/ws"
	}
	return u.String(), nil
}

// port is the port of a ws URL, or 0.
func port(wsu string) int {
	u, err := url.Parse(wsu)
	if err != nil {
		return 0
	}
	p, _ := strconv.Atoi(u.Port()) // 0 when absent or odd
	if p == 0 {
		switch u.Scheme {
		case "ws":
			p = 80
		case "wss":
			p = 443
		}
	}
	return p
}

// atOnce is the most sessions measurement m opens at once: what an
// operator would serve it with (--max-sessions). One for those that open
// their sessions one after another.
func (c *Config) atOnce(m string) int {
	switch m {
	case "many":
		return c.Many
	case "burst":
		return c.Burst
	case "echo":
		return 1 + c.Flood + c.Slow + c.Hostile
	case "detached":
		return c.Detached
	case "watch":
		return c.Watch
	}
	return 1
}
