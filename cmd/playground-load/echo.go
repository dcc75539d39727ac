//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// EchoResult is keystroke echo: one byte typed into cat, with the terminal
// in raw mode, and the same byte back, timed from send to receipt.
type EchoResult struct {
	RoundTrips int     `json:"round_trips"`
	IdleP50ms  float64 `json:"idle_p50_ms"`
	IdleP99ms  float64 `json:"idle_p99_ms"`
	IdleMaxMs  float64 `json:"idle_max_ms"`
	// Flood is how many other sessions printed without end meanwhile, and
	// FloodMBps what their clients received together.
	Flood      int     `json:"flood"`
	FloodP50ms float64 `json:"flood_p50_ms,omitempty"`
	FloodP99ms float64 `json:"flood_p99_ms,omitempty"`
	FloodMaxMs float64 `json:"flood_max_ms,omitempty"`
	FloodMBps  float64 `json:"flood_mb_per_s,omitempty"`
	// FloodBusyPct is how busy the machine was under the flood, in
	// percent of all its CPUs.
	FloodBusyPct float64 `json:"flood_busy_pct,omitempty"`
	// FloodSchedP99ms is, for servers of this command, the p99 of how
	// long the server's goroutines waited to run once runnable, during
	// the flood: the part of the echo's wait that is the Go scheduler's
	// (the output pumps of the flooding sessions), and the OS's wait for
	// the server's threads.
	FloodSchedP99ms float64 `json:"flood_sched_p99_ms,omitempty"`
	Error           string  `json:"error,omitempty"`
}

// catCommand puts the terminal in raw mode without echo and runs cat, so
// every byte typed comes back once, from the program, unbuffered. R42 says
// it is in place: the typed line shows R$((6*7)), not R42.
const (
	catCommand = "stty raw -echo; echo R$((6*7)); cat\r"
	catReady   = "R42"
	warmup     = 20
)

// measureEcho times k round trips through cat idle, then k more while
// flood other sessions print without end.
func measureEcho(ctx context.Context, t *target, k, flood int) *EchoResult {
	r := &EchoResult{RoundTrips: k, Flood: flood}
	// Bounded: a round trip slower than 100 ms on average is a finding in
	// itself; each waits at most sessionTimeout.
	ctx, cancel := context.WithTimeout(ctx, 2*sessionTimeout+time.Duration(2*k+warmup)*100*time.Millisecond)
	defer cancel()
	s, _, err := openAndAsk(ctx, t)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	defer s.close()
	if err := s.input(ctx, catCommand); err != nil {
		r.Error = fmt.Sprintf("type: %v", err)
		return r
	}
	if err := waitFor(ctx, s, "cat in raw mode", func(out []byte) bool { return bytes.Contains(out, []byte(catReady)) }); err != nil {
		r.Error = err.Error()
		return r
	}
	if _, err := roundTrips(ctx, s, warmup); err != nil {
		r.Error = fmt.Sprintf("warm-up: %v", err)
		return r
	}
	idle, err := roundTrips(ctx, s, k)
	if err != nil {
		r.Error = fmt.Sprintf("idle: %v", err)
		return r
	}
	r.IdleP50ms, r.IdleP99ms, r.IdleMaxMs = ms(pct(idle, 50)), ms(pct(idle, 99)), ms(pct(idle, 100))
	if flood == 0 {
		return r
	}

	f, err := startFlood(ctx, t, flood)
	if err != nil {
		r.Error = fmt.Sprintf("flood: %v", err)
		return r
	}
	sched0, _ := t.stats(ctx, false)
	t0, host := time.Now(), startCPU()
	loaded, err := roundTrips(ctx, s, k)
	d, busy := time.Since(t0), host.busyPct()
	if sched1, serr := t.stats(ctx, false); serr == nil {
		r.FloodSchedP99ms = schedP99(sched0, sched1)
	}
	received, ferr := f.stop()
	if err == nil && ferr != nil {
		err = fmt.Errorf("a flooding session failed: %w", ferr)
	}
	if err != nil {
		r.Error = fmt.Sprintf("under flood: %v", err)
		return r
	}
	r.FloodP50ms, r.FloodP99ms, r.FloodMaxMs = ms(pct(loaded, 50)), ms(pct(loaded, 99)), ms(pct(loaded, 100))
	r.FloodMBps = round(float64(received)/1e6/d.Seconds(), 1)
	r.FloodBusyPct = busy
	return r
}

// roundTrips types k bytes one at a time, each after the previous came
// back, and returns each one's round trip.
func roundTrips(ctx context.Context, s session, k int) ([]time.Duration, error) {
	out := make([]time.Duration, 0, k)
	for i := range k {
		b := byte('a' + i%26)
		t0 := time.Now()
		if err := s.input(ctx, string(b)); err != nil {
			return out, fmt.Errorf("round trip %d: type: %w", i, err)
		}
		for {
			got, err := s.output(ctx)
			if err != nil {
				return out, fmt.Errorf("round trip %d: %w", i, err)
			}
			if bytes.IndexByte(got, b) >= 0 {
				break
			}
		}
		out = append(out, time.Since(t0))
	}
	return out, nil
}

// flood is sessions that print without end, each read and discarded by a
// goroutine of its own.
type flood struct {
	sessions []session
	readers  sync.WaitGroup
	received atomic.Int64
	stopping atomic.Bool
	mu       sync.Mutex
	err      error // the first reader failure before stop
}

// startFlood opens n sessions, starts each printing, and returns once
// every one is delivering.
func startFlood(ctx context.Context, t *target, n int) (*flood, error) {
	f := &flood{}
	flowing := make(chan struct{}, n)
	for range n {
		s, _, err := openAndAsk(ctx, t)
		if err == nil {
			err = s.input(ctx, floodCommand)
			if err != nil {
				s.close()
			}
		}
		if err != nil {
			_, _ = f.stop() // failing already
			return nil, err
		}
		f.sessions = append(f.sessions, s)
		f.readers.Go(func() { f.read(ctx, s, flowing) })
	}
	for range n {
		select {
		case <-flowing:
		case <-ctx.Done():
			_, _ = f.stop() // failing already
			return nil, fmt.Errorf("waiting for the flood to flow: %w", ctx.Err())
		}
	}
	return f, nil
}

// read discards a flooding session's output until stop aborts it. It
// signals flowing once, after the first megabyte.
func (f *flood) read(ctx context.Context, s session, flowing chan<- struct{}) {
	var mine int64
	for {
		b, err := s.output(ctx)
		if err != nil {
			if !f.stopping.Load() {
				f.mu.Lock()
				if f.err == nil {
					f.err = err
				}
				f.mu.Unlock()
				if mine < 1<<20 {
					flowing <- struct{}{} // let startFlood see the failure's effect rather than wait
				}
			}
			return
		}
		before := mine
		mine += int64(len(b))
		f.received.Add(int64(len(b)))
		if before < 1<<20 && mine >= 1<<20 {
			flowing <- struct{}{}
		}
	}
}

// stop ends every flooding session, joins the readers, and returns what
// they received and the first failure.
func (f *flood) stop() (int64, error) {
	f.stopping.Store(true)
	for _, s := range f.sessions {
		s.abort()
	}
	f.readers.Wait()
	for _, s := range f.sessions {
		s.close()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil && !errors.Is(f.err, context.Canceled) {
		return f.received.Load(), f.err
	}
	return f.received.Load(), nil
}

// schedP99 is the p99 of the scheduler latencies counted between two
// stats, in ms (the upper bound of the bucket it falls in); 0 when
// unknown.
func schedP99(a, b serverStats) float64 {
	if len(b.SchedCounts) == 0 || len(a.SchedCounts) != len(b.SchedCounts) {
		return 0
	}
	var total uint64
	d := make([]uint64, len(b.SchedCounts))
	for i := range d {
		d[i] = b.SchedCounts[i] - a.SchedCounts[i]
		total += d[i]
	}
	if total == 0 {
		return 0
	}
	var acc uint64
	for i, c := range d {
		acc += c
		if acc*100 >= total*99 {
			return round(b.SchedBuckets[i+1]*1000, 3)
		}
	}
	return 0
}
