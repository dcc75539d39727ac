//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/guntainer/playground/server/vt"
)

// WatchResult is N sessions with a watcher each (issue 8): all opened at
// once, each answers; then a watcher joins each with its watch key, and
// each owner asks a second question whose answer both the owner and the
// watcher must see. The server's memory with the sessions alone, then
// with their watchers too. The baseline is the sessions without watchers,
// in the same measurement.
type WatchResult struct {
	Sessions int `json:"sessions"`
	// Answered: owners whose session answered the first question;
	// Watched: sessions whose watcher attached and saw the second answer,
	// as its owner did.
	Answered int `json:"answered"`
	Watched  int `json:"watched"`
	// AllWatchedS is from the first watcher's dial to the last watcher's
	// second answer.
	AllWatchedS float64 `json:"all_watched_s"`
	// The server process's RSS before, with the sessions, with the
	// watchers too; and per session, per watcher.
	RSSBeforeMiB   float64  `json:"rss_before_mib"`
	RSSSessionsMiB float64  `json:"rss_sessions_mib"`
	RSSWatchedMiB  float64  `json:"rss_watched_mib"`
	SessionKiB     float64  `json:"session_kib"`
	WatcherKiB     float64  `json:"watcher_kib"`
	ServerWatchers float64  `json:"server_watchers,omitempty"` // the server's own count (/metrics)
	Errors         []string `json:"errors,omitempty"`
	Error          string   `json:"error,omitempty"`
}

// watchQuestion is the second question, asked once the watcher is there.
const (
	watchQuestion = "echo $((6*9))\r"
	watchAnswer   = "54"
)

// measureWatch opens n sessions at once, then a watcher for each at once,
// and has each owner ask the second question.
func measureWatch(ctx context.Context, t *target, n int, progress io.Writer) *WatchResult {
	r := &WatchResult{Sessions: n}
	if t.url == "" {
		r.Error = "needs a server"
		return r
	}
	ctx, cancel := context.WithTimeout(ctx, max(2*time.Minute, time.Duration(n)*300*time.Millisecond))
	defer cancel()
	var before status
	if t.pid > 0 {
		before, _ = readStatus(t.pid) // zero when unreadable: no memory figures
	}

	// The sessions, at once.
	owners := make([]*client, n)
	var (
		mu   sync.Mutex
		errs = map[string]int{}
		wg   sync.WaitGroup
	)
	fail := func(what string, err error) {
		mu.Lock()
		errs[what+": "+errKey(err)]++
		mu.Unlock()
	}
	for i := range n {
		wg.Go(func() {
			s, _, err := openAndAsk(ctx, t)
			if err != nil {
				fail("session", err)
				return
			}
			c, ok := s.(*client)
			if !ok || c.info.Watch == "" {
				s.close()
				fail("session", fmt.Errorf("no watch key from the server"))
				return
			}
			owners[i] = c
		})
	}
	wg.Wait()
	for _, c := range owners {
		if c != nil {
			r.Answered++
		}
	}
	fmt.Fprintf(progress, "  watch %s: %d of %d sessions answered\n", t.name, r.Answered, n)
	time.Sleep(500 * time.Millisecond) // let the pumps settle, as many does
	var withSessions status
	if t.pid > 0 {
		withSessions, _ = readStatus(t.pid)
	}

	// A watcher each, at once; each owner asks once its watcher is there.
	watchers := make([]*client, n)
	t0 := time.Now()
	var last time.Time
	var watched int
	for i, owner := range owners {
		if owner == nil {
			continue
		}
		wg.Go(func() {
			w, err := dialInit(ctx, t.url, initWith("watch", owner.info.Watch))
			if err != nil {
				fail("watcher", err)
				return
			}
			watchers[i] = w
			// The screen comes first: it shows the first answer.
			if err := waitFor(ctx, w, "the watched screen", func(out []byte) bool { return screenHasLine(out, answer) }); err != nil {
				fail("watcher", err)
				return
			}
			if err := owner.input(ctx, watchQuestion); err != nil {
				fail("owner", err)
				return
			}
			for _, s := range []session{owner, w} {
				if err := waitFor(ctx, s, "the second answer", func(out []byte) bool { return hasLine(out, watchAnswer) }); err != nil {
					fail("second answer", err)
					return
				}
			}
			mu.Lock()
			watched++
			if now := time.Now(); now.After(last) {
				last = now
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	r.Watched = watched
	if watched > 0 {
		r.AllWatchedS = round(last.Sub(t0).Seconds(), 3)
	}
	fmt.Fprintf(progress, "  watch %s: %d of %d watched sessions answered\n", t.name, r.Watched, n)
	time.Sleep(500 * time.Millisecond)
	if t.pid > 0 && r.Answered > 0 {
		if during, err := readStatus(t.pid); err == nil && before.rss > 0 {
			r.RSSBeforeMiB = round(float64(before.rss)/mib, 1)
			r.RSSSessionsMiB = round(float64(withSessions.rss)/mib, 1)
			r.RSSWatchedMiB = round(float64(during.rss)/mib, 1)
			r.SessionKiB = round(float64(withSessions.rss-before.rss)/kib/float64(r.Answered), 1)
			if watched > 0 {
				r.WatcherKiB = round(float64(during.rss-withSessions.rss)/kib/float64(watched), 1)
			}
		}
	}
	if v, err := t.metric(ctx, "playground_watchers"); err == nil {
		r.ServerWatchers = v
	}

	var closing sync.WaitGroup
	for _, cs := range [][]*client{watchers, owners} {
		for _, c := range cs {
			if c != nil {
				closing.Go(c.close)
			}
		}
	}
	closing.Wait()
	for e, k := range errs {
		r.Errors = append(r.Errors, fmt.Sprintf("%d× %s", k, e))
	}
	slices.Sort(r.Errors)
	if len(r.Errors) > 5 {
		r.Errors = append(r.Errors[:5], fmt.Sprintf("and %d more kinds", len(r.Errors)-5))
	}
	if r.Watched < n {
		r.Error = fmt.Sprintf("%d of %d sessions watched and answered", r.Watched, n)
	}
	return r
}

// screenHasLine reports whether the screen out draws has a line that is
// want, alone or after the prompt: a watcher's first output is the screen
// redrawn, with cursor moves, not the lines as they were printed.
func screenHasLine(out []byte, want string) bool {
	scr := vt.New(80, 24, 0, 1<<20)
	_, _ = scr.Write(out) // a Screen's Write does not fail
	for _, l := range scr.Lines() {
		if strings.TrimSpace(strings.TrimPrefix(l, "$ ")) == want {
			return true
		}
	}
	return false
}
