//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// measure runs every chosen measurement on every chosen target, each on a
// server started for it alone, and returns the report. Its error is for a
// run that could not be made at all; a measurement that fails is recorded
// in the report and the run goes on.
func measure(ctx context.Context, cfg Config, progress io.Writer) (*Report, error) {
	l, err := newLauncher(&cfg)
	if err != nil {
		return nil, fmt.Errorf("work dir: %w", err)
	}
	rep := newReport(cfg)
	defer func() {
		if err := l.cleanup(); err != nil {
			fmt.Fprintln(progress, "playground-load: remove work dir:", err)
		}
	}()
	t0 := time.Now()

	// ready and throughput take the targets in turn, so that a noisy
	// moment of the machine falls on all alike: every target's server runs
	// meanwhile, idle when it is not its turn.
	inTurn := func(m string, f func([]*target)) {
		if !cfg.measures(m) {
			return
		}
		var ts []*target
		for _, name := range cfg.Targets {
			if !measuredOn(m, name) {
				continue
			}
			if t := rep.start(ctx, l, name, m); t != nil {
				ts = append(ts, t)
			}
		}
		f(ts)
		for _, t := range ts {
			rep.stop(t, m)
		}
	}
	inTurn("ready", func(ts []*target) {
		fmt.Fprintf(progress, "ready: %d sequential sessions on each of %s, in turn\n", cfg.Ready, strings.Join(cfg.Targets, ", "))
		for name, r := range measureReady(ctx, ts, cfg.Ready, progress) {
			rep.get(name).Ready = r
		}
		// What each layer of a container's start cost, from the starts
		// just measured (servers of this command that start containers).
		for _, t := range ts {
			if ps, err := t.phases(ctx); err == nil && len(ps) > 0 {
				rep.get(t.name).Ready.Phases = phaseFigures(ps)
			}
		}
	})
	each := func(m string, f func(*target) string) {
		if !cfg.measures(m) {
			return
		}
		for _, name := range cfg.Targets {
			if !measuredOn(m, name) {
				continue
			}
			if ctx.Err() != nil {
				rep.get(name).fail(m, ctx.Err())
				continue
			}
			if t := rep.start(ctx, l, name, m); t != nil {
				line := f(t)
				rep.stop(t, m)
				fmt.Fprintf(progress, "%s %s: %s\n", m, name, line)
			}
		}
	}
	each("many", func(t *target) string {
		fmt.Fprintf(progress, "many %s: %d sessions at once\n", t.name, cfg.Many)
		r := measureMany(ctx, t, cfg.Many, progress)
		rep.get(t.name).Many = r
		return fmt.Sprintf("%d/%d answered in %.2f s, server %.1f KiB/session %s", r.Answered, r.Sessions, r.AllReadyS, r.ServerKiBPerSession, r.Error)
	})
	inTurn("burst", func(ts []*target) {
		fmt.Fprintf(progress, "burst: %d sessions at once, no warm container, %d rounds on each of %s, in turn\n", cfg.Burst, cfg.Rounds, strings.Join(cfg.Targets, ", "))
		for name, r := range measureBursts(ctx, ts, cfg.Burst, cfg.Rounds, progress) {
			rep.get(name).Burst = r
		}
	})
	inTurn("throughput", func(ts []*target) {
		fmt.Fprintf(progress, "throughput: %d bytes, %d rounds on each of %s, in turn\n", cfg.Bytes, cfg.Rounds, strings.Join(cfg.Targets, ", "))
		for name, r := range measureThroughput(ctx, ts, cfg.Bytes, cfg.Rounds, progress) {
			rep.get(name).Throughput = r
		}
	})
	inTurn("echo", func(ts []*target) {
		fmt.Fprintf(progress, "echo: %d round trips, %d rounds on each of %s, in turn\n", cfg.Echo, cfg.Rounds, strings.Join(cfg.Targets, ", "))
		for name, r := range measureEchoes(ctx, ts, cfg.Echo, cfg.Flood, cfg.Slow, cfg.Hostile, cfg.Rounds, progress) {
			rep.get(name).Echo = r
		}
	})
	each("churn", func(t *target) string {
		r := measureChurn(ctx, t, cfg.Churn, progress)
		rep.get(t.name).Churn = r
		left := "n/a"
		if r.Leftover != nil {
			left = r.Leftover.String()
		}
		return fmt.Sprintf("%d cycles, leftover %s %s", r.Cycles, left, r.Error)
	})
	each("resume", func(t *target) string {
		r := measureResume(ctx, t, cfg.Resume, progress)
		rep.get(t.name).Resume = r
		return fmt.Sprintf("p50 %.2f ms, p99 %.2f ms over %d resumes (a new session: p50 %.2f ms) %s", r.P50ms, r.P99ms, r.Resumes, r.NewP50ms, r.Error)
	})
	each("detached", func(t *target) string {
		r := measureDetached(ctx, t, cfg.Detached, progress)
		rep.get(t.name).Detached = r
		return fmt.Sprintf("%.1f KiB per detached session, %.1f attached %s", r.DetachedKiB, r.AttachedKiB, r.Error)
	})
	each("watch", func(t *target) string {
		r := measureWatch(ctx, t, cfg.Watch, progress)
		rep.get(t.name).Watch = r
		return fmt.Sprintf("%d of %d watched sessions answered, %.1f KiB per watcher %s", r.Watched, r.Sessions, r.WatcherKiB, r.Error)
	})
	if cfg.measures("startup") {
		for _, name := range cfg.Targets {
			if !measuredOn("startup", name) {
				continue
			}
			r := measureStartup(ctx, func() (*target, error) { return l.start(ctx, name, "startup") }, cfg.Startup, progress)
			rep.get(name).Startup = r
			fmt.Fprintf(progress, "startup %s: p50 %.1f ms to /readyz 200 %s\n", name, r.P50ms, r.Error)
		}
	}
	rep.Seconds = round(time.Since(t0).Seconds(), 1)
	rep.evaluate()
	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("the run was cut short: %w", err)
	}
	return rep, nil
}

// measuredOn says which targets a measurement takes: the raw pty has no
// server to connect to, start or hold sessions; ttyd has no resume, watch
// or detached sessions; the playground binary itself (serve) is measured
// for its start only, as its limits (connection rate, sessions per
// client) are an operator's, not a load test's.
func measuredOn(m, name string) bool {
	switch name {
	case "raw":
		return m == "ready" || m == "throughput" || m == "echo"
	case "serve":
		return m == "startup"
	case "ttyd":
		return m != "resume" && m != "detached" && m != "watch"
	case "url":
		return m != "startup"
	}
	return true
}

// start starts a target for a measurement, or records why it could not.
func (r *Report) start(ctx context.Context, l *launcher, name, m string) *target {
	t, err := l.start(ctx, name, m)
	if err != nil {
		r.get(name).fail(m, err)
		return nil
	}
	return t
}

// stop stops a target, recording a server that did not stop cleanly.
func (r *Report) stop(t *target, m string) {
	if err := t.stop(); err != nil {
		tr := r.get(t.name)
		tr.Errors = append(tr.Errors, fmt.Sprintf("%s: stop: %v", m, err))
	}
}

// fail records that a measurement could not be made on a target.
func (tr *TargetReport) fail(m string, err error) {
	msg := err.Error()
	switch m {
	case "ready":
		tr.Ready = &ReadyResult{Error: msg}
	case "many":
		tr.Many = &ManyResult{Error: msg}
	case "burst":
		tr.Burst = &BurstResult{Error: msg}
	case "throughput":
		tr.Throughput = &ThroughputResult{Error: msg}
	case "echo":
		tr.Echo = &EchoResult{Error: msg}
	case "churn":
		tr.Churn = &ChurnResult{Error: msg}
	case "resume":
		tr.Resume = &ResumeResult{Error: msg}
	case "detached":
		tr.Detached = &DetachedResult{Error: msg}
	case "watch":
		tr.Watch = &WatchResult{Error: msg}
	case "startup":
		tr.Startup = &StartupResult{Error: msg}
	}
}

// failures counts the measurements that could not be made at all, and
// servers that did not stop cleanly. Sessions that failed within a
// measurement that produced figures are findings, shown in the report.
func (r *Report) failures() int {
	n := 0
	for _, t := range r.Targets {
		if t.Ready != nil && t.Ready.Error != "" && t.Ready.P50ms == 0 {
			n++
		}
		if t.Many != nil && t.Many.Error != "" && t.Many.Answered == 0 {
			n++
		}
		if t.Burst != nil && t.Burst.Error != "" && t.Burst.Answered == 0 {
			n++
		}
		if t.Throughput != nil && t.Throughput.Error != "" {
			n++
		}
		if t.Echo != nil && t.Echo.Error != "" {
			n++
		}
		if t.Churn != nil && t.Churn.Error != "" && t.Churn.Failed == t.Churn.Cycles {
			n++
		}
		if t.Resume != nil && t.Resume.Error != "" && t.Resume.P50ms == 0 {
			n++
		}
		if t.Detached != nil && t.Detached.Error != "" && t.Detached.Opened == 0 {
			n++
		}
		if t.Watch != nil && t.Watch.Error != "" && t.Watch.Watched == 0 {
			n++
		}
		if t.Startup != nil && t.Startup.Error != "" {
			n++
		}
		n += len(t.Errors)
	}
	return n
}

// get returns the report of a target, making it on first use.
func (r *Report) get(name string) *TargetReport {
	for _, t := range r.Targets {
		if t.Name == name {
			return t
		}
	}
	t := &TargetReport{Name: name, Description: describe[name]}
	r.Targets = append(r.Targets, t)
	slices.SortStableFunc(r.Targets, func(a, b *TargetReport) int {
		return slices.Index(allTargets, a.Name) - slices.Index(allTargets, b.Name)
	})
	return t
}
