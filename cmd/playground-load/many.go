//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// ManyResult is N sessions opened at once, each answering, and what the
// server holds while they are all open.
type ManyResult struct {
	Sessions int `json:"sessions"`
	Answered int `json:"answered"`
	Failed   int `json:"failed"`
	// AllReadyS is from the first dial to the last answer.
	AllReadyS float64 `json:"all_ready_s"`
	ReadyP50  float64 `json:"ready_p50_ms"`
	ReadyP99  float64 `json:"ready_p99_ms"`
	// The server process alone, while every answered session is open,
	// and before the first was opened.
	ServerRSSBeforeMiB  float64 `json:"server_rss_before_mib,omitempty"`
	ServerRSSMiB        float64 `json:"server_rss_mib,omitempty"`
	ServerKiBPerSession float64 `json:"server_kib_per_session,omitempty"`
	// Of it, for servers of this command: live Go heap (after a garbage
	// collection) and goroutine stacks, per session.
	HeapKiBPerSession  float64 `json:"heap_kib_per_session,omitempty"`
	StackKiBPerSession float64 `json:"stack_kib_per_session,omitempty"`
	ServerFDs          int     `json:"server_fds,omitempty"`
	ServerThreads      int     `json:"server_threads,omitempty"`
	Goroutines         int     `json:"goroutines,omitempty"`
	// The processes under the server (containers, shells, bwrap): their
	// proportional set size per session.
	Processes              int     `json:"processes,omitempty"`
	ProcessesKiBPerSession float64 `json:"processes_pss_kib_per_session,omitempty"`
	// HostKiBPerSession is the drop of the host's MemAvailable per
	// session, less the load process's own growth: server, processes and
	// kernel (namespaces, page tables, sockets, ptys, tmpfs) together.
	HostKiBPerSession float64 `json:"host_kib_per_session,omitempty"`
	// CloseAllS is from closing every session to the server having no
	// process under it again.
	CloseAllS float64  `json:"close_all_s,omitempty"`
	Errors    []string `json:"errors,omitempty"`
	Error     string   `json:"error,omitempty"`
}

// measureMany opens n sessions at once, each asks its question, and while
// all that answered are open reads the server's memory from /proc; then it
// closes them all and waits for the server to let go of their processes.
func measureMany(ctx context.Context, t *target, n int, progress io.Writer) *ManyResult {
	r := &ManyResult{Sessions: n}
	// A start is about 20 ms of CPU; on a loaded machine many at once
	// queue. Generous, but bounded.
	ctx, cancel := context.WithTimeout(ctx, max(2*time.Minute, time.Duration(n)*200*time.Millisecond))
	defer cancel()

	// The warm pool full, as it will be again once every session closed.
	if err := waitPoolFull(ctx, t); err != nil {
		r.Error = err.Error()
		return r
	}
	var before procSnapshot
	if t.pid > 0 {
		var err error
		if before, err = snapshot(t.pid); err != nil {
			r.Error = err.Error()
			return r
		}
	}
	hostBefore, selfBefore := memAvailable(), selfRSS()
	heapBefore, _ := t.stats(ctx, true) // zero for servers that do not say

	var (
		mu       sync.Mutex
		times    []time.Duration
		errs     = map[string]int{}
		answered atomic.Int32
		lastOK   atomic.Int64 // unix nanos of the last answer
		ready    sync.WaitGroup
		sessions sync.WaitGroup
		release  = make(chan struct{})
	)
	t0 := time.Now()
	ready.Add(n)
	for range n {
		sessions.Go(func() {
			s, d, err := openAndAsk(ctx, t)
			if err != nil {
				mu.Lock()
				errs[errKey(err)]++
				mu.Unlock()
				ready.Done()
				return
			}
			answered.Add(1)
			now := time.Now().UnixNano()
			for {
				old := lastOK.Load()
				if now <= old || lastOK.CompareAndSwap(old, now) {
					break
				}
			}
			mu.Lock()
			times = append(times, d)
			mu.Unlock()
			ready.Done()
			select { // hold the session open until all are measured
			case <-release:
			case <-ctx.Done():
			}
			s.close()
		})
	}
	ready.Wait()
	r.Answered = int(answered.Load())
	r.Failed = n - r.Answered
	if r.Answered > 0 {
		r.AllReadyS = round(time.Unix(0, lastOK.Load()).Sub(t0).Seconds(), 3)
		r.ReadyP50, r.ReadyP99 = ms(pct(times, 50)), ms(pct(times, 99))
	}
	fmt.Fprintf(progress, "  many: %d of %d answered in %.1f s\n", r.Answered, n, r.AllReadyS)

	// Idle sessions: let the server's pumps settle, then read.
	time.Sleep(500 * time.Millisecond)
	if t.pid > 0 && r.Answered > 0 {
		if during, err := snapshot(t.pid); err == nil {
			a := float64(r.Answered)
			r.ServerRSSBeforeMiB = round(float64(before.RSS)/mib, 1)
			r.ServerRSSMiB = round(float64(during.RSS)/mib, 1)
			r.ServerKiBPerSession = round(float64(during.RSS-before.RSS)/kib/a, 1)
			r.ServerFDs, r.ServerThreads = during.FDs, during.Threads
			r.Processes = during.Descendants
			r.ProcessesKiBPerSession = round(float64(during.DescPSS-before.DescPSS)/kib/a, 1)
			host := (hostBefore - memAvailable()) - (selfRSS() - selfBefore)
			r.HostKiBPerSession = round(float64(host)/kib/a, 1)
		}
		// After the RSS figure: what of it is live Go heap and stacks.
		if st, err := t.stats(ctx, true); err == nil {
			a := float64(r.Answered)
			r.Goroutines = st.Goroutines
			r.HeapKiBPerSession = round((float64(st.HeapBytes)-float64(heapBefore.HeapBytes))/kib/a, 1)
			r.StackKiBPerSession = round((float64(st.StackBytes)-float64(heapBefore.StackBytes))/kib/a, 1)
		}
	}

	tc := time.Now()
	close(release)
	sessions.Wait()
	if t.pid > 0 {
		// The server ends each session's processes on its own time; wait
		// for it, boundedly.
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if s, err := snapshot(t.pid); err != nil || s.Descendants <= before.Descendants && waitPoolFull(ctx, t) == nil {
				break
			}
		}
		r.CloseAllS = round(time.Since(tc).Seconds(), 3)
	}

	for e, k := range errs {
		r.Errors = append(r.Errors, fmt.Sprintf("%d× %s", k, e))
	}
	slices.Sort(r.Errors)
	if len(r.Errors) > 5 {
		r.Errors = append(r.Errors[:5], fmt.Sprintf("and %d more kinds", len(r.Errors)-5))
	}
	return r
}

// openAndAsk opens a session and asks the question, returning the session
// open, and the time it took.
func openAndAsk(ctx context.Context, t *target) (session, time.Duration, error) {
	t0 := time.Now()
	s, err := t.open(ctx)
	if err != nil {
		return nil, 0, err
	}
	if err := ask(ctx, s); err != nil {
		s.close()
		return nil, 0, t.withServerReason(err)
	}
	return s, time.Since(t0), nil
}

// withServerReason adds to a failed start the server's log's last start
// failure, which is this one's or one at about the same time: the client
// is only told "the server's log says why".
func (t *target) withServerReason(err error) error {
	var ce *websocket.CloseError
	if t.logPath == "" || !errors.As(err, &ce) || ce.Code != websocket.CloseInternalServerErr {
		return err
	}
	if why := lastStartFailure(t.logPath); why != "" {
		return fmt.Errorf("%w; the server's log's last start failure: %s", err, why)
	}
	return err
}

// lastStartFailure is the error of the last "start failed" line of a
// playground server's log, "" if there is none.
func lastStartFailure(logPath string) string {
	b, err := os.ReadFile(logPath)
	if err != nil {
		return ""
	}
	why := ""
	for line := range bytes.Lines(b) {
		var e struct {
			Message string `json:"message"`
			Error   string `json:"error"`
		}
		if json.Unmarshal(line, &e) == nil && e.Message == "start failed" {
			why = e.Error
		}
	}
	return why
}

// errKey is an error's text without the session's own output and port,
// so that alike failures count together.
func errKey(err error) string {
	s, _, _ := strings.Cut(err.Error(), "; output so far")
	return localPort.ReplaceAllString(s, "$1:PORT")
}

var localPort = regexp.MustCompile(`(127\.0\.0\.1|\[::1\]|localhost):\d+`)
