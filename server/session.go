package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/guntainer/playground/runtime"
	"github.com/rs/zerolog"
)

// A pty read returns at most the line discipline's 4 KiB, so a session
// waits for output with a buffer of readChunk (4 KiB with the command
// byte: a size class of Go's allocator, nothing lost to rounding), which
// is all an idle session holds. When a read comes back nearly full, output
// is streaming: what else is there already is gathered, without waiting,
// into a pooled buffer of up to outputChunk, so that a flood goes out in
// frames of 32 KiB rather than 4 (fewer writes, less server CPU per byte).
const (
	readChunk   = 4<<10 - 1
	outputChunk = 32<<10 - 1
)

// frameBufs lends streaming sessions their large frame buffer.
var frameBufs = sync.Pool{New: func() any { b := make([]byte, 1+outputChunk); return &b }}

// readNower is a Terminal that can read what is there without waiting:
// runtime.Container and the baselines' plain pty.
type readNower interface {
	ReadNow(p []byte) (int, error)
}

// handleWS is /ws: the handshake checks, then one session for the life of
// the connection.
func (s *Server) handleWS(w http.ResponseWriter, r *http.Request) {
	log := s.log.With().Str("remote", r.RemoteAddr).Logger()
	if !websocket.IsWebSocketUpgrade(r) {
		http.Error(w, "/ws speaks WebSocket only", http.StatusBadRequest)
		return
	}
	if err := s.origins.check(r); err != nil {
		log.Warn().Err(err).Msg("websocket refused")
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	// Checked here rather than left to Upgrade, which would accept the
	// connection without a subprotocol, and a client that does not speak
	// ttyd's protocol gains nothing from a session.
	if !slices.Contains(websocket.Subprotocols(r), Subprotocol) {
		http.Error(w, `WebSocket subprotocol "tty" required`, http.StatusBadRequest)
		return
	}
	if s.isDraining() {
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return
	}
	conn, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		log.Debug().Err(err).Msg("websocket upgrade failed") // Upgrade has answered
		return
	}
	ss := newSession(s, conn, log)
	if cerr := s.register(ss); cerr != nil {
		ss.log.Warn().Int("close", cerr.code).Str("why", cerr.text).Msg("session refused")
		ss.end(cerr.code, cerr.text, "refused")
		ss.finish(nil, nil)
		return
	}
	defer s.unregister(ss)
	ss.run()
}

// session is one WebSocket and the terminal behind it, from the handshake
// until handleWS returns. Two goroutines work on it: the handler's, which
// reads the client and writes the terminal, and the output pump, the only
// writer of data frames; a timer pings (startKeepAlive). end, callable from
// either, the ping and Shutdown, decides how the session ends; the handler
// joins the pump and stops the ping before it returns.
type session struct {
	srv    *Server
	cfg    *Config
	id     string
	conn   *websocket.Conn
	log    zerolog.Logger
	ctx    context.Context // done once the session is ending
	cancel context.CancelFunc
	opened time.Time
	flow   flowGate

	bytesIn, bytesOut atomic.Int64
	stopPing          func() // set by serve once the keepalive runs

	mu     sync.Mutex
	term   Terminal // nil until started
	ended  bool
	code   int    // close code the server sent, 0 for none
	text   string // close text
	reason string // for the log: exit, client gone, shutdown, ...
	exit   *runtime.ExitStatus
}

func newSession(s *Server, conn *websocket.Conn, log zerolog.Logger) *session {
	ctx, cancel := context.WithCancel(context.Background())
	id := rand.Text()
	return &session{
		srv:    s,
		cfg:    &s.cfg,
		id:     id,
		conn:   conn,
		log:    log.With().Str("session", id).Logger(),
		ctx:    ctx,
		cancel: cancel,
		opened: time.Now(),
	}
}

func (ss *session) run() {
	var pumps sync.WaitGroup
	readErr := ss.serve(&pumps)
	ss.finish(readErr, &pumps)
}

// serve reads init, starts the terminal and pumps until the session ends.
// It returns the error that ended reading from the client, or nil if
// reading can go on (to hear the client's answer to our close frame).
func (ss *session) serve(pumps *sync.WaitGroup) error {
	ss.conn.SetReadLimit(ss.cfg.MaxFrame)
	ss.extendReadDeadline(ss.cfg.InitTimeout)
	_, first, err := ss.conn.ReadMessage()
	if err != nil {
		ss.readFailed(err, true)
		return err
	}
	in, cerr, reason := ss.acceptInit(first)
	if cerr != nil {
		ss.violation(cerr, reason)
		return nil
	}
	term := ss.startTerminal(in)
	if term == nil {
		return nil
	}
	// A client that sends nothing, not even a pong, for two ping intervals
	// is gone: this is how a dead connection with a quiet program is found.
	ss.conn.SetPongHandler(func(string) error {
		ss.extendReadDeadline(2 * ss.cfg.PingInterval)
		return nil
	})
	pumps.Go(func() { ss.pumpOutput(term) })
	ss.stopPing = ss.startKeepAlive()
	return ss.pumpInput(term)
}

// finish ends what is left of a session: it waits, at most the close grace,
// for the client to answer the close frame, closes the connection, joins
// the pumps, makes sure the terminal is closed and logs the end.
func (ss *session) finish(readErr error, pumps *sync.WaitGroup) {
	ss.end(0, "", "ended") // every path has ended it; this is the guarantee
	ss.linger(readErr)
	_ = ss.conn.Close() // also unblocks an output pump stuck writing to a client that stopped reading
	if pumps != nil {
		pumps.Wait()
	}
	if ss.stopPing != nil {
		ss.stopPing()
	}
	// end has closed it, or is closing it on another goroutine (Shutdown's):
	// Close is idempotent, and returning only once it is closed is the
	// handler's promise.
	ss.mu.Lock()
	term := ss.term
	ss.mu.Unlock()
	if term != nil {
		_ = term.Close() // a failure was logged by end
	}
	ss.logEnd()
}

// end ends the session, once; later calls do nothing. It sends a close
// frame with code and text unless code is 0 (the client is gone or cannot
// take one), lets the reader wait only the close grace for the client's
// answer, and closes the terminal, which unblocks the output pump.
func (ss *session) end(code int, text, reason string) {
	ss.mu.Lock()
	if ss.ended {
		ss.mu.Unlock()
		return
	}
	ss.ended, ss.code, ss.text, ss.reason = true, code, text, reason
	term := ss.term
	// Under mu, so that extendReadDeadline cannot push it back out.
	_ = ss.conn.SetReadDeadline(time.Now().Add(ss.cfg.CloseGrace)) // fails only on a closed conn: then reads fail anyway
	ss.mu.Unlock()
	ss.cancel()
	if code != 0 {
		// WriteControl is safe beside the output pump's writes: gorilla
		// serializes them, and every data write after this fails with
		// ErrCloseSent, so nothing follows the close frame.
		msg := websocket.FormatCloseMessage(code, closeText(text))
		err := ss.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(ss.cfg.CloseGrace))
		if err != nil && !errors.Is(err, websocket.ErrCloseSent) {
			ss.log.Debug().Err(err).Int("close", code).Msg("close frame not sent")
		}
	}
	if term != nil {
		if err := term.Close(); err != nil {
			ss.log.Warn().Err(err).Msg("close terminal")
		}
	}
}

func (ss *session) isEnded() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.ended
}

// extendReadDeadline gives the client d more to send its next frame, unless
// the session is ending: then end's close grace stands.
func (ss *session) extendReadDeadline(d time.Duration) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if !ss.ended {
		_ = ss.conn.SetReadDeadline(time.Now().Add(d)) // fails only on a closed conn: then reads fail anyway
	}
}

// violation ends the session for something the client did wrong.
func (ss *session) violation(cerr *closeError, reason string) {
	if ss.isEnded() {
		return
	}
	ss.log.Warn().Int("close", cerr.code).Str("why", cerr.text).Msg(reason)
	ss.end(cerr.code, cerr.text, reason)
}

// readFailed ends the session after a failed read from the client.
func (ss *session) readFailed(err error, duringInit bool) {
	var ce *websocket.CloseError
	switch {
	case errors.Is(err, websocket.ErrReadLimit):
		// gorilla has sent 1009 already; end's close frame is a no-op then.
		ss.violation(&closeError{websocket.CloseMessageTooBig, fmt.Sprintf("frame larger than %d bytes", ss.cfg.MaxFrame)}, "protocol error")
	case errors.As(err, &ce):
		ss.log.Debug().Int("client_close", ce.Code).Str("client_text", ce.Text).Msg("client closed")
		ss.end(0, "", "client gone")
	case isTimeout(err) && duringInit:
		ss.violation(protocolError("no init within %v", ss.cfg.InitTimeout), "protocol error")
	case isTimeout(err):
		ss.end(0, "", "client timeout")
	default:
		// EOF, reset, or a framing error gorilla has answered with 1002.
		ss.log.Debug().Err(err).Msg("read from client")
		ss.end(0, "", "client gone")
	}
}

// acceptInit checks the init frame; on failure it returns the close to send
// and the reason to log.
//
// Until sessions can be resumed or watched, no key exists, so any resume or
// watch key is unknown: 4404, as for an expired one. Environments cannot be
// chosen yet either (StartFunc has no such parameter), so any "env" is an
// unknown one: 1002, since naming something the server does not offer is a
// malformed request rather than a policy refusal. The token is checked
// first, so that a client without it learns nothing else.
func (ss *session) acceptInit(first []byte) (initMsg, *closeError, string) {
	in, cerr := parseInit(first)
	if cerr != nil {
		return in, cerr, "protocol error"
	}
	if !ss.srv.auth.tokenOK(in.AuthToken) {
		return in, &closeError{websocket.ClosePolicyViolation, "authentication failed"}, "auth failed"
	}
	if in.Resume != "" || in.Watch != "" {
		return in, &closeError{closeUnknownKey, "unknown or expired key"}, "unknown key"
	}
	if in.Env != "" {
		return in, protocolError("unknown environment"), "protocol error"
	}
	return in, nil, ""
}

// startTerminal starts the session's terminal, or ends the session and
// returns nil.
func (ss *session) startTerminal(in initMsg) Terminal {
	if ss.isEnded() {
		return nil
	}
	fired := make(chan struct{})
	timer := time.AfterFunc(ss.cfg.StartTimeout, func() {
		defer close(fired)
		ss.log.Error().Dur("timeout", ss.cfg.StartTimeout).Msg("start timed out")
		ss.end(websocket.CloseInternalServerErr, "the terminal took too long to start", "start timeout")
	})
	begin := time.Now()
	term, err := ss.srv.start(ss.ctx, in.Cols, in.Rows)
	spawn := time.Since(begin)
	if !timer.Stop() {
		<-fired
	}
	if err == nil && term == nil {
		err = errors.New("start returned no terminal")
	}
	if err != nil {
		if ss.isEnded() { // shut down or timed out while starting: the client has been told
			ss.log.Info().Err(err).Msg("start abandoned")
			return nil
		}
		ss.log.Error().Err(err).Float64("spawn_ms", ms(spawn)).Msg("start failed")
		ss.end(websocket.CloseInternalServerErr, err.Error(), "start failed")
		return nil
	}
	ss.mu.Lock()
	ended := ss.ended
	if !ended {
		ss.term = term
	}
	ss.mu.Unlock()
	if ended {
		_ = term.Close()   // the session ended during the start; nobody will use it
		_, _ = term.Wait() // reap it; how it ended does not matter
		return nil
	}
	ss.log.Info().Float64("spawn_ms", ms(spawn)).Uint16("cols", in.Cols).Uint16("rows", in.Rows).Msg("session start")
	return term
}

// pumpInput reads the client and acts on its frames until a read fails,
// which end's close grace guarantees once the session is ending.
func (ss *session) pumpInput(term Terminal) error {
	inputOK := true
	for {
		ss.extendReadDeadline(2 * ss.cfg.PingInterval)
		_, msg, err := ss.conn.ReadMessage()
		if err != nil {
			ss.readFailed(err, false)
			return err
		}
		if ss.isEnded() {
			continue // closing: read on, only for the client's close reply
		}
		cmd, payload, cerr := parseCommand(msg)
		if cerr != nil {
			ss.violation(cerr, "protocol error")
			continue
		}
		switch cmd {
		case cmdInput:
			if !inputOK || len(payload) == 0 {
				continue
			}
			// Blocks while the program does not read its input, and with
			// it this loop: the client is held back, nothing piles up here.
			if _, err := term.Write(payload); err != nil {
				// The program is gone or going. The output pump sees that
				// too and ends the session with the exit status; until
				// then, input goes nowhere.
				ss.log.Debug().Err(err).Msg("write to terminal")
				inputOK = false
				continue
			}
			ss.bytesIn.Add(int64(len(payload)))
		case cmdResize:
			cols, rows, cerr := parseResize(payload)
			if cerr != nil {
				ss.violation(cerr, "protocol error")
				continue
			}
			if err := term.Resize(cols, rows); err != nil {
				ss.log.Debug().Err(err).Msg("resize terminal")
			}
		case cmdPause:
			ss.flow.pause()
		case cmdResume:
			ss.flow.resume()
		}
	}
}

// pumpOutput sends the session's opening messages, then the terminal's
// output; when the program has ended, its exit status and close 1000.
func (ss *session) pumpOutput(term Terminal) {
	ok := ss.send(msgSession, sessionPayload(ss.id)) &&
		ss.send(msgTitle, []byte(ss.cfg.Title)) &&
		ss.send(msgPreferences, ss.srv.prefs) &&
		ss.copyOutput(term)

	// Always wait, to reap the program; after end's Close it returns at once.
	st, err := term.Wait()
	ss.mu.Lock()
	if err == nil {
		ss.exit = &st
	}
	ended := ss.ended
	ss.mu.Unlock()
	switch {
	case !ok || ended:
		// The session ended some other way; the client has been told.
	case err != nil:
		ss.log.Error().Err(err).Msg("wait for program")
		ss.end(websocket.CloseInternalServerErr, "lost the program's exit status", "wait failed")
	case ss.send(msgExit, exitPayload(st, "")):
		ss.end(websocket.CloseNormalClosure, st.String(), "exit")
	}
}

// copyOutput sends terminal output until Read fails (the program has ended
// or end closed the terminal), the session ends while paused, or a send
// fails; it reports false for the last.
func (ss *session) copyOutput(term Terminal) bool {
	small := make([]byte, 1+readChunk)
	small[0] = msgOutput
	now, _ := term.(readNower)
	for {
		if !ss.flow.wait(ss.ctx.Done()) {
			return true
		}
		n, err := term.Read(small[1:])
		frame, big := small[:1+n], (*[]byte)(nil)
		if err == nil && now != nil && n > readChunk/2 {
			big = frameBufs.Get().(*[]byte)
			frame = append((*big)[:0], frame...)
			frame, err = gather(now, frame)
		}
		ok := true
		if len(frame) > 1 {
			if ok = ss.write(frame); ok {
				ss.bytesOut.Add(int64(len(frame) - 1))
			}
		}
		if big != nil {
			frameBufs.Put(big)
		}
		if !ok {
			return false
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				ss.log.Debug().Err(err).Msg("terminal read ended")
			}
			return true
		}
	}
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

func (ss *session) send(cmd byte, payload []byte) bool { return ss.write(frame(cmd, payload)) }

// write sends one data frame. The write deadline bounds how long a client
// that does not read can hold the pump, and with it the program, which
// blocks on its pty meanwhile: a slow client is held back, then cut off,
// never buffered for.
func (ss *session) write(msg []byte) bool {
	_ = ss.conn.SetWriteDeadline(time.Now().Add(ss.cfg.WriteTimeout)) // only records the deadline
	err := ss.conn.WriteMessage(websocket.BinaryMessage, msg)
	switch {
	case err == nil:
		return true
	case isTimeout(err):
		ss.log.Info().Dur("timeout", ss.cfg.WriteTimeout).Msg("client too slow")
		ss.end(0, "", "client too slow") // the writer is broken: no close frame can follow
	default:
		ss.end(0, "", "client gone") // a no-op when the session ended first (ErrCloseSent)
	}
	return false
}

// startKeepAlive pings the client every PingInterval until stopped, so that
// dead connections are found (see the pong handler) and proxies do not
// drop quiet ones. It runs from a timer rather than a goroutine of its own, so an idle session holds no
// stack for it. A failed ping ends the session. stop waits for a ping in
// flight, so nothing of it runs after stop returns.
func (ss *session) startKeepAlive() (stop func()) {
	var (
		mu      sync.Mutex
		stopped bool
		t       *time.Timer
	)
	t = time.AfterFunc(ss.cfg.PingInterval, func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped || ss.ctx.Err() != nil {
			return
		}
		err := ss.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(ss.cfg.WriteTimeout))
		if err != nil {
			ss.end(0, "", "client gone")
			return
		}
		t.Reset(ss.cfg.PingInterval)
	})
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		t.Stop()
	}
}

// linger waits, at most the close grace that end set, for the client to
// answer the close frame, discarding whatever it still sends. Closing the
// socket while the client's data is unread would send a TCP reset, which
// can destroy the close frame before the client reads it.
func (ss *session) linger(readErr error) {
	for readErr == nil {
		_, _, readErr = ss.conn.NextReader() // discards the previous message
	}
	var ce *websocket.CloseError
	if errors.As(readErr, &ce) || isTimeout(readErr) {
		return // the client answered, or we waited long enough
	}
	// gorilla stopped reading (an oversize frame, say) with the client's
	// bytes still in flight: drain the socket itself.
	nc := ss.conn.NetConn()
	if err := nc.SetReadDeadline(time.Now().Add(ss.cfg.CloseGrace)); err == nil {
		_, _ = io.Copy(io.Discard, nc) // ends at the client's FIN, a reset or the deadline; all fine
	}
}

func (ss *session) logEnd() {
	ss.mu.Lock()
	code, text, reason, exit := ss.code, ss.text, ss.reason, ss.exit
	ss.mu.Unlock()
	ev := ss.log.Info().
		Str("reason", reason).
		Int("close", code).
		Str("close_text", text).
		Int64("bytes_in", ss.bytesIn.Load()).
		Int64("bytes_out", ss.bytesOut.Load()).
		Float64("duration_ms", ms(time.Since(ss.opened)))
	if exit != nil {
		ev = ev.Int("exit_code", exit.Code)
		if exit.Signaled() {
			ev = ev.Str("signal", runtime.SignalName(exit.Signal))
		}
	}
	ev.Msg("session end")
}

// flowGate is PAUSE and RESUME. While paused the output pump does not read
// the terminal, so once the pty's buffer is full the program blocks on its
// next write: nothing is dropped and nothing queues in the server.
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
		return true
	}
	select {
	case <-ch:
		return true
	case <-done:
		return false
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
