//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"
)

// DetachedResult is the server's memory per detached session (issue 8):
// N sessions that printed 200 lines each, attached, then their clients
// gone (sockets closed, no close frame), the sessions waiting for a resume
// within the reconnect grace. The baseline is the same sessions attached,
// in the same run: the server's memory per attached idle session.
type DetachedResult struct {
	Sessions int `json:"sessions"`
	Opened   int `json:"opened"`
	// The server process's RSS before the first session, with every
	// session attached, and with every one detached.
	RSSBeforeMiB   float64 `json:"rss_before_mib"`
	RSSAttachedMiB float64 `json:"rss_attached_mib"`
	RSSDetachedMiB float64 `json:"rss_detached_mib"`
	// Per session, over the server before the first session: RSS (each
	// reading after a GC that gave the free pages back to the OS), and
	// (servers of this command) live Go heap and goroutine stacks.
	AttachedKiB     float64 `json:"attached_kib_per_session"`
	DetachedKiB     float64 `json:"detached_kib_per_session"`
	AttachedHeapKiB float64 `json:"attached_heap_kib_per_session,omitempty"`
	DetachedHeapKiB float64 `json:"detached_heap_kib_per_session,omitempty"`
	Error           string  `json:"error,omitempty"`
}

// detachedLines is what each session prints before it is dropped.
const detachedLines = "seq 1 200\r"

// measureDetached opens n sessions (a few at a time), each printing 200
// lines; reads the server's memory; drops every client; waits until the
// server counts them all detached (its /metrics); reads the memory again.
// The sessions end with the server, which the measurement stops.
func measureDetached(ctx context.Context, t *target, n int, progress io.Writer) *DetachedResult {
	r := &DetachedResult{Sessions: n}
	if t.pid <= 0 || t.httpURL == "" {
		r.Error = "needs a playground server started by this command"
		return r
	}
	ctx, cancel := context.WithTimeout(ctx, max(2*time.Minute, time.Duration(n)*200*time.Millisecond))
	defer cancel()
	// Every reading after a GC that gives free pages back, so that RSS is
	// what the server holds then, not what an earlier phase left free.
	heap0, _ := t.statsQuery(ctx, "free=1")
	before, err := readStatus(t.pid)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	var (
		mu     sync.Mutex
		opened []session
		errs   []error
		wg     sync.WaitGroup
		slots  = make(chan struct{}, 16)
	)
	for range n {
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			s, _, err := openAndAsk(ctx, t)
			if err == nil {
				err = s.input(ctx, detachedLines)
				if err == nil {
					err = waitFor(ctx, s, "seq's last line", func(out []byte) bool { return hasLine(out, "200") })
				}
				if err != nil {
					s.close()
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			opened = append(opened, s)
		})
	}
	wg.Wait()
	r.Opened = len(opened)
	fmt.Fprintf(progress, "  detached %s: %d of %d sessions open\n", t.name, r.Opened, n)
	if len(errs) > 0 {
		r.Error = fmt.Sprintf("%d of %d sessions failed; the first: %v", len(errs), n, errs[0])
	}
	if r.Opened == 0 {
		return r
	}
	a := float64(r.Opened)
	time.Sleep(500 * time.Millisecond) // let the pumps settle, as many does
	heapA, _ := t.statsQuery(ctx, "free=1")
	attached, err := readStatus(t.pid)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	for _, s := range opened {
		s.abort() // the network drops
	}
	if _, err := t.waitMetric(ctx, "playground_sessions_detached", func(v float64) bool { return v >= a }); err != nil {
		r.Error = fmt.Sprintf("waiting for the sessions to be detached: %v", err)
		return r
	}
	for _, s := range opened {
		s.close() // our side only: their connections are gone
	}
	// Each session's terminal state digests what it holds once detached.
	time.Sleep(500 * time.Millisecond)
	heapD, _ := t.statsQuery(ctx, "free=1")
	detached, err := readStatus(t.pid)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	r.RSSBeforeMiB = round(float64(before.rss)/mib, 1)
	r.RSSAttachedMiB = round(float64(attached.rss)/mib, 1)
	r.RSSDetachedMiB = round(float64(detached.rss)/mib, 1)
	r.AttachedKiB = round(float64(attached.rss-before.rss)/kib/a, 1)
	r.DetachedKiB = round(float64(detached.rss-before.rss)/kib/a, 1)
	if heapA.HeapBytes > 0 {
		live := func(st serverStats) float64 {
			return float64(st.HeapBytes+st.StackBytes) - float64(heap0.HeapBytes+heap0.StackBytes)
		}
		r.AttachedHeapKiB = round(live(heapA)/kib/a, 1)
		r.DetachedHeapKiB = round(live(heapD)/kib/a, 1)
	}
	return r
}
