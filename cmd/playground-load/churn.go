//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// ChurnResult is C connect, command, disconnect cycles, and what the
// server holds afterwards beyond what it held before.
type ChurnResult struct {
	Cycles     int     `json:"cycles"`
	Failed     int     `json:"failed"`
	Seconds    float64 `json:"seconds"`
	CycleP50ms float64 `json:"cycle_p50_ms"`
	CycleP99ms float64 `json:"cycle_p99_ms"`
	Before     *counts `json:"before,omitempty"`
	After      *counts `json:"after,omitempty"`
	// Leftover is After less Before; all zero is the target.
	Leftover *counts `json:"leftover,omitempty"`
	Error    string  `json:"error,omitempty"`
}

// counts are the things a session must not leave behind. -1 means the
// figure cannot be read for this server.
type counts struct {
	Processes  int `json:"processes"`
	Mounts     int `json:"mounts"`
	FDs        int `json:"fds"`
	Threads    int `json:"threads"`
	Goroutines int `json:"goroutines"`
	// StateDirs are container mount points in self's state dir.
	StateDirs int `json:"state_dirs"`
}

func (c *counts) zero() bool {
	return c.Processes <= 0 && c.Mounts <= 0 && c.FDs <= 0 && c.Goroutines <= 0 && c.StateDirs <= 0
}

func (c *counts) String() string {
	f := func(v int) string {
		if v == unknown {
			return "n/a"
		}
		return fmt.Sprint(v)
	}
	return fmt.Sprintf("procs %s, mounts %s, fds %s, goroutines %s, dirs %s",
		f(c.Processes), f(c.Mounts), f(c.FDs), f(c.Goroutines), f(c.StateDirs))
}

const unknown = -1

// measureChurn runs c cycles one after another, each a fresh session that
// answers and is closed by the client, then waits (boundedly) for the
// server to be back where it started and reports the difference.
func measureChurn(ctx context.Context, t *target, c int, progress io.Writer) *ChurnResult {
	r := &ChurnResult{Cycles: c}
	// A warm pool's standing containers are not leftovers: compare the
	// server with its pool full, before and after.
	if err := waitPoolFull(ctx, t); err != nil {
		r.Error = err.Error()
		return r
	}
	if t.pid > 0 {
		b, err := takeCounts(ctx, t)
		if err != nil {
			r.Error = err.Error()
			return r
		}
		r.Before = b
	}
	var times []time.Duration
	t0 := time.Now()
	var first error
	for i := range c {
		if ctx.Err() != nil {
			r.Failed += c - i
			first = cmpOr(first, ctx.Err())
			break
		}
		d, err := readyOnce(ctx, t)
		if err != nil {
			r.Failed++
			first = cmpOr(first, err)
			continue
		}
		times = append(times, d)
		if (i+1)%250 == 0 {
			fmt.Fprintf(progress, "  churn: %d/%d cycles\n", i+1, c)
		}
	}
	r.Seconds = round(time.Since(t0).Seconds(), 3)
	r.CycleP50ms, r.CycleP99ms = ms(pct(times, 50)), ms(pct(times, 99))
	if first != nil {
		r.Error = fmt.Sprintf("%d of %d cycles failed; the first: %v", r.Failed, c, first)
	}
	if r.Before == nil {
		return r
	}
	// Sessions end on the server's time after the client has gone: wait
	// for their traces to go, at most 10 s.
	var after *counts
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if err := waitPoolFull(ctx, t); err != nil {
			r.Error = err.Error()
			return r
		}
		a, err := takeCounts(ctx, t)
		if err != nil {
			r.Error = err.Error()
			return r
		}
		after = a
		if diff(a, r.Before).zero() || time.Now().After(deadline) {
			break
		}
	}
	r.After, r.Leftover = after, diff(after, r.Before)
	return r
}

// waitPoolFull waits, at most 10 s, until a server with a warm pool has
// it full; at once for any other.
func waitPoolFull(ctx context.Context, t *target) error {
	if !t.warm || t.statsURL == "" {
		return nil
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		st, err := t.stats(ctx, false)
		if err != nil {
			return fmt.Errorf("server stats: %w", err)
		}
		if st.Warm >= st.WarmSize {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("warm pool: %d of %d after 10 s", st.Warm, st.WarmSize)
		}
	}
}

func takeCounts(ctx context.Context, t *target) (*counts, error) {
	s, err := snapshot(t.pid)
	if err != nil {
		return nil, err
	}
	c := &counts{Processes: s.Descendants, Mounts: s.Mounts, FDs: s.FDs, Threads: s.Threads, Goroutines: unknown, StateDirs: unknown}
	if t.statsURL != "" {
		st, err := t.stats(ctx, false)
		if err != nil {
			return nil, fmt.Errorf("server stats: %w", err)
		}
		c.Goroutines = st.Goroutines
	}
	if t.stateDir != "" {
		c.StateDirs = mountPoints(t.stateDir)
	}
	return c, nil
}

// mountPoints counts the containers' mount points in a state dir.
func mountPoints(dir string) int {
	ents, _ := os.ReadDir(dir) // none yet when missing
	n := 0
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "c-") {
			n++
		}
	}
	return n
}

// diff is a less b, field by field; unknown stays unknown.
func diff(a, b *counts) *counts {
	d := func(x, y int) int {
		if x == unknown || y == unknown {
			return unknown
		}
		return x - y
	}
	return &counts{
		Processes:  d(a.Processes, b.Processes),
		Mounts:     d(a.Mounts, b.Mounts),
		FDs:        d(a.FDs, b.FDs),
		Threads:    d(a.Threads, b.Threads),
		Goroutines: d(a.Goroutines, b.Goroutines),
		StateDirs:  d(a.StateDirs, b.StateDirs),
	}
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
