//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// EchoResult is keystroke echo: one byte typed into cat, with the terminal
// in raw mode, and the same byte back, timed from send to receipt: idle,
// while other sessions flood output, and (for servers) while slow readers
// are attached too.
type EchoResult struct {
	RoundTrips int     `json:"round_trips"`
	IdleP50ms  float64 `json:"idle_p50_ms"`
	IdleP99ms  float64 `json:"idle_p99_ms"`
	IdleMaxMs  float64 `json:"idle_max_ms"`
	// IdleCPUPerKeyMs is the CPU time the server and the processes under
	// it used per round trip while idle (kernel threads not counted).
	IdleCPUPerKeyMs float64 `json:"idle_cpu_per_key_ms,omitempty"`
	// Flood is how many other sessions printed without end meanwhile, and
	// FloodBytes and FloodMBps what their clients received together
	// meanwhile (floodMoved: until the flood was seen to move).
	// Their clients run in a process of their own (floodproc.go).
	Flood      int     `json:"flood"`
	FloodP50ms float64 `json:"flood_p50_ms,omitempty"`
	FloodP99ms float64 `json:"flood_p99_ms,omitempty"`
	FloodMaxMs float64 `json:"flood_max_ms,omitempty"`
	FloodMBps  float64 `json:"flood_mb_per_s,omitempty"`
	FloodBytes int64   `json:"flood_bytes,omitempty"`
	// FloodBusyPct is how busy the machine was under the flood, in
	// percent of all its CPUs, and FloodLoadAvg its load average (one
	// minute) as the flood began: work of others on the machine shows
	// there.
	FloodBusyPct float64 `json:"flood_busy_pct,omitempty"`
	FloodLoadAvg float64 `json:"flood_load_avg,omitempty"`
	// FloodSchedP99ms is, for servers of this command, the p99 of how
	// long the server's goroutines waited to run once runnable, during
	// the flood: the Go scheduler's part of the echo's wait, and the OS's
	// wait for the server's threads.
	FloodSchedP99ms float64 `json:"flood_sched_p99_ms,omitempty"`
	// FloodRunDelayPct is how long the server's threads waited on a run
	// queue of the kernel during the flood, runnable but not running, in
	// percent of the flood's time (/proc/PID/task/*/schedstat, summed
	// over threads): the OS's part.
	FloodRunDelayPct float64 `json:"flood_run_delay_pct,omitempty"`
	// Slow is how many sessions flooded to clients that read a frame every
	// 50 ms, attached besides the Flood ones, in a third phase; the echo
	// then, and the server's memory before and at its peak meanwhile.
	Slow               int     `json:"slow,omitempty"`
	SlowP50ms          float64 `json:"slow_p50_ms,omitempty"`
	SlowP99ms          float64 `json:"slow_p99_ms,omitempty"`
	SlowMaxMs          float64 `json:"slow_max_ms,omitempty"`
	SlowRSSBeforeMiB   float64 `json:"slow_rss_before_mib,omitempty"`
	SlowRSSPeakMiB     float64 `json:"slow_rss_peak_mib,omitempty"`
	SlowServerSessions int     `json:"slow_server_sessions,omitempty"`
	// Hostile is how many clients sent their own messages without pause
	// to sessions of their own (hostileMessages) in a last phase, the
	// floods ended, from a process at the lowest CPU priority; the echo
	// then, the messages they sent a second, and the CPU the server and
	// the processes under it used, in percent of one CPU.
	Hostile             int     `json:"hostile,omitempty"`
	HostileP50ms        float64 `json:"hostile_p50_ms,omitempty"`
	HostileP99ms        float64 `json:"hostile_p99_ms,omitempty"`
	HostileMaxMs        float64 `json:"hostile_max_ms,omitempty"`
	HostileMsgsPerS     float64 `json:"hostile_msgs_per_s,omitempty"`
	HostileServerCPUPct float64 `json:"hostile_server_cpu_pct,omitempty"`
	Error               string  `json:"error,omitempty"`
	// FloodRoundsP99ms is every round's FloodP99ms, in the order taken;
	// the other figures are the median round's (measureEchoes), but for
	// the server's memory, the first round's.
	FloodRoundsP99ms []float64 `json:"flood_rounds_p99_ms,omitempty"`
}

// catCommand puts the terminal in raw mode without echo and runs cat, so
// every byte typed comes back once, from the program, unbuffered. R42 says
// it is in place: the typed line shows R$((6*7)), not R42.
const (
	catCommand = "stty raw -echo; echo R$((6*7)); cat\r"
	catReady   = "R42"
	warmup     = 20
	// floodStallAfter is how long the flood may show no progress, after
	// the round trips timed under it, before it is taken to be stuck.
	floodStallAfter = 5 * time.Second
)

// measureEchoes takes rounds echo measurements on each target, the
// targets in turn, each after the machine has settled (settle), so that a
// noisy moment falls on all alike: one run's p99 under the floods varied
// by a factor of two to three from run to run here, the raw pty's as
// much. A target's figures are its round with the median p99 under the
// floods (every round's is listed), or a round that failed.
func measureEchoes(ctx context.Context, targets []*target, k, flood, slow, hostile, rounds int, progress io.Writer) map[string]*EchoResult {
	all := map[string][]*EchoResult{}
	for round := range max(rounds, 1) {
		for _, t := range targets {
			settle(ctx, t)
			r := measureEcho(ctx, t, k, flood, slow, hostile)
			line := fmt.Sprintf("p99 %.3f ms idle", r.IdleP99ms)
			if r.Flood > 0 {
				line += fmt.Sprintf(", %.3f ms under %d floods", r.FloodP99ms, r.Flood)
			}
			if r.Slow > 0 {
				line += fmt.Sprintf(", %.3f ms with %d slow readers besides", r.SlowP99ms, r.Slow)
			}
			if r.Hostile > 0 {
				line += fmt.Sprintf(", %.3f ms beside %d hostile clients", r.HostileP99ms, r.Hostile)
			}
			fmt.Fprintf(progress, "echo %s, round %d: %s %s\n", t.name, round+1, line, r.Error)
			all[t.name] = append(all[t.name], r)
		}
	}
	res := map[string]*EchoResult{}
	for name, rs := range all {
		pick, p99s := reportedRound(rs, func(r *EchoResult) bool { return r.Error != "" },
			func(r *EchoResult) float64 { return r.FloodP99ms })
		r := rs[pick]
		if flood > 0 && len(rs) > 1 {
			r.FloodRoundsP99ms = p99s
		}
		// The server's memory is its first round's, when the server was
		// fresh as for every other measurement, not grown by the rounds
		// before.
		r.SlowRSSBeforeMiB, r.SlowRSSPeakMiB, r.SlowServerSessions = rs[0].SlowRSSBeforeMiB, rs[0].SlowRSSPeakMiB, rs[0].SlowServerSessions
		res[name] = r
	}
	return res
}

// measureEcho times k round trips through cat idle, then k more while
// flood other sessions print without end, then (servers only) k more
// while slow sessions flood to slow readers besides, then (servers only), the
// floods ended, k more while hostile clients send without pause.
func measureEcho(ctx context.Context, t *target, k, flood, slow, hostile int) *EchoResult {
	r := &EchoResult{RoundTrips: k, Flood: flood}
	// Bounded: a round trip slower than 100 ms on average is a finding in
	// itself; each waits at most sessionTimeout.
	ctx, cancel := context.WithTimeout(ctx, 5*sessionTimeout+time.Duration(4*k+warmup)*100*time.Millisecond)
	defer cancel()
	s, _, err := openAndAsk(ctx, t)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	defer s.close()
	if err := startCat(ctx, s); err != nil {
		r.Error = err.Error()
		return r
	}
	if _, err := roundTrips(ctx, s, warmup); err != nil {
		r.Error = fmt.Sprintf("warm-up: %v", err)
		return r
	}
	cpu0 := treeCPU(t.pid)
	idle, err := roundTrips(ctx, s, k)
	if err != nil {
		r.Error = fmt.Sprintf("idle: %v", err)
		return r
	}
	if t.pid > 0 {
		r.IdleCPUPerKeyMs = round(ms(treeCPU(t.pid)-cpu0)/float64(k), 3)
	}
	r.IdleP50ms, r.IdleP99ms, r.IdleMaxMs = ms(pct(idle, 50)), ms(pct(idle, 99)), ms(pct(idle, 100))
	if flood > 0 {
		if err := echoUnderFlood(ctx, t, s, k, flood, slow, r); err != nil {
			r.Error = err.Error()
			return r
		}
	}
	if hostile > 0 && t.url != "" {
		if err := echoWithHostileClients(ctx, t, s, k, hostile, r); err != nil {
			r.Error = err.Error()
		}
	}
	return r
}

// echoUnderFlood is the second phase, and the third with slow > 0: k round
// trips while flood other sessions print without end, then (servers only)
// k more while slow sessions flood to slow readers besides.
func echoUnderFlood(ctx context.Context, t *target, s session, k, flood, slow int, r *EchoResult) error {
	f, err := startFloodProc(ctx, t, floodOptions{Fast: flood, Home: t.home})
	if err != nil {
		return fmt.Errorf("flood: %w", err)
	}
	defer func() { _, _ = f.end() }() // on a failure below; ended and checked otherwise
	r.FloodLoadAvg = loadAvg()
	sched0, _ := t.stats(ctx, false)
	got0, err := f.received()
	if err != nil {
		return fmt.Errorf("flood: %w", err)
	}
	t0, host, delay0 := time.Now(), startCPU(), runDelay(t.pid)
	loaded, err := roundTrips(ctx, s, k)
	d, busy, delay := time.Since(t0), host.busyPct(), runDelay(t.pid)-delay0
	got1, fd, ferr := floodMoved(f.received, got0, t0, floodStallAfter)
	if sched1, serr := t.stats(ctx, false); serr == nil {
		r.FloodSchedP99ms = schedP99(sched0, sched1)
	}
	if err == nil && ferr != nil {
		err = fmt.Errorf("the flood: %w", ferr)
	}
	if err != nil {
		return fmt.Errorf("under flood: %w", err)
	}
	r.FloodP50ms, r.FloodP99ms, r.FloodMaxMs = ms(pct(loaded, 50)), ms(pct(loaded, 99)), ms(pct(loaded, 100))
	r.FloodBytes = got1 - got0
	r.FloodMBps = round(float64(r.FloodBytes)/1e6/fd.Seconds(), 1)
	r.FloodBusyPct = busy
	if t.pid > 0 {
		r.FloodRunDelayPct = round(100*delay.Seconds()/d.Seconds(), 1)
	}
	if slow > 0 && t.url != "" {
		if err := echoWithSlowReaders(ctx, t, s, k, slow, r); err != nil {
			return err
		}
	}
	if _, err := f.end(); err != nil {
		return fmt.Errorf("under flood: %w", err)
	}
	return nil
}

// startCat types catCommand into s and waits until cat runs.
func startCat(ctx context.Context, s session) error {
	if err := s.input(ctx, catCommand); err != nil {
		return fmt.Errorf("type: %w", err)
	}
	return waitFor(ctx, s, "cat in raw mode", func(out []byte) bool { return bytes.Contains(out, []byte(catReady)) })
}

// echoWithHostileClients is the last phase, the floods ended: hostile
// clients send their own messages without pause to sessions of their own
// (floodOptions.Hostile); k round trips meanwhile, and what the clients
// sent and the server's CPU then.
func echoWithHostileClients(ctx context.Context, t *target, s session, k, hostile int, r *EchoResult) error {
	hf, err := startFloodProc(ctx, t, floodOptions{Hostile: hostile})
	if err != nil {
		return fmt.Errorf("hostile clients: %w", err)
	}
	defer func() { _, _ = hf.end() }() // on a failure below; ended and checked otherwise
	r.Hostile = hostile
	_, sent0, err := hf.counts()
	if err != nil {
		return fmt.Errorf("hostile clients: %w", err)
	}
	t0, cpu0 := time.Now(), treeCPU(t.pid)
	loaded, err := roundTrips(ctx, s, k)
	if err != nil {
		return fmt.Errorf("with hostile clients: %w", err)
	}
	// As for the floods' bytes: the window goes on until the clients, at
	// the lowest priority, are seen to have sent (a CI run's 50 round
	// trips once took 12 ms, in which they had not run).
	sent := func() (int64, error) {
		_, n, err := hf.counts()
		return n, err
	}
	sent1, d, err := floodMoved(sent, sent0, t0, floodStallAfter)
	cpu := treeCPU(t.pid) - cpu0
	if err != nil {
		return fmt.Errorf("hostile clients' messages: %w", err)
	}
	if _, err := hf.end(); err != nil {
		return fmt.Errorf("hostile clients: %w", err)
	}
	r.HostileP50ms, r.HostileP99ms, r.HostileMaxMs = ms(pct(loaded, 50)), ms(pct(loaded, 99)), ms(pct(loaded, 100))
	r.HostileMsgsPerS = round(float64(sent1-sent0)/d.Seconds(), 0)
	if t.pid > 0 {
		r.HostileServerCPUPct = round(100*cpu.Seconds()/d.Seconds(), 0)
	}
	return nil
}

// floodMoved ends the window of a flood's count begun at t0 with got0
// bytes, just after the round trips timed under it. A short run's window
// is a few ms, and on a starved machine the flood's process may not have
// run in it (a CI run once read 0 bytes): then the window goes on until
// the flood is seen to move, so that its rate is over a time it ran in,
// and a flood that shows no progress for stall is an error. It returns
// the count at the window's end and the window's length. The hostile
// clients' count of messages sent takes the same window.
func floodMoved(received func() (int64, error), got0 int64, t0 time.Time, stall time.Duration) (int64, time.Duration, error) {
	got, err := received()
	for waited := time.Now(); err == nil && got == got0; {
		if time.Since(waited) > stall {
			return got, time.Since(t0), fmt.Errorf("no byte flowed in %v", time.Since(t0).Round(time.Millisecond))
		}
		time.Sleep(5 * time.Millisecond)
		got, err = received()
	}
	return got, time.Since(t0), err
}

// echoWithSlowReaders is the third phase: slow more sessions flood to
// clients that read slowly, besides the floods already running; k round
// trips meanwhile, and the server's memory sampled.
func echoWithSlowReaders(ctx context.Context, t *target, s session, k, slow int, r *EchoResult) error {
	if t.pid > 0 {
		if st, err := readStatus(t.pid); err == nil {
			r.SlowRSSBeforeMiB = round(float64(st.rss)/mib, 1)
		}
	}
	sf, err := startFloodProc(ctx, t, floodOptions{Slow: slow, Home: t.home})
	if err != nil {
		return fmt.Errorf("slow readers: %w", err)
	}
	defer func() { _, _ = sf.end() }() // on a failure below; ended and checked otherwise
	r.Slow = slow
	var peak atomic.Int64
	sampling := make(chan struct{})
	var sampler sync.WaitGroup
	if t.pid > 0 {
		sampler.Go(func() {
			for {
				if st, err := readStatus(t.pid); err == nil && st.rss > peak.Load() {
					peak.Store(st.rss)
				}
				select {
				case <-sampling:
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
		})
	}
	loaded, err := roundTrips(ctx, s, k)
	if st, serr := t.stats(ctx, false); serr == nil {
		r.SlowServerSessions = st.Sessions
	}
	close(sampling)
	sampler.Wait()
	if err != nil {
		return fmt.Errorf("with slow readers: %w", err)
	}
	if _, err := sf.end(); err != nil {
		return fmt.Errorf("slow readers: %w", err)
	}
	r.SlowP50ms, r.SlowP99ms, r.SlowMaxMs = ms(pct(loaded, 50)), ms(pct(loaded, 99)), ms(pct(loaded, 100))
	r.SlowRSSPeakMiB = round(float64(peak.Load())/mib, 1)
	return nil
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
