//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"time"
)

// ThroughputResult is one session printing Bytes bytes, as received: the
// median of Rounds runs, each in a fresh session.
type ThroughputResult struct {
	Bytes   int64     `json:"bytes"`
	Rounds  int       `json:"rounds"`
	MBps    float64   `json:"mb_per_s"`      // median, 10^6 bytes per second
	RunMBps []float64 `json:"runs_mb_per_s"` // each round's
	// ChunkBytes is the mean size of what one read brought: an OUTPUT
	// frame's payload, or for raw one read of the pty.
	ChunkBytes int64 `json:"chunk_bytes"`
	// ServerCPUPerMB is the server process's CPU time per MB delivered,
	// in ms, when its pid is known.
	ServerCPUPerMB float64 `json:"server_cpu_ms_per_mb,omitempty"`
	// HostBusyPct is how busy the whole machine was meanwhile, in
	// percent of all its CPUs: near 100 means the figure is CPU-bound.
	HostBusyPct float64 `json:"host_busy_pct"`
	Error       string  `json:"error,omitempty"`
}

// floodCommand prints x without end. Like throughputCommand it spells x
// as \170, so that the typed line, which the terminal echoes, holds no x
// to be counted.
const floodCommand = `cat /dev/zero | tr '\0' '\170'` + "\r"

func throughputCommand(n int64) string {
	return fmt.Sprintf(`head -c %d /dev/zero | tr '\0' '\170'`, n) + "\r"
}

// measureThroughput has each target print n bytes, rounds times, the
// targets taking turns. A pty's speed swings by a fifth from one run to
// the next on a busy 2-core machine; the median of a few rounds, taken in
// turn with the other targets, holds still.
func measureThroughput(ctx context.Context, targets []*target, n int64, rounds int, progress io.Writer) map[string]*ThroughputResult {
	res := map[string]*ThroughputResult{}
	for _, t := range targets {
		res[t.name] = &ThroughputResult{Bytes: n, Rounds: rounds}
	}
	for round := range rounds {
		for _, t := range targets {
			r := res[t.name]
			if r.Error != "" {
				continue
			}
			cpu0, host := cpuTime(t.pid), startCPU()
			mbps, chunk, err := throughputOnce(ctx, t, n)
			r.HostBusyPct += host.busyPct() / float64(rounds)
			if err != nil {
				r.Error = fmt.Sprintf("round %d: %v", round+1, err)
				continue
			}
			if t.pid > 0 {
				r.ServerCPUPerMB += ms(cpuTime(t.pid)-cpu0) / float64(n) * 1e6 / float64(rounds)
			}
			r.ChunkBytes += chunk / int64(rounds)
			r.RunMBps = append(r.RunMBps, mbps)
			fmt.Fprintf(progress, "  throughput %s, round %d: %.1f MB/s\n", t.name, round+1, mbps)
		}
	}
	for _, r := range res {
		if r.Error == "" {
			s := slices.Clone(r.RunMBps)
			slices.Sort(s)
			r.MBps = s[len(s)/2]
			r.ServerCPUPerMB = round(r.ServerCPUPerMB, 2)
			r.HostBusyPct = round(r.HostBusyPct, 0)
		}
	}
	return res
}

// throughputOnce opens a session, waits for its shell, has it print n
// bytes and times them from the command to the last byte received. It
// returns MB/s and the mean bytes per read.
func throughputOnce(ctx context.Context, t *target, n int64) (float64, int64, error) {
	// Bounded, for a server that delivers less than 1 MB/s.
	ctx, cancel := context.WithTimeout(ctx, sessionTimeout+time.Duration(n/1_000_000)*time.Second)
	defer cancel()
	s, _, err := openAndAsk(ctx, t)
	if err != nil {
		return 0, 0, err
	}
	defer s.close()
	if r, ok := s.(*rawSession); ok {
		// The raw pty is the physical limit: give it the best reader.
		r.gather = true
	}
	t0 := time.Now()
	if err := s.input(ctx, throughputCommand(n)); err != nil {
		return 0, 0, fmt.Errorf("type: %w", err)
	}
	var got, reads int64
	for got < n {
		b, err := s.output(ctx)
		if err != nil {
			return 0, 0, fmt.Errorf("after %d of %d bytes: %w", got, n, err)
		}
		got += int64(bytes.Count(b, []byte{'x'}))
		reads++
	}
	return round(float64(n)/1e6/time.Since(t0).Seconds(), 1), n / reads, nil
}
