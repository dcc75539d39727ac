//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/guntainer/playground/server/vt"
)

// ResumeResult is what a user whose network dropped waits for (issue 8):
// from the drop (the client's socket closed, no close frame) to the screen
// restored on a new connection (dial, init with the resume key, the
// server's rebuilt screen drawn by a terminal emulator, as the page draws
// it, up to the last prompt). The session's screen is full and its
// scrollback holds 1,000 lines (seq 1 2000). The baseline is a new session
// on the same server, dial to its first answer, one after each resume.
type ResumeResult struct {
	Resumes  int     `json:"resumes"`
	Failed   int     `json:"failed"`
	P50ms    float64 `json:"p50_ms"`
	P99ms    float64 `json:"p99_ms"`
	MaxMs    float64 `json:"max_ms"`
	NewP50ms float64 `json:"new_session_p50_ms"`
	NewP99ms float64 `json:"new_session_p99_ms"`
	Error    string  `json:"error,omitempty"`
}

// resumeGrace is the reconnect grace of servers measured for resume and
// detached sessions: longer than a measurement.
const resumeGrace = 30 * time.Minute

// resumeScreen is what the session prints before its resumes, and the
// screen that says it is restored: 2000 on the last line but one, the
// prompt below it.
const resumeScreen = "seq 1 2000\r"

func screenRestored(s *vt.Screen) bool {
	l := s.Lines()
	return len(l) == 24 && strings.TrimSpace(l[22]) == "2000" && strings.TrimSpace(l[23]) == "$"
}

// measureResume drops and resumes one session n times, and opens a new
// session after each resume for the baseline.
func measureResume(ctx context.Context, t *target, n int, progress io.Writer) *ResumeResult {
	r := &ResumeResult{Resumes: n}
	ctx, cancel := context.WithTimeout(ctx, 2*sessionTimeout+time.Duration(n)*2*sessionTimeout/10)
	defer cancel()
	s, _, err := openAndAsk(ctx, t)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	c, ok := s.(*client)
	if !ok || c.info.Resume == "" {
		s.close()
		r.Error = "the server sent no resume key: it cannot resume a session"
		return r
	}
	key := c.info.Resume
	if err := c.input(ctx, resumeScreen); err != nil {
		c.close()
		r.Error = fmt.Sprintf("type: %v", err)
		return r
	}
	if err := waitFor(ctx, c, "seq's last line", func(out []byte) bool { return hasLine(out, "2000") }); err != nil {
		c.close()
		r.Error = err.Error()
		return r
	}
	var resumes, news []time.Duration
	for i := range n {
		if ctx.Err() != nil {
			r.Failed += n - i
			r.noteError(ctx.Err())
			break
		}
		t0 := time.Now()
		c.abort() // the network drops: no close frame
		nc, err := resumeOnce(ctx, t.url, key)
		if err != nil {
			r.Failed++
			r.noteError(err)
			c.close()
			if c, err = t.reopen(ctx, key); err != nil {
				r.noteError(fmt.Errorf("after a failed resume: %w", err))
				r.Failed += n - i - 1
				break
			}
			continue
		}
		resumes = append(resumes, time.Since(t0))
		c.close() // the dropped one: nothing left to close but our side
		c = nc
		if d, err := readyOnce(ctx, t); err == nil {
			news = append(news, d)
		} else {
			r.noteError(fmt.Errorf("new session: %w", err))
		}
		if (i+1)%50 == 0 {
			fmt.Fprintf(progress, "  resume %s: %d/%d\n", t.name, i+1, n)
		}
	}
	c.close()
	if len(resumes) > 0 {
		r.P50ms, r.P99ms, r.MaxMs = ms(pct(resumes, 50)), ms(pct(resumes, 99)), ms(pct(resumes, 100))
	}
	if len(news) > 0 {
		r.NewP50ms, r.NewP99ms = ms(pct(news, 50)), ms(pct(news, 99))
	}
	if r.Failed > 0 {
		r.Error = fmt.Sprintf("%d of %d resumes failed; the first: %s", r.Failed, n, r.Error)
	}
	return r
}

// resumeOnce dials with the resume key and reads until the screen is
// restored.
func resumeOnce(ctx context.Context, url, key string) (*client, error) {
	ctx, cancel := context.WithTimeout(ctx, sessionTimeout)
	defer cancel()
	c, err := dialInit(ctx, url, initWith("resume", key))
	if err != nil {
		return nil, err
	}
	scr := vt.New(80, 24, 0, 1<<20)
	for {
		b, err := c.output(ctx)
		if err != nil {
			c.close()
			return nil, fmt.Errorf("resume: %w; screen %q", err, strings.Join(scr.Lines(), "|"))
		}
		_, _ = scr.Write(b) // a Screen's Write does not fail
		if screenRestored(scr) {
			return c, nil
		}
	}
}

// reopen resumes after a failed resume, without timing it, so that the
// measurement goes on.
func (t *target) reopen(ctx context.Context, key string) (*client, error) {
	if t.url == "" {
		return nil, errors.New("no server")
	}
	return resumeOnce(ctx, t.url, key)
}

func (r *ResumeResult) noteError(err error) {
	if r.Error == "" {
		r.Error = err.Error()
	}
}
