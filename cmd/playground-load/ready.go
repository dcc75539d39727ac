//go:build linux

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"
)

// ReadyResult is the time from dialing to the answer of the first
// command, over sequential sessions.
type ReadyResult struct {
	Sessions int     `json:"sessions"`
	Failed   int     `json:"failed"`
	P50ms    float64 `json:"p50_ms"`
	P90ms    float64 `json:"p90_ms"`
	P99ms    float64 `json:"p99_ms"`
	MaxMs    float64 `json:"max_ms"`
	// StartP50ms is the server's own figure for starting a session's
	// terminal (its StartFunc: runtime.Start for self), from its log; 0
	// when the server does not log it.
	StartP50ms float64 `json:"start_p50_ms,omitempty"`
	// Phases are that start, phase by phase, for servers that start
	// containers (issue 6: the cost of each layer on a cold start).
	Phases []PhaseFigure `json:"phases,omitempty"`
	Error  string        `json:"error,omitempty"`
}

// sessionTimeout bounds one session's wait for its answer.
const sessionTimeout = 30 * time.Second

// measureReady opens n sessions one after another on each target, taking
// the targets in turn (self, plain, bwrap, self, ...), so that a noisy
// moment of the machine falls on all of them alike. Each session is timed
// from the dial (or, for raw, the pty's start) to the answer, then closed.
func measureReady(ctx context.Context, targets []*target, n int, progress io.Writer) map[string]*ReadyResult {
	times := map[string][]time.Duration{}
	res := map[string]*ReadyResult{}
	for _, t := range targets {
		res[t.name] = &ReadyResult{Sessions: n}
	}
	for i := range n {
		for _, t := range targets {
			r := res[t.name]
			if ctx.Err() != nil {
				r.Failed++
				r.noteError(ctx.Err())
				continue
			}
			// A warm pool is given the time to refill between sessions,
			// outside the timing: its figure is a visitor's wait while
			// arrivals stay within what the pool refills.
			if err := waitPoolFull(ctx, t); err != nil {
				r.Failed++
				r.noteError(err)
				continue
			}
			d, err := readyOnce(ctx, t)
			if err != nil {
				r.Failed++
				r.noteError(err)
				continue
			}
			times[t.name] = append(times[t.name], d)
		}
		if (i+1)%50 == 0 {
			fmt.Fprintf(progress, "  ready: %d/%d sessions per target\n", i+1, n)
		}
	}
	for _, t := range targets {
		r := res[t.name]
		ts := times[t.name]
		if len(ts) > 0 {
			r.P50ms, r.P90ms, r.P99ms, r.MaxMs = ms(pct(ts, 50)), ms(pct(ts, 90)), ms(pct(ts, 99)), ms(pct(ts, 100))
		}
		if t.logPath != "" {
			if st := spawnTimes(t.logPath); len(st) > 0 {
				r.StartP50ms = ms(pct(st, 50))
			}
		}
		if r.Failed > 0 && r.Error != "" {
			r.Error = fmt.Sprintf("%d of %d sessions failed; the first: %s", r.Failed, n, r.Error)
		}
	}
	return res
}

func readyOnce(ctx context.Context, t *target) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, sessionTimeout)
	defer cancel()
	t0 := time.Now()
	s, err := t.open(ctx)
	if err != nil {
		return 0, err
	}
	defer s.close()
	if err := ask(ctx, s); err != nil {
		return 0, t.withServerReason(err)
	}
	return time.Since(t0), nil
}

func (r *ReadyResult) noteError(err error) {
	if r.Error == "" {
		r.Error = err.Error()
	}
}

// spawnTimes reads the spawn_ms of every "session start" line of a
// playground server's JSON log.
func spawnTimes(logPath string) []time.Duration {
	f, err := os.Open(logPath)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []time.Duration
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var line struct {
			Message string   `json:"message"`
			SpawnMs *float64 `json:"spawn_ms"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Message == "session start" && line.SpawnMs != nil {
			out = append(out, time.Duration(*line.SpawnMs*float64(time.Millisecond)))
		}
	}
	return out
}
