//go:build linux

package main

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/debug"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/guntainer/playground/runtime"
)

// Report is everything one run measured, in the form --json writes.
type Report struct {
	Machine Machine         `json:"machine"`
	Command string          `json:"command"`
	Date    string          `json:"date"`
	Seconds float64         `json:"seconds"`
	Sizes   Sizes           `json:"sizes"`
	Targets []*TargetReport `json:"targets"`
	Ratios  []Ratio         `json:"ratios"`
	Goals   []Goal          `json:"goals"`
	// Pod is issue 11's sessions per pod at the requested resources,
	// derived from this run's figures.
	Pod *PodFigure `json:"pod,omitempty"`

	podMemory int64 // the pod's requests, from the config
	podCPU    float64
}

// Sizes are the run's N, B, K, M and C.
type Sizes struct {
	Ready    int   `json:"ready"`
	Many     int   `json:"many"`
	Burst    int   `json:"burst"`
	Bytes    int64 `json:"bytes"`
	Rounds   int   `json:"rounds"`
	Echo     int   `json:"echo"`
	Flood    int   `json:"flood"`
	Slow     int   `json:"slow"`
	Hostile  int   `json:"hostile"`
	Churn    int   `json:"churn"`
	Resume   int   `json:"resume"`
	Detached int   `json:"detached"`
	Watch    int   `json:"watch"`
	Startup  int   `json:"startup"`
}

// TargetReport is what was measured on one target. A nil result was not
// measured; a result with Error could not be made, or was made with
// failures.
type TargetReport struct {
	Name        string            `json:"name"`
	Description string            `json:"description"`
	Ready       *ReadyResult      `json:"ready,omitempty"`
	Many        *ManyResult       `json:"many,omitempty"`
	Burst       *BurstResult      `json:"burst,omitempty"`
	Throughput  *ThroughputResult `json:"throughput,omitempty"`
	Echo        *EchoResult       `json:"echo,omitempty"`
	Churn       *ChurnResult      `json:"churn,omitempty"`
	Resume      *ResumeResult     `json:"resume,omitempty"`
	Detached    *DetachedResult   `json:"detached,omitempty"`
	Watch       *WatchResult      `json:"watch,omitempty"`
	Startup     *StartupResult    `json:"startup,omitempty"`
	Errors      []string          `json:"errors,omitempty"` // servers that did not stop cleanly
}

// Ratio is one figure over its baseline from the same run.
type Ratio struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
}

// Goal is one of the project's targets and how this run did against it.
type Goal struct {
	Goal   string `json:"goal"`
	Got    string `json:"got"`
	Status string `json:"status"` // met, missed, or not measured
}

// Machine is where the run ran.
type Machine struct {
	CPUs      int     `json:"cpus"`
	CPU       string  `json:"cpu"`
	MemoryGiB float64 `json:"memory_gib"`
	Kernel    string  `json:"kernel"`
	OS        string  `json:"os"`
	Go        string  `json:"go"`
	User      string  `json:"user"`
	Init      string  `json:"init"`
	Bwrap     string  `json:"bwrap,omitempty"`
	TTYD      string  `json:"ttyd,omitempty"`
}

func newReport(cfg Config) *Report {
	r := &Report{
		Machine: machine(cfg),
		Command: shellQuote(cfg.cmdline),
		Date:    time.Now().UTC().Format(time.RFC3339),
		Sizes: Sizes{Ready: cfg.Ready, Many: cfg.Many, Burst: cfg.Burst, Bytes: cfg.Bytes, Rounds: cfg.Rounds, Echo: cfg.Echo, Flood: cfg.Flood, Slow: cfg.Slow, Hostile: cfg.Hostile,
			Churn: cfg.Churn, Resume: cfg.Resume, Detached: cfg.Detached, Watch: cfg.Watch, Startup: cfg.Startup},
		podMemory: cfg.PodMemory,
		podCPU:    cfg.PodCPU,
	}
	for _, name := range cfg.Targets {
		r.get(name)
	}
	return r
}

// evaluate works out the ratios and checks the goals.
func (r *Report) evaluate() {
	self, warm, plain, bwrap, raw, ttyd := r.find("self"), r.find("warm"), r.find("plain"), r.find("bwrap"), r.find("raw"), r.find("ttyd")
	rlim := r.find("rlimits")
	ratio := func(name string, a, b float64) {
		if a > 0 && b > 0 {
			r.Ratios = append(r.Ratios, Ratio{name, round(a/b, 2)})
		}
	}
	p50 := func(t *TargetReport) float64 {
		if t == nil || t.Ready == nil || t.Ready.Error != "" {
			return 0
		}
		return t.Ready.P50ms
	}
	mbps := func(t *TargetReport) float64 {
		if t == nil || t.Throughput == nil || t.Throughput.Error != "" {
			return 0
		}
		return t.Throughput.MBps
	}
	ratio("ready p50: self / bwrap", p50(self), p50(bwrap))
	ratio("ready p50: self / plain", p50(self), p50(plain))
	ratio("ready p50: warm / plain", p50(warm), p50(plain))
	ratio("ready p50: bwrap / plain", p50(bwrap), p50(plain))
	ratio("ready p50: self / ttyd", p50(self), p50(ttyd))
	ratio("ready p50: self (limits as served) / rlimits (no cgroups): what cgroups add to a cold start", p50(self), p50(rlim))
	burst := func(t *TargetReport) float64 {
		if t == nil || t.Burst == nil || t.Burst.Answered == 0 || t.Burst.Failed > 0 {
			return 0
		}
		return t.Burst.AllReadyS
	}
	ratio("burst, all answered: self / bwrap", burst(self), burst(bwrap))
	ratio("burst, all answered: warm, pool drained / bwrap", burst(warm), burst(bwrap))
	burstRounds := func(t *TargetReport) []float64 {
		if burst(t) == 0 {
			return nil
		}
		return t.Burst.RoundsS
	}
	ratio("burst, all answered: self / bwrap, the median of the rounds' own ratios (round i of each)", pairedRatio(burstRounds(self), burstRounds(bwrap)), 1)
	ratio("throughput: self / raw pty", mbps(self), mbps(raw))
	mbpsRounds := func(t *TargetReport) []float64 {
		if mbps(t) == 0 {
			return nil
		}
		return t.Throughput.RunMBps
	}
	ratio("throughput: self / raw pty, the median of the rounds' own ratios (round i of each)", pairedRatio(mbpsRounds(self), mbpsRounds(raw)), 1)
	ratio("throughput: plain / raw pty", mbps(plain), mbps(raw))
	ratio("throughput: bwrap / raw pty", mbps(bwrap), mbps(raw))
	ratio("throughput: ttyd / raw pty", mbps(ttyd), mbps(raw))
	// echoP99 is one of a target's echo figures, 0 where the echo failed
	// or was not measured.
	echoP99 := func(pick func(*EchoResult) float64) func(*TargetReport) float64 {
		return func(t *TargetReport) float64 {
			if t == nil || t.Echo == nil || t.Echo.Error != "" {
				return 0
			}
			return pick(t.Echo)
		}
	}
	floodP99 := echoP99(func(e *EchoResult) float64 { return e.FloodP99ms })
	slowP99 := echoP99(func(e *EchoResult) float64 { return e.SlowP99ms })
	hostileP99 := echoP99(func(e *EchoResult) float64 { return e.HostileP99ms })
	ratio("echo p99 under flood: self / ttyd", floodP99(self), floodP99(ttyd))
	ratio("echo p99 under flood: rlimits / ttyd", floodP99(rlim), floodP99(ttyd))
	ratio("echo p99 under flood: self / raw pty", floodP99(self), floodP99(raw))
	ratio("echo p99 under flood, slow readers besides: self / ttyd", slowP99(self), slowP99(ttyd))
	ratio("echo p99 beside hostile clients: self / ttyd", hostileP99(self), hostileP99(ttyd))
	if self != nil && self.Resume != nil && self.Resume.Error == "" {
		ratio("resume p50 / a new session's p50 (self)", self.Resume.P50ms, self.Resume.NewP50ms)
	}
	startup := func(t *TargetReport) float64 {
		if t == nil || t.Startup == nil || t.Startup.Error != "" {
			return 0
		}
		return t.Startup.P50ms
	}
	ratio("startup to /readyz p50: self / plain", startup(self), startup(plain))
	ratio("startup to ready p50: self / ttyd", startup(self), startup(ttyd))

	goal := func(name string, measured bool, met bool, got string) {
		g := Goal{Goal: name, Got: got, Status: "not measured"}
		if measured {
			g.Status = "missed"
			if met {
				g.Status = "met"
			}
		}
		r.Goals = append(r.Goals, g)
	}
	{
		s, b := p50(self), p50(bwrap)
		goal("ready p50, full isolation, cold: no more than bwrap's", s > 0 && b > 0, s <= b,
			fmt.Sprintf("self %.2f ms, bwrap %.2f ms", s, b))
	}
	{
		w, p := p50(warm), p50(plain)
		goal("ready p50 with the warm pool: no more than the unisolated shell's", w > 0 && p > 0, w <= p,
			fmt.Sprintf("warm %.2f ms, plain %.2f ms", w, p))
	}
	{
		s, w := mbps(self), mbps(raw)
		got := fmt.Sprintf("self %.1f MB/s, raw pty %.1f MB/s", s, w)
		if w > 0 {
			got += fmt.Sprintf(" (%.0f%%)", 100*s/w)
		}
		goal("throughput at least 85% of the raw pty", s > 0 && w > 0, s >= 0.85*w, got)
	}
	echoOK := self != nil && self.Echo != nil && self.Echo.Error == ""
	if echoOK {
		goal("echo p99 idle under 0.3 ms", true, self.Echo.IdleP99ms < 0.3, fmt.Sprintf("%.3f ms", self.Echo.IdleP99ms))
		goal("echo p99 under 1 ms while 8 neighbours flood", self.Echo.Flood >= 8, self.Echo.FloodP99ms < 1,
			fmt.Sprintf("%.3f ms with %d flooding", self.Echo.FloodP99ms, self.Echo.Flood))
	} else {
		goal("echo p99 idle under 0.3 ms", false, false, "")
		goal("echo p99 under 1 ms while 8 neighbours flood", false, false, "")
	}
	{
		s, w, b := burst(self), burst(warm), burst(bwrap)
		if w > 0 {
			s = max(s, w) // the warm target's drained pool counts too
		}
		goal(fmt.Sprintf("burst of %d with no warm container to hand out: all answer no later than bwrap's", r.Sizes.Burst), s > 0 && b > 0, s <= b,
			fmt.Sprintf("self %.2f s, warm (drained) %.2f s, bwrap %.2f s", burst(self), w, b))
	}
	if rlim != nil && rlim.Echo != nil && rlim.Echo.Error == "" {
		goal("echo p99 under 1 ms while 8 neighbours flood, without cgroups (rlimits and a nice level)", rlim.Echo.Flood >= 8, rlim.Echo.FloodP99ms < 1,
			fmt.Sprintf("%.3f ms with %d flooding", rlim.Echo.FloodP99ms, rlim.Echo.Flood))
	}
	if self != nil && self.Many != nil && self.Many.Error == "" && bwrap != nil && bwrap.Many != nil && bwrap.Many.Error == "" {
		s, b := self.Many.HostKiBPerSession, bwrap.Many.HostKiBPerSession
		goal("host memory per idle session no more than bwrap's", s > 0 && b > 0, s <= b, fmt.Sprintf("self %.0f KiB, bwrap %.0f KiB", s, b))
	} else {
		goal("host memory per idle session no more than bwrap's", false, false, "")
	}
	if self != nil && self.Many != nil && self.Many.Error == "" {
		m := self.Many
		goal("1,000 concurrent isolated sessions, all answering", m.Sessions >= 1000, m.Answered == m.Sessions,
			fmt.Sprintf("%d of %d answered", m.Answered, m.Sessions))
		goal("server memory under 64 KiB per idle session", m.Sessions >= 1000 && m.ServerRSSMiB > 0, m.ServerKiBPerSession < 64,
			fmt.Sprintf("%.1f KiB per session over %d", m.ServerKiBPerSession, m.Answered))
	} else {
		goal("1,000 concurrent isolated sessions, all answering", false, false, "")
		goal("server memory under 64 KiB per idle session", false, false, "")
	}
	if self != nil && self.Echo != nil && self.Echo.Error == "" && self.Echo.Slow > 0 {
		goal(fmt.Sprintf("echo p99 under 1 ms while 8 neighbours flood and %d slow readers are attached (issue 7's target with issue 8's slow readers)", self.Echo.Slow), self.Echo.Flood >= 8, self.Echo.SlowP99ms < 1,
			fmt.Sprintf("%.3f ms (ttyd %.3f ms)", self.Echo.SlowP99ms, slowP99(ttyd)))
	}
	if self != nil && self.Churn != nil && self.Churn.Leftover != nil {
		c := self.Churn
		goal("zero leftovers after 1,000 churn cycles", c.Cycles >= 1000, c.Failed == 0 && c.Leftover.zero(),
			fmt.Sprintf("%d cycles, %d failed; leftover %s", c.Cycles, c.Failed, c.Leftover))
	} else {
		goal("zero leftovers after 1,000 churn cycles", false, false, "")
	}
	r.Pod = r.podFigure()
}

func (r *Report) find(name string) *TargetReport {
	if r == nil {
		return nil
	}
	for _, t := range r.Targets {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// writeReport writes the report in the configured format.
func writeReport(w io.Writer, r *Report, cfg Config) error {
	switch cfg.Format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	case "markdown":
		return writeMarkdown(w, r)
	default:
		return writeTable(w, r)
	}
}

// figureTable is the report's figures as rows of cells, one column per
// target, and the errors the cells refer to.
func figureTable(r *Report) (header []string, rows [][]string, notes []string) {
	header = []string{""}
	for _, t := range r.Targets {
		header = append(header, t.Name)
	}
	row := func(label string, cell func(*TargetReport) string) {
		cells := []string{label}
		any := false
		for _, t := range r.Targets {
			c := cell(t)
			any = any || c != ""
			if c == "" {
				c = "–"
			}
			cells = append(cells, c)
		}
		if any {
			rows = append(rows, cells)
		}
	}
	errCell := func(t *TargetReport, what, err string) string {
		notes = append(notes, fmt.Sprintf("%s, %s: %s", t.Name, what, err))
		return fmt.Sprintf("error [%d]", len(notes))
	}
	f := func(v float64, digits int) string { return fmt.Sprintf("%.*f", digits, v) }
	// fList is every round's figure, in the order taken.
	fList := func(vs []float64, digits int) string {
		c := make([]string, len(vs))
		for i, v := range vs {
			c[i] = f(v, digits)
		}
		return strings.Join(c, ", ")
	}

	s := r.Sizes
	row(fmt.Sprintf("ready p50 / p90 / p99 (ms), %d sessions", s.Ready), func(t *TargetReport) string {
		if t.Ready == nil {
			return ""
		}
		if t.Ready.Error != "" && t.Ready.P50ms == 0 {
			return errCell(t, "ready", t.Ready.Error)
		}
		c := fmt.Sprintf("%s / %s / %s", f(t.Ready.P50ms, 2), f(t.Ready.P90ms, 2), f(t.Ready.P99ms, 2))
		if t.Ready.Error != "" {
			c += " " + errCell(t, "ready", t.Ready.Error)
		}
		return c
	})
	row("ready: server's own start p50 (ms)", func(t *TargetReport) string {
		if t.Ready == nil || t.Ready.StartP50ms == 0 {
			return ""
		}
		return f(t.Ready.StartP50ms, 2)
	})
	many := func(label string, cell func(*ManyResult) string) {
		row(label, func(t *TargetReport) string {
			if t.Many == nil {
				return ""
			}
			if t.Many.Error != "" && t.Many.Answered == 0 {
				if label == "many: answered" {
					return errCell(t, "many", t.Many.Error)
				}
				return ""
			}
			return cell(t.Many)
		})
	}
	many("many: answered", func(m *ManyResult) string {
		c := fmt.Sprintf("%d / %d", m.Answered, m.Sessions)
		if len(m.Errors) > 0 {
			c += " " + errCellMany(&notes, m)
		}
		return c
	})
	many("many: all ready (s)", func(m *ManyResult) string { return f(m.AllReadyS, 2) })
	many("many: each ready p50 / p99 (ms)", func(m *ManyResult) string {
		return f(m.ReadyP50, 1) + " / " + f(m.ReadyP99, 1)
	})
	many("many: server RSS idle → all open (MiB)", func(m *ManyResult) string {
		if m.ServerRSSMiB == 0 {
			return ""
		}
		return f(m.ServerRSSBeforeMiB, 1) + " → " + f(m.ServerRSSMiB, 1)
	})
	many("many: server KiB per session", func(m *ManyResult) string {
		if m.ServerRSSMiB == 0 {
			return ""
		}
		return f(m.ServerKiBPerSession, 1)
	})
	many("many: of it live heap, stacks (KiB per session)", func(m *ManyResult) string {
		if m.HeapKiBPerSession == 0 && m.StackKiBPerSession == 0 {
			return ""
		}
		return f(m.HeapKiBPerSession, 1) + ", " + f(m.StackKiBPerSession, 1)
	})
	many("many: server goroutines, fds", func(m *ManyResult) string {
		if m.ServerRSSMiB == 0 {
			return ""
		}
		g := "n/a"
		if m.Goroutines > 0 {
			g = fmt.Sprint(m.Goroutines)
		}
		return fmt.Sprintf("%s, %d", g, m.ServerFDs)
	})
	many("many: session processes, PSS KiB per session", func(m *ManyResult) string {
		if m.ServerRSSMiB == 0 {
			return ""
		}
		return fmt.Sprintf("%d, %s", m.Processes, f(m.ProcessesKiBPerSession, 0))
	})
	many("many: host memory KiB per session", func(m *ManyResult) string {
		if m.ServerRSSMiB == 0 {
			return ""
		}
		return f(m.HostKiBPerSession, 0)
	})
	many("many: all closed (s)", func(m *ManyResult) string {
		if m.CloseAllS == 0 {
			return ""
		}
		return f(m.CloseAllS, 2)
	})
	row(fmt.Sprintf("burst of %d, no warm container: all answered (s), median of %d rounds", s.Burst, s.Rounds), func(t *TargetReport) string {
		if t.Burst == nil {
			return ""
		}
		if t.Burst.Answered == 0 {
			return errCell(t, "burst", t.Burst.Error)
		}
		c := fmt.Sprintf("%s (%d / %d)", f(t.Burst.AllReadyS, 2), t.Burst.Answered, t.Burst.Sessions)
		if t.Burst.Error != "" {
			c += " " + errCell(t, "burst", t.Burst.Error+": "+strings.Join(t.Burst.Errors, "; "))
		}
		return c
	})
	row("burst: each ready p50 / p99 (ms)", func(t *TargetReport) string {
		if t.Burst == nil || t.Burst.Answered == 0 {
			return ""
		}
		return f(t.Burst.ReadyP50, 1) + " / " + f(t.Burst.ReadyP99, 1)
	})
	row("burst: each round's all answered (s), in the order taken", func(t *TargetReport) string {
		if t.Burst == nil || len(t.Burst.RoundsS) < 2 {
			return ""
		}
		return fList(t.Burst.RoundsS, 2)
	})
	row("burst: machine CPU busy (%), its busy time per session (ms)", func(t *TargetReport) string {
		if t.Burst == nil || t.Burst.Answered == 0 || t.Burst.MachineCPUMs == 0 {
			return ""
		}
		return f(t.Burst.MachineBusyPct, 0) + ", " + f(t.Burst.MachineCPUMs, 1)
	})
	row(fmt.Sprintf("throughput, median of %d (MB/s), %d MB", s.Rounds, s.Bytes/1_000_000), func(t *TargetReport) string {
		if t.Throughput == nil {
			return ""
		}
		if t.Throughput.Error != "" {
			return errCell(t, "throughput", t.Throughput.Error)
		}
		return f(t.Throughput.MBps, 1)
	})
	row("throughput: mean bytes per frame (raw: per read)", func(t *TargetReport) string {
		if t.Throughput == nil || t.Throughput.ChunkBytes == 0 {
			return ""
		}
		return fmt.Sprint(t.Throughput.ChunkBytes)
	})
	row("throughput: server CPU (ms per MB)", func(t *TargetReport) string {
		if t.Throughput == nil || t.Throughput.ServerCPUPerMB == 0 {
			return ""
		}
		return f(t.Throughput.ServerCPUPerMB, 2)
	})
	row("throughput: machine CPU busy (%)", func(t *TargetReport) string {
		if t.Throughput == nil || t.Throughput.HostBusyPct == 0 {
			return ""
		}
		return f(t.Throughput.HostBusyPct, 0)
	})
	row(fmt.Sprintf("echo p50 / p99 idle (ms), %d round trips", s.Echo), func(t *TargetReport) string {
		if t.Echo == nil {
			return ""
		}
		if t.Echo.Error != "" && t.Echo.IdleP50ms == 0 {
			return errCell(t, "echo", t.Echo.Error)
		}
		return f(t.Echo.IdleP50ms, 3) + " / " + f(t.Echo.IdleP99ms, 3)
	})
	if s.Flood > 0 {
		row(fmt.Sprintf("echo p50 / p99, %d flooding (ms)", s.Flood), func(t *TargetReport) string {
			if t.Echo == nil || t.Echo.IdleP50ms == 0 {
				return ""
			}
			if t.Echo.Error != "" {
				return errCell(t, "echo", t.Echo.Error)
			}
			return f(t.Echo.FloodP50ms, 3) + " / " + f(t.Echo.FloodP99ms, 3)
		})
		row(fmt.Sprintf("echo: each round's p99, %d flooding (ms), in the order taken; the figures are the median round's", s.Flood), func(t *TargetReport) string {
			if t.Echo == nil || len(t.Echo.FloodRoundsP99ms) < 2 {
				return ""
			}
			return fList(t.Echo.FloodRoundsP99ms, 3)
		})
		row("echo: server goroutines' wait to run, p99 during the flood (ms)", func(t *TargetReport) string {
			if t.Echo == nil || t.Echo.FloodSchedP99ms == 0 {
				return ""
			}
			return f(t.Echo.FloodSchedP99ms, 3)
		})
		row("echo: server threads' wait on the kernel's run queues during the flood (% of its time)", func(t *TargetReport) string {
			if t.Echo == nil || t.Echo.FloodRunDelayPct == 0 {
				return ""
			}
			return f(t.Echo.FloodRunDelayPct, 1)
		})
		row("echo: the floods received (MB/s), machine CPU busy (%), load average", func(t *TargetReport) string {
			if t.Echo == nil || t.Echo.FloodMBps == 0 {
				return ""
			}
			return f(t.Echo.FloodMBps, 1) + ", " + f(t.Echo.FloodBusyPct, 0) + ", " + f(t.Echo.FloodLoadAvg, 1)
		})
	}
	if s.Slow > 0 {
		row(fmt.Sprintf("echo p50 / p99, %d flooding + %d flooding to slow readers (ms)", s.Flood, s.Slow), func(t *TargetReport) string {
			if t.Echo == nil || t.Echo.Slow == 0 || t.Echo.SlowP50ms == 0 {
				return ""
			}
			return f(t.Echo.SlowP50ms, 3) + " / " + f(t.Echo.SlowP99ms, 3)
		})
		row("echo: server RSS with the floods → peak with the slow readers too (MiB)", func(t *TargetReport) string {
			if t.Echo == nil || t.Echo.SlowRSSPeakMiB == 0 {
				return ""
			}
			return f(t.Echo.SlowRSSBeforeMiB, 1) + " → " + f(t.Echo.SlowRSSPeakMiB, 1)
		})
	}
	if s.Hostile > 0 {
		row(fmt.Sprintf("echo p50 / p99, the floods ended, beside %d hostile clients sending without pause (ms)", s.Hostile), func(t *TargetReport) string {
			if t.Echo == nil || t.Echo.Hostile == 0 || t.Echo.HostileP50ms == 0 {
				return ""
			}
			return f(t.Echo.HostileP50ms, 3) + " / " + f(t.Echo.HostileP99ms, 3)
		})
		row("echo: the hostile clients' messages a second, server CPU meanwhile (% of one CPU)", func(t *TargetReport) string {
			if t.Echo == nil || t.Echo.HostileMsgsPerS == 0 {
				return ""
			}
			c := f(t.Echo.HostileMsgsPerS, 0)
			if t.Echo.HostileServerCPUPct > 0 {
				c += ", " + f(t.Echo.HostileServerCPUPct, 0)
			}
			return c
		})
	}
	row("echo: CPU per keystroke, server and sessions, idle (ms)", func(t *TargetReport) string {
		if t.Echo == nil || t.Echo.IdleCPUPerKeyMs == 0 {
			return ""
		}
		return f(t.Echo.IdleCPUPerKeyMs, 3)
	})
	churn := func(label string, cell func(*ChurnResult) string) {
		row(label, func(t *TargetReport) string {
			if t.Churn == nil {
				return ""
			}
			if t.Churn.Error != "" && label == "churn: cycles, failed" {
				return fmt.Sprintf("%d, %d ", t.Churn.Cycles, t.Churn.Failed) + errCell(t, "churn", t.Churn.Error)
			}
			return cell(t.Churn)
		})
	}
	churn("churn: cycles, failed", func(c *ChurnResult) string { return fmt.Sprintf("%d, %d", c.Cycles, c.Failed) })
	churn("churn: cycle p50 / p99 (ms)", func(c *ChurnResult) string {
		if c.CycleP50ms == 0 {
			return ""
		}
		return f(c.CycleP50ms, 2) + " / " + f(c.CycleP99ms, 2)
	})
	left := func(label string, v func(*counts) int) {
		churn("churn leftover: "+label, func(c *ChurnResult) string {
			if c.Leftover == nil {
				return ""
			}
			if n := v(c.Leftover); n != unknown {
				return fmt.Sprint(n)
			}
			return "n/a"
		})
	}
	left("processes", func(c *counts) int { return c.Processes })
	left("mounts", func(c *counts) int { return c.Mounts })
	left("fds", func(c *counts) int { return c.FDs })
	left("goroutines", func(c *counts) int { return c.Goroutines })
	left("container mount points", func(c *counts) int { return c.StateDirs })
	churn("churn: server threads before → after", func(c *ChurnResult) string {
		if c.Before == nil || c.After == nil {
			return ""
		}
		return fmt.Sprintf("%d → %d", c.Before.Threads, c.After.Threads)
	})
	row(fmt.Sprintf("resume p50 / p99 (ms), drop to screen restored, %d resumes", s.Resume), func(t *TargetReport) string {
		if t.Resume == nil {
			return ""
		}
		if t.Resume.P50ms == 0 {
			return errCell(t, "resume", t.Resume.Error)
		}
		c := f(t.Resume.P50ms, 2) + " / " + f(t.Resume.P99ms, 2)
		if t.Resume.Error != "" {
			c += " " + errCell(t, "resume", t.Resume.Error)
		}
		return c
	})
	row("resume: a new session on the same server p50 / p99 (ms)", func(t *TargetReport) string {
		if t.Resume == nil || t.Resume.NewP50ms == 0 {
			return ""
		}
		return f(t.Resume.NewP50ms, 2) + " / " + f(t.Resume.NewP99ms, 2)
	})
	row(fmt.Sprintf("detached: server KiB per session, attached → detached, %d sessions", s.Detached), func(t *TargetReport) string {
		if t.Detached == nil {
			return ""
		}
		if t.Detached.Opened == 0 {
			return errCell(t, "detached", t.Detached.Error)
		}
		c := f(t.Detached.AttachedKiB, 1) + " → " + f(t.Detached.DetachedKiB, 1)
		if t.Detached.Error != "" {
			c += " " + errCell(t, "detached", t.Detached.Error)
		}
		return c
	})
	row("detached: of it live heap and stacks, attached → detached (KiB per session)", func(t *TargetReport) string {
		if t.Detached == nil || t.Detached.AttachedHeapKiB == 0 {
			return ""
		}
		return f(t.Detached.AttachedHeapKiB, 1) + " → " + f(t.Detached.DetachedHeapKiB, 1)
	})
	row(fmt.Sprintf("watch: %d sessions with a watcher each, watched and answered", s.Watch), func(t *TargetReport) string {
		if t.Watch == nil {
			return ""
		}
		c := fmt.Sprintf("%d / %d", t.Watch.Watched, t.Watch.Sessions)
		if t.Watch.Error != "" {
			msg := t.Watch.Error
			if len(t.Watch.Errors) > 0 {
				msg += ": " + strings.Join(t.Watch.Errors, "; ")
			}
			c += " " + errCell(t, "watch", msg)
		}
		return c
	})
	row("watch: all watched and answered (s)", func(t *TargetReport) string {
		if t.Watch == nil || t.Watch.AllWatchedS == 0 {
			return ""
		}
		return f(t.Watch.AllWatchedS, 2)
	})
	row("watch: server RSS idle → sessions → watchers too (MiB)", func(t *TargetReport) string {
		if t.Watch == nil || t.Watch.RSSWatchedMiB == 0 {
			return ""
		}
		return f(t.Watch.RSSBeforeMiB, 1) + " → " + f(t.Watch.RSSSessionsMiB, 1) + " → " + f(t.Watch.RSSWatchedMiB, 1)
	})
	row("watch: server KiB per session, per watcher", func(t *TargetReport) string {
		if t.Watch == nil || t.Watch.RSSWatchedMiB == 0 {
			return ""
		}
		return f(t.Watch.SessionKiB, 1) + ", " + f(t.Watch.WatcherKiB, 1)
	})
	row(fmt.Sprintf("startup: exec to /readyz 200 (ttyd: to /), p50 / max (ms), %d starts", s.Startup), func(t *TargetReport) string {
		if t.Startup == nil {
			return ""
		}
		if t.Startup.Error != "" {
			return errCell(t, "startup", t.Startup.Error)
		}
		return f(t.Startup.P50ms, 1) + " / " + f(t.Startup.MaxMs, 1)
	})
	row("startup: of it, making the runtime's Host p50 (ms)", func(t *TargetReport) string {
		if t.Startup == nil || t.Startup.HostP50ms == 0 {
			return ""
		}
		return f(t.Startup.HostP50ms, 1)
	})
	for _, t := range r.Targets {
		for _, e := range t.Errors {
			notes = append(notes, t.Name+", "+e)
		}
	}
	return header, rows, notes
}

// phaseTable is the cold start phase by phase, one column per target that
// reported phases: p50 (mean) in ms.
func phaseTable(r *Report) (header []string, rows [][]string) {
	var ts []*TargetReport
	for _, t := range r.Targets {
		if t.Ready != nil && len(t.Ready.Phases) > 0 {
			ts = append(ts, t)
		}
	}
	if len(ts) == 0 {
		return nil, nil
	}
	header = []string{"phase (what it is)"}
	var order []string
	for _, t := range ts {
		header = append(header, t.Name+" p50 (mean)")
		for _, p := range t.Ready.Phases {
			if !slices.Contains(order, p.Name) {
				order = append(order, p.Name)
			}
		}
	}
	sums := make([]float64, len(ts))
	for _, name := range order {
		label := name
		if what := phaseLayers[name]; what != "" {
			label += " (" + what + ")"
		}
		row := []string{label}
		for i, t := range ts {
			cell := "–"
			for _, p := range t.Ready.Phases {
				if p.Name == name {
					cell = fmt.Sprintf("%.3f (%.3f)", p.P50ms, p.MeanMs)
					sums[i] += p.MeanMs
				}
			}
			row = append(row, cell)
		}
		rows = append(rows, row)
	}
	total := []string{"all phases: the runtime's start, mean"}
	for i := range ts {
		total = append(total, fmt.Sprintf("%.3f", sums[i]))
	}
	rows = append(rows, total)
	return header, rows
}

// podLines says the sessions-per-pod figure and how it was derived.
func podLines(p *PodFigure) []string {
	if p == nil {
		return nil
	}
	lines := []string{
		fmt.Sprintf("At the requests of the shipped manifest (%.0f MiB of memory, %.2f CPU), a pod holds **%d** sessions.", p.MemoryMiB, p.CPUs, p.Sessions),
		fmt.Sprintf("Memory: (%.0f MiB less the server's own %.1f MiB with no session) / %.0f KiB of host memory per idle session (%s, the many row) = %d sessions.",
			p.MemoryMiB, p.ServerIdleMiB, p.HostKiBPerSession, p.Target, p.MemorySessions),
	}
	if p.CPUSessions > 0 {
		lines = append(lines, fmt.Sprintf("CPU: an idle session uses none; all typing at once, at %.0f keystrokes a second each and %.3f ms of CPU per keystroke (server and sessions, the echo measurement), %.2f CPU / (%.0f × %.3f ms/s) = %d sessions.",
			p.KeysPerS, p.CPUPerKeyMs, p.CPUs, p.KeysPerS, p.CPUPerKeyMs, p.CPUSessions))
	}
	if p.StartupMs > 0 {
		lines = append(lines, fmt.Sprintf("A server is ready (/readyz 200) %.1f ms after its exec (%s, the startup row); a pod adds its image pull, volumes and the first readiness probe (period 5 s) to that.", p.StartupMs, p.StartupTarget))
	}
	return lines
}

func errCellMany(notes *[]string, m *ManyResult) string {
	*notes = append(*notes, "many: "+strings.Join(m.Errors, "; "))
	return fmt.Sprintf("[%d]", len(*notes))
}

// writeTable writes the report for people at a terminal.
func writeTable(w io.Writer, r *Report) error {
	var b bytes.Buffer
	m := r.Machine
	fmt.Fprintf(&b, "%d CPUs (%s), %.0f GiB, Linux %s, %s, %s, as %s\n\n", m.CPUs, m.CPU, m.MemoryGiB, m.Kernel, m.OS, m.Go, m.User)
	header, rows, notes := figureTable(r)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, row := range rows {
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	_ = tw.Flush() // writes to a bytes.Buffer
	for i, n := range notes {
		fmt.Fprintf(&b, "[%d] %s\n", i+1, n)
	}
	if len(r.Ratios) > 0 {
		fmt.Fprintln(&b, "\nratios (same run):")
		for _, x := range r.Ratios {
			fmt.Fprintf(&b, "  %-32s %.2f\n", x.Name, x.Value)
		}
	}
	if h, rows := phaseTable(r); len(rows) > 0 {
		fmt.Fprintln(&b, "\ncold start, phase by phase (ms):")
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, strings.Join(h, "\t"))
		for _, row := range rows {
			fmt.Fprintln(tw, strings.Join(row, "\t"))
		}
		_ = tw.Flush() // writes to a bytes.Buffer
	}
	if lines := podLines(r.Pod); len(lines) > 0 {
		fmt.Fprintln(&b, "\nsessions per pod:")
		for _, l := range lines {
			fmt.Fprintln(&b, "  "+strings.ReplaceAll(l, "**", ""))
		}
	}
	fmt.Fprintln(&b, "\ngoals:")
	for _, g := range r.Goals {
		fmt.Fprintf(&b, "  %-12s %s: %s\n", g.Status, g.Goal, g.Got)
	}
	fmt.Fprintf(&b, "\n%s (%.0f s)\n", r.Command, r.Seconds)
	_, err := w.Write(b.Bytes())
	return err
}

// analysis is BENCHMARKS.md's hand-written part: what the figures mean
// and why goals are missed, from the investigation behind them.
//
//go:embed analysis.md
var analysis string

// writeMarkdown writes BENCHMARKS.md.
func writeMarkdown(w io.Writer, r *Report) error {
	var b bytes.Buffer
	m := r.Machine
	fmt.Fprintf(&b, "# Benchmarks\n\n")
	fmt.Fprintf(&b, "Generated by `cmd/playground-load/bench.sh` (which runs `%s`) on %s. ", r.Command, r.Date)
	fmt.Fprintf(&b, "Every figure below is measured in that one run, %.0f s long; nothing is copied from elsewhere. ", r.Seconds)
	fmt.Fprintf(&b, "To regenerate: `cmd/playground-load/bench.sh` (as root for root mode, or as an ordinary user).\n\n")
	fmt.Fprintf(&b, "## Machine\n\n")
	fmt.Fprintf(&b, "| | |\n| --- | --- |\n")
	fmt.Fprintf(&b, "| CPUs | %d (%s) |\n| memory | %.1f GiB |\n| kernel | Linux %s |\n| system | %s |\n| Go | %s |\n| ran as | %s |\n| containers' init | %s |\n",
		m.CPUs, m.CPU, m.MemoryGiB, m.Kernel, m.OS, m.Go, m.User, m.Init)
	if m.Bwrap != "" {
		fmt.Fprintf(&b, "| bubblewrap | %s |\n", m.Bwrap)
	}
	if m.TTYD != "" {
		fmt.Fprintf(&b, "| ttyd | %s |\n", m.TTYD)
	}
	fmt.Fprintf(&b, "\n## Targets\n\n")
	for _, t := range r.Targets {
		fmt.Fprintf(&b, "- **%s**: %s\n", t.Name, t.Description)
	}
	s := r.Sizes
	fmt.Fprintf(&b, "\nEvery shell is `/bin/sh` (dash) with `PS1='$ '`. Each server is started afresh for each measurement, "+
		"on 127.0.0.1, as a child process, so that /proc shows its figures alone; ready, throughput, burst and echo take the targets in turn, "+
		"their servers running side by side, and throughput, burst and echo take %d rounds each, the median round counting. "+
		"Sizes: ready N=%d, many N=%d, burst U=%d, throughput B=%d bytes, "+
		"echo K=%d with M=%d flooding, S=%d flooding to slow readers besides, then H=%d hostile clients (their process at nice 19), churn C=%d. "+
		"MB is 10^6 bytes; KiB 1024 bytes.\n\n", s.Rounds, s.Ready, s.Many, s.Burst, s.Bytes, s.Echo, s.Flood, s.Slow, s.Hostile, s.Churn)
	fmt.Fprintf(&b, "## How to rerun\n\n")
	fmt.Fprintf(&b, "    cmd/playground-load/bench.sh [--ttyd PATH]    # this file, a few minutes\n")
	fmt.Fprintf(&b, "    go run ./cmd/playground-load                  # the same figures as a table, without ttyd\n")
	fmt.Fprintf(&b, "    go run ./cmd/playground-load --short          # a quick look, seconds\n")
	fmt.Fprintf(&b, "    go run ./cmd/playground-load --url ws://HOST:PORT/ws [--server-pid PID]   # any server that speaks ttyd's protocol\n\n")
	fmt.Fprintf(&b, "## Figures\n\n")
	header, rows, notes := figureTable(r)
	fmt.Fprintf(&b, "| %s |\n|%s\n", strings.Join(header, " | "), strings.Repeat(" --- |", len(header)))
	for _, row := range rows {
		fmt.Fprintf(&b, "| %s |\n", strings.Join(row, " | "))
	}
	if len(notes) > 0 {
		fmt.Fprintln(&b)
		for i, n := range notes {
			fmt.Fprintf(&b, "%d. %s\n", i+1, strings.ReplaceAll(n, "\n", " "))
		}
	}
	if len(r.Ratios) > 0 {
		fmt.Fprintf(&b, "\n## Ratios\n\nEach figure over its baseline from the same run.\n\n| ratio | value |\n| --- | --- |\n")
		for _, x := range r.Ratios {
			fmt.Fprintf(&b, "| %s | %.2f |\n", x.Name, x.Value)
		}
	}
	if h, rows := phaseTable(r); len(rows) > 0 {
		fmt.Fprintf(&b, "\n## Cold start, phase by phase\n\nIssue 6: what each layer of a container's start costs, from the stamps the runtime records of every start of the ready measurement (runtime's `StartPhases`): each phase from the end of the one before, in ms. The sealed copy of the binary (memfd) is made once, when the server starts (the startup row, \"making the runtime's Host\"); cold start p50 beside bubblewrap's behind the same server is the ready row.\n\n")
		fmt.Fprintf(&b, "| %s |\n|%s\n", strings.Join(h, " | "), strings.Repeat(" --- |", len(h)))
		for _, row := range rows {
			fmt.Fprintf(&b, "| %s |\n", strings.Join(row, " | "))
		}
	}
	if lines := podLines(r.Pod); len(lines) > 0 {
		fmt.Fprintf(&b, "\n## Sessions per pod\n\nIssue 11, from this run's figures.\n\n")
		for _, l := range lines {
			fmt.Fprintf(&b, "- %s\n", l)
		}
	}
	fmt.Fprintf(&b, "\n## Goals\n\nFrom issues 3, 6 and 7; a missed goal is a finding, explained under Analysis, never a reason to loosen the goal.\n\n| goal | this run | status |\n| --- | --- | --- |\n")
	for _, g := range r.Goals {
		fmt.Fprintf(&b, "| %s | %s | **%s** |\n", g.Goal, g.Got, g.Status)
	}
	fmt.Fprintf(&b, "\n%s", analysis)
	_, err := w.Write(b.Bytes())
	return err
}

// machine describes this machine.
// linking says how this binary, which is also the servers' and their
// containers' init, was linked: a cgo build (go run on a machine with a C
// compiler) starts every container's init through the dynamic loader and
// libc, a static one (CGO_ENABLED=0, as the release is built) does not.
func linking() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "CGO_ENABLED" && s.Value == "0" {
				return "static (CGO_ENABLED=0, as the release is built)"
			}
		}
	}
	return "cgo (dynamically linked)"
}

func machine(cfg Config) Machine {
	m := Machine{
		CPUs:      numCPU(),
		CPU:       cpuModel(),
		MemoryGiB: round(float64(memTotal())/(1<<30), 1),
		Kernel:    kernel(),
		OS:        osName(),
		Go:        goVersion() + ", " + linking(),
		User:      fmt.Sprintf("uid %d", os.Getuid()),
		Init:      "this binary (no init embedded: go run, go build)",
	}
	if runtime.EmbeddedInit() {
		m.Init = "the embedded init binary (deploy/build.sh, as the release is built)"
	}
	if os.Getuid() == 0 {
		m.User = "root (containers get a 65536-id range each)"
	} else {
		m.User = fmt.Sprintf("uid %d, an ordinary user (container root is that user)", os.Getuid())
	}
	if out, err := exec.Command("bwrap", "--version").Output(); err == nil {
		m.Bwrap = strings.TrimSpace(string(out))
	}
	if p := cfg.ttydPath(); p != "" && slices.Contains(cfg.Targets, "ttyd") {
		if out, err := exec.Command(p, "--version").Output(); err == nil {
			m.TTYD = strings.TrimSpace(string(out))
		}
	}
	return m
}

// shellQuote joins args into a command line a shell reads back as args.
func shellQuote(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=./:,") == "" {
			out[i] = a
			continue
		}
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}
