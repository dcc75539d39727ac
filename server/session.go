package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"github.com/guntainer/playground/runtime"
)

// A session waits for output with a buffer of idleReadBuf, which is all
// an idle session holds for it. When a read fills it, output is
// streaming: what else is there already is gathered, without waiting,
// into a frame of up to outputChunk, so that a flood goes out in frames
// of 32 KiB rather than a pty read's 4 (fewer writes, less server CPU per
// byte). readChunk is a pty read's most: the line discipline's 4 KiB.
const (
	idleReadBuf = 1 << 10
	readChunk   = 4<<10 - 1
	outputChunk = 32<<10 - 1
)

// Bounds on a session's input and output.
const (
	// Bytes typed or pasted that the program has not read yet: a paste
	// comes in frames faster than a pty takes them (the page sends any
	// size, 16 KiB a frame), so this holds a big one; beyond it input is
	// refused with a NOTICE.
	maxInputQueue = 1 << 20
	// While no owner is attached, the program's output is read at most at
	// this rate: enough for a build log to go on, little for `yes`.
	detachedRate  = 256 << 10
	detachedBurst = outputChunk + 1
	// noticeEvery keeps a flood of refused input from flooding NOTICEs.
	noticeEvery = 5 * time.Second
)

// session is a program on a terminal and the clients attached to it. It
// lives from the client's init until the program ends, a limit or an
// admin ends it, its reconnect grace runs out while detached, or the
// server shuts down; a client's connection may come and go meanwhile.
//
// Its goroutines: run, which starts the terminal, pumps its output to
// the clients and, at the end, waits for every other one (the input
// writer, a terminal-state feeder when one runs) before it tells the
// clients and unregisters the session. ctx is canceled on any end; the
// terminal is closed when it is, which unblocks every read and write.
type session struct {
	srv    *Server
	id     string
	resume string                         // secret half of the resume key
	watch  string                         // secret half of the watch key
	logp   atomic.Pointer[zerolog.Logger] // gains the container id once started
	client string
	user   string
	env    string
	opened time.Time
	// forWarm: registered to take a warm terminal, not yet been to the
	// pool (Server.forWarm; under the Server's mu).
	forWarm bool

	ctx    context.Context
	cancel context.CancelFunc

	input  inputQueue
	ahead  typeahead // holds the first input until the program has set up its terminal
	flow   flowGate
	screen *termState

	bytesIn, bytesOut atomic.Int64
	lastInput         atomic.Int64 // unix nanos
	lastNotice        atomic.Int64 // unix nanos of the last input-dropped NOTICE

	goMu     sync.Mutex
	goClosed bool // run is waiting: no more goroutines
	wg       sync.WaitGroup

	mu        sync.Mutex
	term      Terminal // nil until started
	termID    string
	started   time.Time
	owner     *wsConn
	watchers  []*wsConn // replaced, never changed in place
	announced bool      // SESSION went out: the session can be resumed
	cols      uint16    // the terminal's size
	rows      uint16
	want      [2]uint16   // the owner's last RESIZE: columns, rows
	resized   time.Time   // when a RESIZE last reached the terminal
	resizing  *time.Timer // applies want at the end of resizeEvery
	cause     *endCause
	detached  time.Time // zero while an owner is attached
	grace     *time.Timer
	timers    []*time.Timer
	slow      *rate.Limiter // the pump's pace while detached
}

// endCause is how a session ends: for the log and metrics, for its
// clients.
type endCause struct {
	reason     string // log and metrics: "exit", "idle timeout", ...
	notice     string // a NOTICE sent to every client first; "" for none
	exitReason string // EXIT's reason; "" for a program that ended by itself
	code       int    // close code: 1000 with EXIT, else without
	text       string // close text; "" for 1000 means the exit status
}

var (
	causeExit          = &endCause{reason: "exit", code: websocket.CloseNormalClosure}
	causeClientGone    = &endCause{reason: "client gone", code: websocket.CloseNormalClosure}
	causeShutdown      = &endCause{reason: "shutdown", code: websocket.CloseGoingAway, text: "server shutting down"}
	errStartTimeout    = errors.New("start timed out")
	errNoTerminal      = errors.New("start returned no terminal")
	startFailedMessage = "could not start a terminal; the server's log says why"
)

func newSession(s *Server, c *wsConn, in initMsg, env string) *session {
	ctx, cancel := context.WithCancel(context.Background())
	id := newID()
	ss := &session{
		srv:    s,
		id:     id,
		resume: newSecret(),
		watch:  newSecret(),
		client: c.client,
		user:   c.user,
		env:    env,
		opened: time.Now(),
		ctx:    ctx,
		cancel: cancel,
		cols:   in.Cols,
		rows:   in.Rows,
		want:   [2]uint16{in.Cols, in.Rows},
		owner:  c,
	}
	log := s.log.With().Str("session", id).Str("client", c.client).Str("user", c.user).Str("env", env).Logger()
	ss.logp.Store(&log)
	ss.lastInput.Store(time.Now().UnixNano())
	// The hold's token for prints is there before the program starts: a
	// prompt printed before the hold begins makes it look again too.
	ss.ahead.init()
	ss.screen = newTermState(int(in.Cols), int(in.Rows), ss.l, ss.goStart)
	return ss
}

// l is the session's logger: every event with the session's id, client,
// user, environment and, once started, container.
func (ss *session) l() *zerolog.Logger { return ss.logp.Load() }

// goStart runs f on a goroutine run will wait for, unless run is waiting
// already.
func (ss *session) goStart(f func()) bool {
	ss.goMu.Lock()
	defer ss.goMu.Unlock()
	if ss.goClosed {
		return false
	}
	ss.wg.Go(f)
	return true
}

// run is the session's life. The server waits for it at shutdown.
func (ss *session) run(req StartRequest) {
	defer ss.srv.unregister(ss)
	term := ss.start(req)
	var (
		st  runtime.ExitStatus
		err error
	)
	if term != nil {
		stop := context.AfterFunc(ss.ctx, func() { // any end ends the program
			_ = term.Close()
			ss.cutOwner()
		})
		if ss.announce() {
			ss.kickInput() // what was typed while it started
			ss.pump(term)
		} else {
			_ = term.Close()
		}
		// The program has ended, or the session's end is closing it.
		st, err = term.Wait()
		stop()
		_ = term.Close() // releases the pty; idempotent
		if err != nil {
			ss.l().Error().Err(err).Msg("wait for program")
			ss.endWith(&endCause{reason: "wait failed", code: websocket.CloseInternalServerErr, text: "lost the program's exit status"})
		}
		ss.endWith(causeExit) // a no-op when something else ended it first
	}
	ss.cancel()
	ss.goMu.Lock()
	ss.goClosed = true
	ss.goMu.Unlock()
	ss.screen.stop()
	ss.wg.Wait()
	ss.finish(term, st)
}

// start starts the terminal, or records why not and returns nil.
func (ss *session) start(req StartRequest) Terminal {
	cfg := &ss.srv.cfg
	ctx, cancel := context.WithTimeoutCause(withAbandonGroup(ss.ctx, &ss.srv.abandoned), cfg.StartTimeout, errStartTimeout)
	defer cancel()
	info := &startInfo{settle: func() { ss.srv.settled(ss) }}
	req.info = info
	req.Notify = ss.notifyOwner
	begin := time.Now()
	// Even a StartFunc that ignores ctx cannot hold the session: the
	// server stops waiting for it, and closes what it returns later.
	term, err := StartAbandonable(ctx, func() (Terminal, error) { return ss.srv.start(ctx, req) })
	ss.srv.settled(ss) // a StartFunc that is no Pool, or did not get to it
	spawn := time.Since(begin)
	if err == nil && term == nil {
		err = errNoTerminal
	}
	switch {
	case err == nil:
	case ss.ctx.Err() != nil:
		// Ended while starting (the client left, shutdown): told already.
		ss.l().Info().Err(err).Float64("spawn_ms", ms(spawn)).Msg("start abandoned")
		return nil
	case errors.Is(err, errStartTimeout) || errors.Is(context.Cause(ctx), errStartTimeout):
		ss.l().Error().Float64("timeout_ms", ms(cfg.StartTimeout)).Msg("start timed out")
		ss.srv.metrics.startFailures.Inc()
		ss.endWith(&endCause{reason: "start timeout", code: websocket.CloseInternalServerErr, text: "the terminal took too long to start"})
		return nil
	default:
		ss.l().Error().Err(err).Float64("spawn_ms", ms(spawn)).Msg("start failed")
		ss.srv.metrics.startFailures.Inc()
		ss.endWith(&endCause{reason: "start failed", code: websocket.CloseInternalServerErr, text: startFailedMessage})
		return nil
	}
	ss.mu.Lock()
	ended := ss.ctx.Err() != nil
	if !ended {
		ss.term, ss.termID, ss.started = term, terminalID(term), time.Now()
		// The client may have resized while it waited.
		if ss.cols != req.Cols || ss.rows != req.Rows {
			if err := term.Resize(ss.cols, ss.rows); err != nil {
				ss.l().Debug().Err(err).Msg("resize terminal")
			}
		}
	}
	ss.mu.Unlock()
	if ended {
		_ = term.Close()
		_, _ = term.Wait()
		return nil
	}
	kind := "cold"
	if info.warm {
		kind = "warm"
	}
	ss.srv.metrics.startSeconds.WithLabelValues(kind).Observe(spawn.Seconds())
	log := ss.l().With().Str("container", ss.termID).Logger()
	ss.logp.Store(&log)
	ss.l().Info().Float64("spawn_ms", ms(spawn)).Str("start", kind).Uint16("cols", req.Cols).Uint16("rows", req.Rows).Msg("session start")
	return term
}

// announce sends the owner its opening messages and starts the limits;
// false means there is no owner to announce to (it left during the start).
func (ss *session) announce() bool {
	cfg := &ss.srv.cfg
	ss.mu.Lock()
	if ss.ctx.Err() != nil {
		ss.mu.Unlock()
		return false
	}
	if ss.owner == nil {
		ss.mu.Unlock()
		ss.endWith(causeClientGone)
		return false
	}
	ss.announced = true
	ss.owner.setPreamble(ss.openingLocked(ss.owner, false))
	if d := cfg.MaxLifetime; d > 0 {
		ss.timers = append(ss.timers, ss.limitTimer(d, func() time.Time { return ss.started }, "max lifetime",
			"this session reaches its time limit (%s) in %s",
			"session ended: its time limit of %s is reached"))
	}
	if d := cfg.IdleTimeout; d > 0 {
		// The idle clock starts at the prompt, not at the connection: a
		// start that took half the limit left no time to warn before.
		ss.lastInput.Store(time.Now().UnixNano())
		ss.timers = append(ss.timers, ss.limitTimer(d, func() time.Time { return time.Unix(0, ss.lastInput.Load()) }, "idle timeout",
			"idle: this session ends in %[2]s unless you type (idle limit %[1]s)",
			"session ended: no input for %s"))
	}
	ss.mu.Unlock()
	return true
}

// openingLocked is what a client gets first: SESSION, the title, the
// preferences and, when it joins a running session, the screen.
func (ss *session) openingLocked(c *wsConn, screen bool) [][]byte {
	cfg := &ss.srv.cfg
	info := sessionInfo{ID: ss.id, Route: cfg.RouteID}
	if c.role == roleOwner {
		info.Resume = ss.id + "." + ss.resume
		info.Watch = ss.id + "." + ss.watch
		info.IdleTimeout = seconds(cfg.IdleTimeout)
		info.MaxLifetime = seconds(cfg.MaxLifetime)
	} else {
		info.Columns, info.Rows = ss.cols, ss.rows
	}
	out := [][]byte{
		frame(msgSession, sessionPayload(info)),
		frame(msgTitle, []byte(cfg.Title)),
		frame(msgPreferences, ss.srv.prefs),
	}
	if screen {
		r := ss.screen.snapshot()
		for len(r) > 0 {
			n := min(len(r), outputChunk)
			out = append(out, frame(msgOutput, r[:n]))
			r = r[n:]
		}
	}
	return out
}

func seconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64(d / time.Second)
}

// limitTimer ends the session when since()+d passes, with a NOTICE warn
// before (a minute, or half of d when d is shorter than two minutes). It
// checks since() again each time it fires, so input that resets the idle
// clock just moves it on.
func (ss *session) limitTimer(d time.Duration, since func() time.Time, reason, warnText, endText string) *time.Timer {
	lead := min(time.Minute, d/2)
	var (
		t      *time.Timer
		mu     sync.Mutex // a Reset may fire again before fire returns
		warned time.Time  // the since() the warning was for
	)
	fire := func() {
		mu.Lock()
		defer mu.Unlock()
		if ss.ctx.Err() != nil {
			return
		}
		from := since()
		now := time.Now()
		switch {
		case now.Before(from.Add(d - lead)):
			t.Reset(from.Add(d - lead).Sub(now))
		case now.Before(from.Add(d)):
			if !warned.Equal(from) {
				warned = from
				ss.noticeAll("warn", fmt.Sprintf(warnText, human(d), human(from.Add(d).Sub(now).Round(time.Second))))
			}
			t.Reset(from.Add(d).Sub(now))
		default:
			ss.l().Info().Float64("limit_ms", ms(d)).Msg(reason)
			ss.srv.metrics.limitEnds.WithLabelValues(reason).Inc()
			ss.endWith(&endCause{
				reason:     reason,
				notice:     fmt.Sprintf(endText, human(d)),
				exitReason: fmt.Sprintf("%s (%s)", reason, human(d)),
				code:       websocket.CloseNormalClosure,
				text:       reason,
			})
		}
	}
	t = time.AfterFunc(d-lead, fire)
	return t
}

// human is a duration as people write it: 30 min, 4 h, 1.5 s.
func human(d time.Duration) string {
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		return fmt.Sprintf("%d h", d/time.Hour)
	case d >= time.Minute && d%time.Minute == 0:
		return fmt.Sprintf("%d min", d/time.Minute)
	case d >= time.Second:
		return fmt.Sprintf("%g s", d.Round(100*time.Millisecond).Seconds())
	}
	return d.String()
}

// endWith ends the session for cause, once: its clients get cause's
// NOTICE now, its EXIT or close when run has ended the program.
func (ss *session) endWith(cause *endCause) bool {
	ss.mu.Lock()
	if ss.cause != nil {
		ss.mu.Unlock()
		return false
	}
	ss.cause = cause
	ss.mu.Unlock()
	if cause.notice != "" {
		ss.noticeAll("warn", cause.notice)
	}
	ss.cancel()
	return true
}

// cutOwner closes the owner's connection now when the session's end sends
// no EXIT, as finish would once the pump has returned: the pump may be
// waiting in a write to an owner that stopped reading (send), and end cuts
// that write short after the close grace, where otherwise the session's
// end would wait the whole write timeout. An end with an EXIT waits for it
// at most the write timeout, as before.
func (ss *session) cutOwner() {
	ss.mu.Lock()
	cause, owner := ss.cause, ss.owner
	ss.mu.Unlock()
	if cause != nil && cause.code != websocket.CloseNormalClosure && owner != nil {
		owner.end(cause.code, cause.text, "session ended", false)
	}
}

// noticeAll sends a NOTICE to every attached client.
func (ss *session) noticeAll(level, text string) {
	ss.mu.Lock()
	owner, watchers := ss.owner, ss.watchers
	ss.mu.Unlock()
	if owner != nil {
		owner.notice(level, text)
	}
	for _, w := range watchers {
		w.notice(level, text)
	}
}

// notifyOwner is StartRequest.Notify: a start's progress for the client.
func (ss *session) notifyOwner(level, text string) {
	ss.mu.Lock()
	owner := ss.owner
	ss.mu.Unlock()
	if owner != nil {
		owner.notice(level, text)
	}
}

// finish tells every client how the session ended, and logs it.
func (ss *session) finish(term Terminal, st runtime.ExitStatus) {
	ss.mu.Lock()
	cause := ss.cause
	if cause == nil {
		cause = causeExit
	}
	conns := slices.Clone(ss.watchers)
	if ss.owner != nil {
		conns = append(conns, ss.owner)
	}
	ss.owner, ss.watchers = nil, nil
	if ss.grace != nil {
		ss.grace.Stop()
	}
	for _, t := range ss.timers {
		t.Stop()
	}
	ss.mu.Unlock()

	text := cause.text
	if cause.code == websocket.CloseNormalClosure && cause.exitReason == "" {
		text = st.String()
	}
	exitReason := cause.exitReason
	if exitReason == "" {
		exitReason = st.Reason // a limit the runtime enforced
	}
	// One deadline for all: a session's end waits at most the write
	// timeout for its slowest client, however many watch it.
	deadline := time.Now().Add(ss.srv.cfg.WriteTimeout)
	for _, c := range conns {
		if cause.code == websocket.CloseNormalClosure && term != nil {
			c.sendFinal(frame(msgExit, exitPayload(st, exitReason)), deadline)
			c.end(websocket.CloseNormalClosure, text, "session ended", true)
		} else {
			c.end(cause.code, cause.text, "session ended", false)
		}
	}
	ss.srv.metrics.ended.WithLabelValues(cause.reason).Inc()
	if term != nil && st.Limit != "" {
		ss.srv.metrics.limitsReached.WithLabelValues(st.Limit).Inc()
	}
	ev := ss.l().Info().
		Str("reason", cause.reason).
		Int("close", cause.code).
		Str("close_text", text).
		Int64("bytes_in", ss.bytesIn.Load()).
		Int64("bytes_out", ss.bytesOut.Load()).
		Float64("duration_ms", ms(time.Since(ss.opened)))
	if term != nil {
		ev = ev.Int("exit_code", st.Code)
		if st.Signaled() {
			ev = ev.Str("signal", runtime.SignalName(st.Signal))
		}
		if st.Reason != "" {
			ev = ev.Str("exit_reason", st.Reason)
		}
		if st.Limit != "" {
			ev = ev.Str("limit", st.Limit)
		}
	}
	ev.Msg("session end")
}

// pump sends the terminal's output to the clients until Read fails (the
// program has ended, or the session ended and closed the terminal).
func (ss *session) pump(term Terminal) {
	// An idle session waits in Read with this small buffer; a read that
	// fills it means output is streaming, and the rest is gathered into a
	// large frame. While frames come out full, the next is gathered at
	// once, without a small read first: one system call fewer a frame.
	small := make([]byte, idleReadBuf)
	now, _ := term.(readNower)
	full := false
	for {
		if !ss.flow.wait(ss.ctx.Done()) {
			return
		}
		var f *outFrame
		var err error
		if full {
			var ok bool
			if f, ok, err = ss.streamFrame(now, nil); !ok {
				return // the session has ended
			}
		} else {
			n, rerr := term.Read(small)
			err = rerr
			switch {
			case n > 0 && err == nil && now != nil && n == len(small):
				var ok bool
				if f, ok, err = ss.streamFrame(now, small[:n]); !ok {
					return
				}
			case n > 0:
				f = newOutFrame(small[:n])
			}
		}
		full = f != nil && f.streaming && cap(f.b)-len(f.b) <= readChunk
		if f != nil {
			ss.output(f)
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && ss.ctx.Err() == nil {
				ss.l().Debug().Err(err).Msg("terminal read ended")
			}
			return
		}
	}
}

// streamFrame gathers, in a turn (turns.go), what output is there already
// into a large frame after data: nil when there was none. ok is false when
// the session ended while it waited for the turn.
func (ss *session) streamFrame(now readNower, data []byte) (f *outFrame, ok bool, err error) {
	t, ok := ss.srv.turns.take(ss.ctx.Done())
	if !ok {
		return nil, false, nil
	}
	f = bigFrames.Get().(*outFrame)
	f.pool = &bigFrames
	f.streaming = true
	f.b = append(append(f.b[:0], msgOutput), data...)
	f.b, err = gather(now, f.b)
	t.end()
	if len(f.b) == 1 {
		bigFrames.Put(f)
		return nil, true, err
	}
	return f, true, err
}

// gather appends to frame what output is there already, while a whole pty
// read still fits.
func gather(now readNower, frame []byte) ([]byte, error) {
	for cap(frame)-len(frame) > readChunk {
		n, err := now.ReadNow(frame[len(frame):cap(frame)])
		frame = frame[:len(frame)+n]
		if err != nil || n == 0 {
			return frame, err
		}
	}
	return frame, nil
}

// output records a frame of output in the terminal state and hands it to
// every client: the owner's queue is waited for, a watcher's is not (a
// watcher that falls behind is dropped). With no owner, it paces the pump.
func (ss *session) output(f *outFrame) {
	data := f.b[1:]
	ss.ahead.notePrinted()
	ss.mu.Lock()
	ss.screen.append(data)
	owner, watchers, slow := ss.owner, ss.watchers, ss.slow
	ss.mu.Unlock()
	ss.bytesOut.Add(int64(len(data)))
	ss.srv.metrics.bytesOut.Add(float64(len(data)))

	refs := len(watchers)
	if owner != nil {
		refs++
	}
	f.refs.Store(int32(refs + 1)) // one for this function
	var slowWatchers []*wsConn
	for _, w := range watchers {
		if !w.offer(f) {
			f.release()
			slowWatchers = append(slowWatchers, w)
		}
	}
	if slowWatchers != nil {
		ss.dropWatchers(slowWatchers)
	}
	if owner != nil && !owner.send(f, ss.ctx.Done()) {
		f.release()
	}
	f.release()
	if owner == nil && slow != nil {
		_ = slow.WaitN(ss.ctx, min(len(data), detachedBurst)) // fails only when the session ends
	}
}

// dropWatchers takes watchers that fell behind off the session and closes
// their connections: nothing is kept for them.
func (ss *session) dropWatchers(ws []*wsConn) {
	ss.mu.Lock()
	ss.watchers = slices.DeleteFunc(slices.Clone(ss.watchers), func(w *wsConn) bool { return slices.Contains(ws, w) })
	ss.mu.Unlock()
	for _, w := range ws {
		ss.l().Info().Str("watcher", w.client).Msg("watcher too slow: dropped")
		w.end(websocket.ClosePolicyViolation, "too slow to follow the session", "watcher too slow", false)
	}
}

// kickInput starts the input writer if there is input and none runs. The
// writer is a goroutine only while there is input to write, so an idle
// session holds no stack for it.
func (ss *session) kickInput() {
	ss.mu.Lock()
	term := ss.term
	ss.mu.Unlock()
	if term == nil {
		return // run kicks it once the terminal is up
	}
	if ss.input.claimWriter() && !ss.goStart(func() { ss.writeInput(term) }) {
		ss.input.releaseWriter()
	}
}

// writeInput writes what the owner types to the terminal, from the input
// queue, so that a program that does not read its input holds up only
// this goroutine: the client's frames (RESUME, RESIZE, Ctrl-C) are read
// on, and a full queue refuses input with a NOTICE. It returns when the
// queue is empty.
func (ss *session) writeInput(term Terminal) {
	ss.waitTypeahead(term)
	for {
		p := ss.input.popOrRelease()
		if p == nil {
			return
		}
		n, err := term.Write(p)
		ss.input.written()
		ss.bytesIn.Add(int64(n))
		ss.srv.metrics.bytesIn.Add(float64(n))
		if errors.Is(err, runtime.ErrInputFlushed) {
			continue // a ^C dropped the rest of p (signalForeground)
		}
		if err != nil {
			// The program is gone or going; the pump sees that too and
			// ends the session with the exit status. What is queued goes
			// nowhere.
			ss.l().Debug().Err(err).Msg("write to terminal")
			ss.input.clear()
			ss.input.releaseWriter()
			return
		}
	}
}

// typed handles an INPUT frame from the owner.
func (ss *session) typed(c *wsConn, p []byte) {
	if len(p) == 0 {
		return
	}
	ss.lastInput.Store(time.Now().UnixNano())
	sig, at := ss.signalKeyIn(p)
	interrupt := at >= 0
	if interrupt {
		// Typeahead held for the terminal's setup goes now: the key is
		// for a program that is slow to get there (a profile that hangs).
		ss.ahead.release()
	}
	if interrupt && ss.input.blocked(interruptAfter) {
		// The program has not read what is queued for a while: a ^C
		// behind it would wait as long. It goes as a signal; the input
		// the program never read goes, as ISIG drops it, and what came
		// after the key in this frame is input as usual.
		var n int
		if ss.signalForeground(sig, func() { n = ss.input.clear() }) {
			if n > 0 {
				c.notice("info", fmt.Sprintf("interrupted: %d bytes of input the program had not read were dropped", n))
			}
			if p = p[at+1:]; len(p) == 0 {
				return
			}
			interrupt = false
		}
	}
	dropped, flushed := ss.input.push(p, interrupt)
	ss.kickInput()
	if interrupt {
		ss.escalateInterrupt(sig)
	}
	switch {
	case dropped:
		ss.srv.metrics.inputDropped.Add(float64(len(p)))
		if last := ss.lastNotice.Load(); time.Since(time.Unix(0, last)) > noticeEvery && ss.lastNotice.CompareAndSwap(last, time.Now().UnixNano()) {
			ss.l().Info().Int("bytes", len(p)).Msg("input dropped: the program is not reading its input")
			c.notice("warn", "input dropped: the program is not reading its input")
		}
	case flushed > 0:
		c.notice("info", fmt.Sprintf("interrupted: %d bytes of input the program had not read were dropped", flushed))
	}
}

// interruptAfter is how long the input writer must have been stuck before
// a signal key (^C, ^\, ^Z) goes around it as a signal.
const interruptAfter = 100 * time.Millisecond

// signalKeyIn reports the signal of the first key in p that signals the
// program's foreground job now, and where in p it is (-1: none): where
// the program has ISIG set, its VINTR, VQUIT or VSUSP key (^C, ^\ and ^Z,
// unless stty changed them). A program that reads its keys raw (an
// editor, a terminal multiplexer) gets them as input like any other. The
// terminal is asked once for each control character in p; one that
// cannot say (not started yet) is taken to interrupt at ^C, as before it
// could.
func (ss *session) signalKeyIn(p []byte) (syscall.Signal, int) {
	if !slices.ContainsFunc(p, isControl) {
		return 0, -1 // typed text: one question fewer
	}
	ss.mu.Lock()
	term := ss.term
	ss.mu.Unlock()
	k, canSay := term.(signalKeyer)
	var asked [0x80]bool
	for i, b := range p {
		if !isControl(b) || asked[b] {
			continue
		}
		asked[b] = true
		if !canSay {
			if b == 0x03 {
				return syscall.SIGINT, i
			}
			continue
		}
		sig, isKey, err := k.SignalKey(b)
		switch {
		case err != nil && b == 0x03:
			return syscall.SIGINT, i
		case err == nil && isKey:
			return sig, i
		}
	}
	return 0, -1
}

// isControl reports whether b is a control character, which stty can make
// a signal key.
func isControl(b byte) bool { return b < 0x20 || b == 0x7f }

// signalForeground has the terminal do what the line discipline does for
// a signal key it reads: signal its foreground job with sig and drop the
// input the program has not read, with the rest of the write in progress.
// Then drop takes out what the server queued before the key. The input
// writer stops meanwhile, so that nothing queued gets in before the
// terminal has dropped its input, and goes on after with what came after
// the key. It reports whether the terminal could.
func (ss *session) signalForeground(sig syscall.Signal, drop func()) bool {
	ss.mu.Lock()
	term := ss.term
	ss.mu.Unlock()
	fs, ok := term.(foregroundSignaler)
	if !ok {
		return false
	}
	ss.input.hold(true)
	err := fs.SignalForeground(sig)
	if err == nil {
		drop()
	}
	ss.input.hold(false)
	ss.kickInput()
	return err == nil
}

// escalateInterrupt goes around the writer after all for a signal key it
// queued: one that came just as the writer began a write the program never
// reads (a paste into a program that reads nothing, then Ctrl-C) waited
// behind that write for good. While the key is unwritten it looks again
// every interruptAfter, and sends sig once the writer is stuck.
func (ss *session) escalateInterrupt(sig syscall.Signal) {
	time.AfterFunc(interruptAfter, func() {
		switch {
		case ss.ctx.Err() != nil || !ss.input.interruptPending():
		case ss.input.blocked(interruptAfter):
			// What was queued before the Ctrl-C went when it came; what
			// came after stays.
			ss.signalForeground(sig, ss.input.dropInterrupt)
		default:
			ss.escalateInterrupt(sig)
		}
	})
}

// resizeEvery is how often at most an owner's RESIZE reaches the
// terminal. Each one that does costs the server an ioctl that signals the
// program (SIGWINCH, and it redraws), a resize of the server's screen and
// a SESSION frame to every watcher, where it cost the client a few bytes:
// 85,000 a second from one connection took most of a CPU (issue 7). A
// window being dragged sends a few dozen a second. Within the interval
// the last size wins, and it is applied at the interval's end: none is
// lost.
const resizeEvery = 20 * time.Millisecond

// resize handles a RESIZE from the owner: at once, unless one reached the
// terminal less than resizeEvery ago; then the last one asked for by then
// is applied when that time is up.
func (ss *session) resize(cols, rows uint16) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.want = [2]uint16{cols, rows}
	if ss.resizing != nil {
		return // the timer applies it
	}
	if wait := resizeEvery - time.Since(ss.resized); wait > 0 {
		ss.resizing = time.AfterFunc(wait, ss.resizeLater)
		return
	}
	ss.resizeLocked()
}

// resizeLater applies the size asked for while a resize waited.
func (ss *session) resizeLater() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.resizing = nil
	if ss.ctx.Err() == nil {
		ss.resizeLocked()
	}
}

// resizeLocked gives the terminal and the screen the size in want.
func (ss *session) resizeLocked() {
	cols, rows := ss.want[0], ss.want[1]
	if cols == ss.cols && rows == ss.rows {
		return
	}
	if ss.term != nil { // else start applies it
		if err := ss.term.Resize(cols, rows); err != nil {
			ss.l().Debug().Err(err).Msg("resize terminal")
			return
		}
		ss.resized = time.Now()
	}
	ss.cols, ss.rows = cols, rows
	ss.screen.resize(int(cols), int(rows))
	info := frame(msgSession, sessionPayload(sessionInfo{ID: ss.id, Columns: cols, Rows: rows, Route: ss.srv.cfg.RouteID}))
	for _, w := range ss.watchers {
		w.sendCtrl(info) // a watcher too far behind misses it
	}
}

// attachOwner makes c the session's owner (a resume): the current owner,
// if any, is closed with 4409, and c gets the opening messages and the
// screen. A nil error means attached.
func (ss *session) attachOwner(c *wsConn, cols, rows uint16) *closeError {
	ss.mu.Lock()
	if ss.cause != nil || ss.ctx.Err() != nil || !ss.announced {
		ss.mu.Unlock()
		return &closeError{closeUnknownKey, "session ended"}
	}
	old := ss.owner
	ss.owner = c
	c.setSession(ss, roleOwner)
	wasDetached := !ss.detached.IsZero()
	if ss.grace != nil {
		ss.grace.Stop()
		ss.grace = nil
	}
	ss.detached = time.Time{}
	ss.slow = nil
	ss.flow.resume()                // the new owner starts unpaused
	ss.want = [2]uint16{cols, rows} // not the old owner's last
	if cols != ss.cols || rows != ss.rows {
		if err := ss.term.Resize(cols, rows); err == nil {
			ss.cols, ss.rows = cols, rows
			ss.screen.resize(int(cols), int(rows))
		}
	}
	// Under mu: no output goes to c before its screen.
	c.setPreamble(ss.openingLocked(c, true))
	ss.mu.Unlock()
	if old != nil {
		old.log.Info().Msg("taken over by a newer connection")
		old.end(closeTakenOver, "taken over by a newer connection", "taken over", false)
		ss.srv.metrics.takeovers.Inc()
	}
	ss.l().Info().Bool("was_detached", wasDetached).Bool("took_over", old != nil).Str("from", c.client).Msg("session resumed")
	ss.srv.metrics.resumes.Inc()
	return nil
}

// attachWatcher adds c as a read-only watcher.
func (ss *session) attachWatcher(c *wsConn) *closeError {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.cause != nil || ss.ctx.Err() != nil || !ss.announced {
		return &closeError{closeUnknownKey, "session ended"}
	}
	c.setSession(ss, roleWatcher)
	c.setPreamble(ss.openingLocked(c, true))
	ss.watchers = append(slices.Clone(ss.watchers), c)
	ss.l().Info().Str("watcher", c.client).Str("watcher_user", c.user).Int("watchers", len(ss.watchers)).Msg("watcher attached")
	return nil
}

// detach takes c off the session when its connection ends. An owner
// leaving starts the reconnect grace; before the session was announced
// (nobody has its resume key) it ends the session.
func (ss *session) detach(c *wsConn) {
	ss.mu.Lock()
	if c.role == roleWatcher {
		if i := slices.Index(ss.watchers, c); i >= 0 {
			ss.watchers = slices.Delete(slices.Clone(ss.watchers), i, i+1)
		}
		ss.mu.Unlock()
		return
	}
	if ss.owner != c {
		ss.mu.Unlock()
		return // taken over, or the session has ended
	}
	ss.owner = nil
	ss.flow.resume()
	_, _, why := c.endReason()
	switch {
	case ss.cause != nil:
		ss.mu.Unlock()
	case !ss.announced:
		ss.mu.Unlock()
		ss.l().Info().Str("why", why).Msg("client gone before the session started")
		ss.endWith(&endCause{reason: "client gone", code: websocket.CloseNormalClosure})
	case ss.srv.cfg.ReconnectGrace < 0:
		ss.mu.Unlock()
		ss.endWith(&endCause{reason: "client gone", code: websocket.CloseNormalClosure})
	default:
		grace := ss.srv.cfg.ReconnectGrace
		ss.detached = time.Now()
		ss.slow = rate.NewLimiter(detachedRate, detachedBurst)
		ss.grace = time.AfterFunc(grace, func() {
			ss.mu.Lock()
			still := !ss.detached.IsZero()
			ss.mu.Unlock()
			if still {
				ss.l().Info().Float64("grace_ms", ms(grace)).Msg("reconnect grace expired")
				ss.endWith(&endCause{reason: "reconnect grace expired", notice: "session ended: its client did not come back",
					exitReason: "reconnect grace expired", code: websocket.CloseNormalClosure, text: "reconnect grace expired"})
			}
		})
		ss.mu.Unlock()
		ss.screen.kick()
		ss.l().Info().Str("why", why).Float64("grace_ms", ms(grace)).Msg("session detached")
	}
}

// setFlow is the owner's PAUSE or RESUME; anyone else's is ignored.
func (ss *session) setFlow(c *wsConn, paused bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.owner != c {
		return
	}
	if paused {
		ss.flow.pause()
	} else {
		ss.flow.resume()
	}
}

// isOwner reports whether c is the session's owner now.
func (ss *session) isOwner(c *wsConn) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.owner == c
}

// inputQueue is what the owner typed and the program has not read yet,
// bounded by maxInputQueue bytes.
type inputQueue struct {
	mu     sync.Mutex
	frames [][]byte
	bytes  int
	busy   time.Time // when the writer took the frame it is writing; zero when idle
	writer bool      // a writer goroutine runs
	// intr is the way of a frame with a signal key (Ctrl-C): queued (at
	// the front), then being written, then done (0) once written or
	// cleared.
	intr int
	// holds counts the signal keys going as signals: while there are
	// any, no writer takes a frame.
	holds int
}

// hold stops the writer from taking frames (on) until as many hold(false).
func (q *inputQueue) hold(on bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if on {
		q.holds++
	} else {
		q.holds--
	}
}

const (
	intrQueued = iota + 1
	intrWriting
)

// dropInterrupt takes a queued Ctrl-C frame, the front one, out of the
// queue once it has gone as a signal; one being written cannot be.
func (q *inputQueue) dropInterrupt() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.intr == intrQueued {
		q.bytes -= len(q.frames[0])
		q.frames[0] = nil
		q.frames = q.frames[1:]
	}
	q.intr = 0
}

// interruptPending reports whether a Ctrl-C is queued or being written.
func (q *inputQueue) interruptPending() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.intr != 0
}

// claimWriter reports whether the caller should start a writer: there is
// input and none runs.
func (q *inputQueue) claimWriter() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.writer || len(q.frames) == 0 || q.holds > 0 {
		return false
	}
	q.writer = true
	return true
}

func (q *inputQueue) releaseWriter() {
	q.mu.Lock()
	q.writer = false
	q.mu.Unlock()
}

// maxInputWrite bounds the frames popOrRelease joins into one write.
const maxInputWrite = 16 << 10

// popOrRelease returns the next frame, or nil, and the writer's end, when
// the queue is empty or held. Frames queued behind it go with it, up to
// maxInputWrite bytes, in one write to the terminal: a write each cost the
// server a syscall per INPUT frame, and a client sending frames of a byte
// without pause had the server's input writers take most of a CPU (issue
// 7). A frame with a signal key (Ctrl-C) goes alone, so that a Ctrl-C
// that drops the rest of its write never drops what came after it.
func (q *inputQueue) popOrRelease() []byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.frames) == 0 || q.holds > 0 {
		q.writer = false
		return nil
	}
	p, k := q.frames[0], 1
	if q.intr != intrQueued {
		size := len(p)
		for k < len(q.frames) && size+len(q.frames[k]) <= maxInputWrite {
			size += len(q.frames[k])
			k++
		}
		if k > 1 {
			p = make([]byte, 0, size)
			for _, f := range q.frames[:k] {
				p = append(p, f...)
			}
		}
	}
	clear(q.frames[:k])
	q.frames = q.frames[k:]
	q.bytes -= len(p)
	q.busy = time.Now()
	if q.intr == intrQueued {
		q.intr = intrWriting // it is the front frame
	}
	return p
}

// push queues p. An interrupt (Ctrl-C) goes in front of what is queued,
// which it drops, as the line discipline flushes input on a signal; it
// returns how much was dropped so. Input beyond the bound is refused.
func (q *inputQueue) push(p []byte, interrupt bool) (dropped bool, flushed int) {
	q.mu.Lock()
	if interrupt {
		flushed = q.bytes
		clear(q.frames)
		q.frames, q.bytes = q.frames[:0], 0
		q.intr = intrQueued
	}
	if q.bytes+len(p) > maxInputQueue && q.bytes > 0 {
		q.mu.Unlock()
		return true, flushed
	}
	q.frames = append(q.frames, p)
	q.bytes += len(p)
	q.mu.Unlock()
	return false, flushed
}

func (q *inputQueue) written() {
	q.mu.Lock()
	q.busy = time.Time{}
	if q.intr == intrWriting {
		q.intr = 0
	}
	q.mu.Unlock()
}

// blocked reports whether the writer has been stuck on one write for d.
func (q *inputQueue) blocked(d time.Duration) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return !q.busy.IsZero() && time.Since(q.busy) > d
}

func (q *inputQueue) clear() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := q.bytes
	clear(q.frames)
	q.frames, q.bytes = q.frames[:0], 0
	q.intr = 0
	return n
}

// flowGate is the owner's PAUSE and RESUME. While paused the pump does not
// read the terminal, so once the pty's buffer is full the program blocks
// on its next write: nothing is dropped and nothing queues in the server.
type flowGate struct {
	mu      sync.Mutex
	resumed chan struct{} // non-nil while paused; closed on resume
}

func (g *flowGate) pause() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.resumed == nil {
		g.resumed = make(chan struct{})
	}
}

func (g *flowGate) resume() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.resumed != nil {
		close(g.resumed)
		g.resumed = nil
	}
}

// wait blocks while paused. It reports false if done closed first.
func (g *flowGate) wait(done <-chan struct{}) bool {
	g.mu.Lock()
	ch := g.resumed
	g.mu.Unlock()
	if ch == nil {
		select {
		case <-done:
			return false
		default:
			return true
		}
	}
	select {
	case <-ch:
		return true
	case <-done:
		return false
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
