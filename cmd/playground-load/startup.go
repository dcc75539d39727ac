//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// StartupResult is the time from a server's exec to its first answer of
// 200 on /readyz (ttyd: on /), over R starts, each a fresh server (issue
// 11: the time from a pod's start to ready, less what the pod and the
// image add). Servers of this command also say how long making the
// runtime's Host took (the sealed copy of the binary, the sessions' parent
// cgroup).
type StartupResult struct {
	Starts    int     `json:"starts"`
	P50ms     float64 `json:"p50_ms"`
	MaxMs     float64 `json:"max_ms"`
	HostP50ms float64 `json:"host_p50_ms,omitempty"`
	Error     string  `json:"error,omitempty"`
}

// measureStartup starts a target n times, each time timing its exec to
// its readiness, then stops it. start starts one afresh.
func measureStartup(ctx context.Context, start func() (*target, error), n int, progress io.Writer) *StartupResult {
	r := &StartupResult{Starts: n}
	var times, hosts []time.Duration
	for range n {
		t, err := start()
		if err != nil {
			r.Error = err.Error()
			return r
		}
		d, err := waitReadyz(ctx, t)
		if err == nil {
			times = append(times, d)
			if st, serr := t.stats(ctx, false); serr == nil && st.HostMs > 0 {
				hosts = append(hosts, time.Duration(st.HostMs*float64(time.Millisecond)))
			}
		}
		if serr := t.stop(); err == nil && serr != nil {
			err = serr
		}
		if err != nil {
			r.Error = err.Error()
			return r
		}
	}
	r.P50ms, r.MaxMs = ms(pct(times, 50)), ms(pct(times, 100))
	if len(hosts) > 0 {
		r.HostP50ms = ms(pct(hosts, 50))
	}
	fmt.Fprintf(progress, "  startup: p50 %.1f ms over %d starts\n", r.P50ms, n)
	return r
}

// waitReadyz polls t's ready URL until it answers 200, and returns the
// time since t's exec.
func waitReadyz(ctx context.Context, t *target) (time.Duration, error) {
	if t.readyURL == "" || t.began.IsZero() {
		return 0, errors.New("not a server this command starts")
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.readyURL, nil)
		if err != nil {
			return 0, err
		}
		resp, err := statsClient.Do(req)
		if err == nil {
			_ = resp.Body.Close() // only the status matters
			if resp.StatusCode == http.StatusOK {
				return time.Since(t.began), nil
			}
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("%s: not 200 within a minute: %v", t.readyURL, err)
		case <-time.After(time.Millisecond):
		}
	}
}
