//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"
)

// BurstResult is N sessions requested at once with no warm container to
// hand out (the warm target's pool is drained first): the time until all
// answer. Issue 7 asks for it beside bubblewrap's behind the same server.
// Its figures are the median round's of RoundsS, rounds taken by the
// targets in turn (measureBursts).
type BurstResult struct {
	Sessions int `json:"sessions"`
	Answered int `json:"answered"`
	Failed   int `json:"failed"`
	// AllReadyS is from the first dial to the last answer.
	AllReadyS float64 `json:"all_ready_s"`
	ReadyP50  float64 `json:"ready_p50_ms"`
	ReadyP99  float64 `json:"ready_p99_ms"`
	// MachineBusyPct is how busy the machine's CPUs were from the first
	// dial to the last answer, and MachineCPUMs the busy CPU time over
	// that span per session requested: every process's, this command's
	// clients included (the same clients for every target).
	MachineBusyPct float64 `json:"machine_busy_pct"`
	MachineCPUMs   float64 `json:"machine_cpu_ms_per_session"`
	Drained        int     `json:"drained,omitempty"` // warm sessions held open meanwhile
	// RoundsS is every round's AllReadyS, in the order taken.
	RoundsS []float64 `json:"rounds_s,omitempty"`
	Errors  []string  `json:"errors,omitempty"`
	Error   string    `json:"error,omitempty"`
}

// measureBursts takes rounds bursts of n sessions on each target, the
// targets in turn, so that a noisy moment of the machine falls on all
// alike rather than on one target's single burst (one burst's time varied
// by a fifth from run to run here). Before each burst the machine is let
// settle: the last burst's sessions are gone and their teardown (the
// kernel's cleanup of 300 network namespaces runs after the processes
// have ended) is over. Each target's figures are its median round's; a
// round with failures is reported instead, so that none is hidden.
func measureBursts(ctx context.Context, targets []*target, n, rounds int, progress io.Writer) map[string]*BurstResult {
	all := map[string][]*BurstResult{}
	for round := range max(rounds, 1) {
		for _, t := range targets {
			settle(ctx, t)
			r := measureBurst(ctx, t, n, progress)
			fmt.Fprintf(progress, "  burst %s, round %d: %d of %d answered in %.2f s\n", t.name, round+1, r.Answered, n, r.AllReadyS)
			all[t.name] = append(all[t.name], r)
		}
	}
	res := map[string]*BurstResult{}
	for name, rs := range all {
		pick, times := reportedRound(rs, func(r *BurstResult) bool { return r.Failed > 0 || r.Error != "" },
			func(r *BurstResult) float64 { return r.AllReadyS })
		r := rs[pick]
		r.RoundsS = times
		res[name] = r
	}
	return res
}

// settle waits, at most 20 s, until t's server holds no session (where
// it says), and then at most 5 s until the machine's CPUs have been mostly
// idle for a moment: what the last burst left behind no longer runs. (A
// machine busy with other work, as under go test ./..., never is; the
// wait is bounded for it.)
func settle(ctx context.Context, t *target) {
	deadline := time.Now().Add(20 * time.Second)
	for t.statsURL != "" && time.Now().Before(deadline) && ctx.Err() == nil {
		st, err := t.stats(ctx, false)
		if err != nil || st.Sessions == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = waitPoolFull(ctx, t) // a warm pool refills after its drain; its error shows in the burst
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && ctx.Err() == nil; {
		m := startCPU()
		time.Sleep(200 * time.Millisecond)
		if m.busyPct() < 15 {
			return
		}
	}
}

// measureBurst opens n sessions at once, each asking its question, and
// times until the last answer. On a target with a warm pool, as many
// sessions as the pool holds are opened first and held open meanwhile, so
// every session of the burst starts a container.
func measureBurst(ctx context.Context, t *target, n int, progress io.Writer) *BurstResult {
	r := &BurstResult{Sessions: n}
	ctx, cancel := context.WithTimeout(ctx, max(2*time.Minute, time.Duration(n)*200*time.Millisecond))
	defer cancel()
	if t.warm {
		if err := waitPoolFull(ctx, t); err != nil {
			r.Error = err.Error()
			return r
		}
		for range warmPool {
			s, _, err := openAndAsk(ctx, t)
			if err != nil {
				r.Error = fmt.Sprintf("drain the warm pool: %v", err)
				return r
			}
			defer s.close()
			r.Drained++
		}
	}
	var (
		mu     sync.Mutex
		times  []time.Duration
		last   time.Time
		errs   = map[string]int{}
		opened []session
		wg     sync.WaitGroup
	)
	cpu := startCPU()
	t0 := time.Now()
	for range n {
		wg.Go(func() {
			s, d, err := openAndAsk(ctx, t)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs[errKey(err)]++
				return
			}
			opened = append(opened, s)
			times = append(times, d)
			if now := time.Now(); now.After(last) {
				last = now
			}
		})
	}
	wg.Wait()
	r.MachineBusyPct = cpu.busyPct()
	if b, _ := hostCPU(); b > cpu.busy {
		r.MachineCPUMs = round(float64(b-cpu.busy)*1000/userHZ/float64(n), 1)
	}
	r.Answered = len(times)
	r.Failed = n - r.Answered
	if r.Answered > 0 {
		r.AllReadyS = round(last.Sub(t0).Seconds(), 3)
		r.ReadyP50, r.ReadyP99 = ms(pct(times, 50)), ms(pct(times, 99))
	}
	for k, v := range errs {
		r.Errors = append(r.Errors, fmt.Sprintf("%d× %s", v, k))
	}
	if r.Failed > 0 {
		r.Error = fmt.Sprintf("%d of %d sessions failed", r.Failed, n)
	}
	var closing sync.WaitGroup
	for _, s := range opened {
		closing.Go(s.close)
	}
	closing.Wait()
	return r
}
