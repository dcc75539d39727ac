package image

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/schollz/progressbar/v3"
)

// Phase is a step of preparing an environment.
type Phase string

const (
	PhaseQueued      Phase = "queued"      // not started yet
	PhasePreparing   Phase = "preparing"   // started; nothing to count yet
	PhaseWaiting     Phase = "waiting"     // for another process preparing the same source (the cache's lock)
	PhaseResolving   Phase = "resolving"   // looking up an image's manifest
	PhaseDownloading Phase = "downloading" // a tarball: Done and Total are its bytes
	PhaseVerifying   Phase = "verifying"   // its SHA-256 against the pin
	PhaseUnpacking   Phase = "unpacking"   // Done and Total are bytes of the archive read
	PhasePulling     Phase = "pulling"     // an image's layers, downloaded and unpacked as they come: compressed bytes
	PhaseFinishing   Phase = "finishing"   // setting modes, writing to disk, moving into the cache
	PhaseReady       Phase = "ready"
	PhaseFailed      Phase = "failed"
)

// Progress is how far preparing an environment has come: data, for a
// progress bar, a log line, a NOTICE to a waiting session or /readyz.
type Progress struct {
	Env    string // the environment's name
	Source string // its canonical source
	Phase  Phase
	Done   int64 // bytes done in this phase
	Total  int64 // bytes in this phase; 0 when not known
	Err    error // why it failed, with PhaseFailed
}

// String says it for a person: "ubuntu: downloading 12.0 MiB of 29.6 MiB
// (40%)".
func (p Progress) String() string {
	s := p.Env + ": " + string(p.Phase)
	switch {
	case p.Phase == PhaseFailed && p.Err != nil:
		s += ": " + p.Err.Error()
	case p.Total > 0:
		s += fmt.Sprintf(" %s of %s (%d%%)", HumanBytes(p.Done), HumanBytes(p.Total), p.Percent())
	case p.Done > 0:
		s += " " + HumanBytes(p.Done)
	}
	return s
}

// Percent is Done of Total, 0 to 100; 0 when Total is not known.
func (p Progress) Percent() int {
	if p.Total <= 0 {
		return 0
	}
	pc := int(p.Done * 100 / p.Total)
	return min(max(pc, 0), 100)
}

// ProgressFunc receives progress. It is called from the preparing
// goroutine, at most every 100 ms within a phase and at every change of
// phase, and must not block.
type ProgressFunc func(Progress)

// HumanBytes is n in IEC units: "512 B", "12.0 MiB", "1.5 GiB".
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// HumanRate is bytes per second in IEC units: "5.1 MiB/s".
func HumanRate(bytes int64, d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return HumanBytes(int64(float64(bytes)/d.Seconds())) + "/s"
}

// meter reports a phase's bytes, throttled.
type meter struct {
	fn    ProgressFunc
	base  Progress
	last  time.Time
	every time.Duration
}

func newMeter(fn ProgressFunc, base Progress, phase Phase, total int64) *meter {
	base.Phase, base.Total, base.Done = phase, total, 0
	m := &meter{fn: fn, base: base, every: 100 * time.Millisecond}
	m.emit()
	return m
}

func (m *meter) emit() {
	m.last = time.Now()
	if m.fn != nil {
		m.fn(m.base)
	}
}

func (m *meter) add(n int64) {
	m.base.Done += n
	if time.Since(m.last) >= m.every {
		m.emit()
	}
}

func (m *meter) set(done int64) {
	m.base.Done = done
	if time.Since(m.last) >= m.every {
		m.emit()
	}
}

// end reports the phase's last figure.
func (m *meter) end() { m.emit() }

// countingReader reports the bytes read through it to a meter.
type countingReader struct {
	r io.Reader
	m *meter
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.m.add(int64(n))
	return n, err
}

// Reporter shows progress to a person: a progress bar on w when w is a
// terminal, else a structured log line at every change of phase and every
// interval in between, with sizes and rates in human units. Safe for
// concurrent use by several environments; on a terminal, one bar at a
// time is drawn and the others are logged.
type Reporter struct {
	log      zerolog.Logger
	w        io.Writer
	tty      bool
	interval time.Duration

	mu    sync.Mutex
	bar   *progressbar.ProgressBar
	owner string // env whose bar it is
	state map[string]*reportState
}

type reportState struct {
	phase     Phase
	started   time.Time
	lastLog   time.Time
	startDone int64
	last      Progress
}

// NewReporter makes a Reporter; tty says whether w is a terminal (the
// caller knows how to ask on its platform); interval is how often a log
// line repeats within a phase (2 s when zero).
func NewReporter(w io.Writer, tty bool, log zerolog.Logger, interval time.Duration) *Reporter {
	if interval <= 0 {
		interval = 2 * time.Second
	}
	return &Reporter{log: log, w: w, tty: tty, interval: interval, state: map[string]*reportState{}}
}

// Report shows p.
func (r *Reporter) Report(p Progress) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	st := r.state[p.Env]
	changed := st == nil || st.phase != p.Phase
	if changed {
		if st != nil && st.last.Done > 0 && !r.barOwner(p.Env) {
			r.logDone(st, now)
		}
		st = &reportState{phase: p.Phase, started: now, startDone: p.Done}
		r.state[p.Env] = st
	}
	st.last = p
	counted := p.Phase == PhaseDownloading || p.Phase == PhaseVerifying || p.Phase == PhaseUnpacking || p.Phase == PhasePulling
	if r.tty && counted && (r.owner == "" || r.owner == p.Env) {
		r.drawBar(p, changed)
		return
	}
	if r.owner == p.Env {
		r.finishBar(p.Phase != PhaseFailed)
	}
	if r.tty && (p.Phase == PhasePreparing || p.Phase == PhaseFinishing) {
		return // a person at a terminal needs no line for these
	}
	if !changed && now.Sub(st.lastLog) < r.interval {
		return
	}
	st.lastLog = now
	ev := r.log.Info()
	if p.Phase == PhaseFailed {
		ev = r.log.Error().AnErr("error", p.Err)
	}
	ev = ev.Str("env", p.Env).Str("source", p.Source).Str("phase", string(p.Phase))
	if p.Total > 0 || p.Done > 0 {
		ev = ev.Str("done", HumanBytes(p.Done))
	}
	if p.Total > 0 {
		ev = ev.Str("total", HumanBytes(p.Total)).Int("percent", p.Percent())
	}
	if !changed && p.Done > st.startDone {
		ev = ev.Str("rate", HumanRate(p.Done-st.startDone, now.Sub(st.started)))
	}
	ev.Msg("environment " + string(p.Phase))
}

func (r *Reporter) barOwner(env string) bool { return r.tty && r.owner == env }

// logDone logs the last figure of a phase that ended, with its rate.
func (r *Reporter) logDone(st *reportState, now time.Time) {
	p := st.last
	ev := r.log.Info().Str("env", p.Env).Str("source", p.Source).Str("phase", string(p.Phase)).Str("done", HumanBytes(p.Done))
	if p.Total > 0 {
		ev = ev.Str("total", HumanBytes(p.Total)).Int("percent", p.Percent())
	}
	if p.Done > st.startDone {
		ev = ev.Str("rate", HumanRate(p.Done-st.startDone, now.Sub(st.started)))
	}
	ev.Float64("took_ms", float64(now.Sub(st.started).Microseconds())/1000).Msg("environment " + string(p.Phase) + " done")
}

func (r *Reporter) drawBar(p Progress, changed bool) {
	if changed || r.bar == nil {
		r.finishBar(true)
		total := p.Total
		if total <= 0 {
			total = -1
		}
		r.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(r.w),
			progressbar.OptionSetDescription(p.Env+": "+string(p.Phase)),
			progressbar.OptionShowBytes(true),
			progressbar.OptionUseIECUnits(true),
			progressbar.OptionShowCount(),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetSpinnerChangeInterval(0), // no goroutine of its own
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(r.w) }),
		)
		r.owner = p.Env
	}
	_ = r.bar.Set64(p.Done) // a terminal write that fails is nothing to stop for
}

// finishBar ends the bar: at 100% when its phase completed.
func (r *Reporter) finishBar(complete bool) {
	if r.bar != nil {
		if complete && r.bar.GetMax64() > 0 {
			_ = r.bar.Finish() // draws 100% and the newline
		} else {
			_ = r.bar.Exit()
			fmt.Fprintln(r.w)
		}
		r.bar = nil
		r.owner = ""
	}
}

// Close ends any bar still drawn.
func (r *Reporter) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.finishBar(false)
}
