package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/rs/zerolog"

	"github.com/guntainer/playground/runtime"
)

// limitsConfig is the sessions' limits and network, shared by serve and
// run: defaults in code (runtime.DefaultLimits), then PLAYGROUND_*
// variables, then flags.
type limitsConfig struct {
	Memory   sizeFlag  // bytes, or runtime.NoLimit
	Pids     limitFlag // processes, or runtime.NoLimit
	CPUs     limitFlag // CPUs, or runtime.NoLimit
	Disk     sizeFlag  // bytes
	Ptys     limitFlag // pseudo-terminals, or runtime.NoLimit
	Net      string    // none or outbound
	NetAllow stringList
}

func defaultLimitsConfig() limitsConfig {
	d := runtime.DefaultLimits()
	return limitsConfig{
		Memory: sizeFlag(d.Memory),
		Pids:   limitFlag(d.Pids),
		CPUs:   limitFlag(d.CPUs),
		Disk:   sizeFlag(d.Disk),
		Ptys:   limitFlag(d.Ptys),
		Net:    string(runtime.NetNone),
	}
}

// fromEnv reads PLAYGROUND_MEMORY, _PIDS, _CPUS, _DISK (and its old name
// _WRITABLE_SIZE), _PTYS, _NET and _NET_ALLOW (comma-separated).
func (c *limitsConfig) fromEnv(getenv func(string) string) error {
	for _, v := range []struct {
		name string
		f    flag.Value
	}{
		{"PLAYGROUND_WRITABLE_SIZE", &c.Disk}, {"PLAYGROUND_DISK", &c.Disk},
		{"PLAYGROUND_MEMORY", &c.Memory}, {"PLAYGROUND_PIDS", &c.Pids}, {"PLAYGROUND_CPUS", &c.CPUs},
		{"PLAYGROUND_PTYS", &c.Ptys},
	} {
		if s := getenv(v.name); s != "" {
			if err := v.f.Set(s); err != nil {
				return usagef("%s=%q: %v", v.name, s, err)
			}
		}
	}
	if v := getenv("PLAYGROUND_NET"); v != "" {
		c.Net = v
	}
	if v := getenv("PLAYGROUND_NET_ALLOW"); v != "" {
		c.NetAllow = strings.Split(v, ",")
	}
	return nil
}

func (c *limitsConfig) bind(fs *flag.FlagSet) {
	fs.Var(&c.Memory, "memory", "`SIZE` of each session's memory, swap off (with a cgroup, its files count too), e.g. 512M, at least 32M (256M for run without a cgroup); none: no limit")
	fs.Var(&c.Pids, "pids", "`N` processes (threads) of each session at most; none: no limit")
	fs.Var(&c.CPUs, "cpus", "`N` CPUs of time for each session, a cgroup quota (busy sessions share the CPU equally besides); none: no quota")
	fs.Var(&c.Disk, "disk", "`SIZE` of each session's writable layer, /tmp and /dev/shm together, in memory, with an inode limit to match, e.g. 1G")
	fs.Var(&c.Ptys, "ptys", "`N` terminals (ptys) each session may hold at once, its own included; the kernel's pool is one for the machine (kernel.pty.max); none: only that pool")
	fs.Var(&c.Disk, "writable-size", "`SIZE`: deprecated, the old name of --disk")
	fs.StringVar(&c.Net, "net", c.Net, "`MODE` of the sessions' network: none (loopback only) or outbound (the internet through pasta or slirp4netns; the host's loopback, private and link-local ranges stay unreachable)")
	fs.Var(&c.NetAllow, "net-allow", "with --net outbound, also let sessions reach this `CIDR` of the otherwise unreachable ranges (10.1.2.3/32); repeatable")
}

// validate lists what is wrong, for Validate's one error.
func (c *limitsConfig) validate() []string {
	var bad []string
	for _, f := range []struct {
		name string
		v    limitFlag
	}{{"pids", c.Pids}, {"ptys", c.Ptys}} {
		if f.v != runtime.NoLimit && f.v != limitFlag(math.Trunc(float64(f.v))) {
			bad = append(bad, fmt.Sprintf("--%s %v: want a whole number", f.name, float64(f.v)))
		}
	}
	if err := c.limits().Validate(); err != nil {
		for _, e := range strings.Split(err.Error(), "\n") {
			bad = append(bad, "--"+e)
		}
	}
	if _, err := c.network(); err != nil {
		bad = append(bad, err.Error())
	}
	return bad
}

func (c *limitsConfig) limits() runtime.Limits {
	return runtime.Limits{Memory: int64(c.Memory), Pids: int(c.Pids), CPUs: float64(c.CPUs), Disk: int64(c.Disk), Ptys: int(c.Ptys)}
}

func (c *limitsConfig) network() (runtime.Net, error) {
	mode, err := runtime.ParseNetMode(c.Net)
	if err != nil {
		return runtime.Net{}, err
	}
	n := runtime.Net{Mode: mode}
	for _, a := range c.NetAllow {
		p, err := runtime.ParseAllow(a)
		if err != nil {
			return n, err
		}
		n.Allow = append(n.Allow, p)
	}
	return n, n.Validate()
}

// newHost prepares the host for the sessions (cgroups, subordinate ids,
// the network helper, and for a server as root the id ranges of its most
// sessions). It fails for a configuration that cannot work here, --net
// outbound without a helper among them. Notices the runtime has later go
// to log, when not nil.
func (c *limitsConfig) newHost(stateDir string, sessions int, serving bool, log *zerolog.Logger) (*runtime.Host, error) {
	net, err := c.network()
	if err != nil {
		return nil, err
	}
	o := runtime.HostOptions{StateDir: stateDir, Limits: c.limits(), Sessions: sessions, Net: net.Mode}
	if serving {
		o.PrepareIDs = sessions
	} else {
		o.NoSpawner = true // one start, from a small process: the spawner would cost more than it saves
	}
	if log != nil {
		o.Log = func(msg string) { log.Warn().Msg(msg) }
	}
	return runtime.NewHost(o)
}

// logModes logs, once at start, how limits are enforced (a warning when
// they are rlimits only, saying what is not enforced), which ids
// containers get, their network, and what their init is executed from.
func (c *limitsConfig) logModes(h *runtime.Host, sessions int, log zerolog.Logger) {
	lines := h.ModeLines()
	ev := log.Info()
	if h.Cgroups() == nil {
		ev = log.Warn()
	}
	ev.Str("limits", c.limits().String()).Msg(lines[0])
	for _, l := range lines[1:] {
		ev := log.Info()
		if strings.HasPrefix(l, "net:") && len(c.NetAllow) > 0 {
			ev = ev.Strs("net_allow", c.NetAllow)
		}
		ev.Msg(l)
	}
	for _, n := range h.SharedPoolNotes(sessions, c.limits()) {
		log.Warn().Msg(n)
	}
	if sessions == 0 && os.Getuid() != 0 && c.limits().Pids > 0 {
		log.Warn().Msg("no --max-sessions: RLIMIT_NPROC of the server's user is not checked against sessions × --pids, so fork bombs in many sessions could stop the server from starting containers")
	}
}

// sizeFlag is a size: 1048576, 512K, 256M, 1.5G; "none" where a limit may
// be off.
type sizeFlag int64

func (s *sizeFlag) String() string {
	if *s == runtime.NoLimit {
		return "none"
	}
	return strings.ReplaceAll(runtime.FormatSize(int64(*s)), " ", "")
}

func (s *sizeFlag) Set(v string) error {
	n, err := runtime.ParseSize(v)
	if err != nil {
		return fmt.Errorf("want a size such as 256M, 1.5G or none")
	}
	if n == 0 {
		// Zero is the runtime's "the default"; said here it means no
		// limit (docker's --memory 0) as often as the default, so it is
		// neither.
		return fmt.Errorf("want a size such as 256M, 1.5G, or none for no limit")
	}
	*s = sizeFlag(n)
	return nil
}

// limitFlag is a number (processes, CPUs), or "none".
type limitFlag float64

func (l *limitFlag) String() string {
	if *l == runtime.NoLimit {
		return "none"
	}
	return strconv.FormatFloat(float64(*l), 'f', -1, 64)
}

func (l *limitFlag) Set(v string) error {
	v = strings.TrimSpace(v)
	if v == "none" {
		*l = runtime.NoLimit
		return nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f <= 0 {
		return fmt.Errorf("want a positive number or none")
	}
	*l = limitFlag(f)
	return nil
}

// withLimits prepares the host as newHost does and gives spec the Host,
// the limits and the network. The caller closes the Host after the last
// container has ended.
func withLimits(spec *runtime.Spec, c limitsConfig, sessions int, serving bool, log *zerolog.Logger) (*runtime.Host, error) {
	h, err := c.newHost(spec.StateDir, sessions, serving, log)
	if err != nil {
		return nil, err
	}
	spec.Host, spec.Limits = h, c.limits()
	spec.Net, _ = c.network() // checked by newHost
	return h, nil
}
