package server

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"
)

// outFrame is an OUTPUT frame shared by the connections it goes to; the
// last one to be done with it returns its buffer to the pool.
type outFrame struct {
	b    []byte
	refs atomic.Int32
	pool *sync.Pool
	// streaming: gathered from a streaming pty; written in a turn
	// (turns.go).
	streaming bool
}

func (f *outFrame) release() {
	if f.refs.Add(-1) == 0 && f.pool != nil {
		f.pool.Put(f)
	}
}

// Two sizes of frame buffer: a pty read's worth, and a gathered flood's.
var (
	smallFrames = sync.Pool{New: func() any { return &outFrame{b: make([]byte, 0, 1+readChunk)} }}
	bigFrames   = sync.Pool{New: func() any { return &outFrame{b: make([]byte, 0, 1+outputChunk)} }}
)

func newOutFrame(data []byte) *outFrame {
	p := &smallFrames
	if len(data) > readChunk {
		p = &bigFrames
	}
	f := p.Get().(*outFrame)
	f.pool = p
	f.streaming = false
	f.b = append(append(f.b[:0], msgOutput), data...)
	return f
}

// connRole is what a connection may do with its session.
type connRole int

const (
	roleNone    connRole = iota // before init
	roleOwner                   // input, resize, flow control
	roleWatcher                 // output only
)

// wsConn is one WebSocket, from the handshake until it is closed. Two
// goroutines work on it: its reader (readLoop), and the writer
// (writeLoop), the only one that writes frames. The writer runs only while
// there is something to write (wake starts it, and it ends when the
// queues are empty), so that an idle connection holds one goroutine, not
// two. ctx is canceled on any end, by end, whoever calls it, and the
// reader waits for the writer's close before it returns (finish).
type wsConn struct {
	srv    *Server
	ws     *websocket.Conn
	log    zerolog.Logger
	client string // client address
	user   string // from basic auth or the auth header; "" if anonymous
	authed bool   // the handshake carried a credential
	opened time.Time

	ctx    context.Context
	cancel context.CancelFunc

	// data carries output, EXIT and the like, in order; ctrl carries
	// NOTICEs, which may pass output. Both are bounded: the owner's
	// output waits for room (and so does the program), a watcher's is
	// dropped with the watcher.
	data chan *outFrame
	ctrl chan []byte

	mu       sync.Mutex
	preamble [][]byte // sent before anything in data: the opening messages and the screen
	role     connRole
	sess     *session
	ended    bool
	code     int    // close code to send; 0 for none
	text     string // close text
	reason   string // for the log
	flush    bool   // send what is queued before the close

	writerOn   bool         // a writer runs (mu)
	writerDone bool         // the writer has closed for good (mu)
	pingDue    bool         // the ping timer fired (mu)
	pingTimer  *time.Timer  // wakes the writer to ping
	heard      atomic.Int64 // unix nanos of the last frame or pong from the client
	wrote      atomic.Int64 // unix nanos of the last data frame written
	writing    atomic.Bool  // a data write is under way
	writeDone  chan struct{}
}

const (
	connDataQueue = 4 // frames of up to 32 KiB
	connCtrlQueue = 8
)

func newConn(s *Server, ws *websocket.Conn, log zerolog.Logger, client, user string, authed bool) *wsConn {
	ctx, cancel := context.WithCancel(context.Background())
	c := &wsConn{
		srv: s, ws: ws, log: log, client: client, user: user, authed: authed, opened: time.Now(),
		ctx: ctx, cancel: cancel,
		data:      make(chan *outFrame, connDataQueue),
		ctrl:      make(chan []byte, connCtrlQueue),
		writeDone: make(chan struct{}),
	}
	c.heard.Store(time.Now().UnixNano())
	ws.SetReadLimit(s.cfg.MaxFrame)
	ws.SetPongHandler(func(string) error {
		c.heard.Store(time.Now().UnixNano())
		return nil
	})
	c.pingTimer = time.AfterFunc(s.cfg.PingInterval, func() {
		c.mu.Lock()
		c.pingDue = true
		c.mu.Unlock()
		c.wake()
	})
	return c
}

// wake starts the writer if it is not running: called after anything is
// queued for it, and when the connection ends.
func (c *wsConn) wake() {
	c.mu.Lock()
	start := !c.writerOn && !c.writerDone
	c.writerOn = c.writerOn || start
	c.mu.Unlock()
	if start {
		go c.writeLoop()
	}
}

// idle reports, and records, that the writer may stop: nothing is queued,
// no ping is due, and the connection has not ended. Anything queued after
// this wakes a new writer.
func (c *wsConn) idle() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.preamble) > 0 || len(c.ctrl) > 0 || len(c.data) > 0 || c.pingDue || c.ctx.Err() != nil {
		return false
	}
	c.writerOn = false
	return true
}

// end ends the connection, once; later calls do nothing. It closes with
// code and text (none when code is 0: the client is gone or cannot take
// one); with flush, what is queued goes first (EXIT before 1000).
// Without, a write stuck on a client that does not read is cut short.
func (c *wsConn) end(code int, text, reason string, flush bool) {
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return
	}
	c.ended, c.code, c.text, c.reason, c.flush = true, code, closeText(text), reason, flush
	c.mu.Unlock()
	if !flush {
		_ = c.ws.NetConn().SetWriteDeadline(time.Now().Add(c.srv.cfg.CloseGrace)) // fails only on a closed conn
	}
	c.cancel()
	c.wake() // to close
}

func (c *wsConn) isEnded() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ended
}

func (c *wsConn) endReason() (int, string, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.code, c.text, c.reason
}

func (c *wsConn) setSession(ss *session, role connRole) {
	c.mu.Lock()
	c.sess, c.role = ss, role
	c.mu.Unlock()
}

func (c *wsConn) session() (*session, connRole) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess, c.role
}

// setPreamble queues frames to go before anything in data.
func (c *wsConn) setPreamble(frames [][]byte) {
	c.mu.Lock()
	c.preamble = append(c.preamble, frames...)
	c.mu.Unlock()
	c.wake()
}

func (c *wsConn) takePreamble() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.preamble
	c.preamble = nil
	return p
}

// send hands f to the owner, waiting for room: a client that reads
// slowly holds the program back. It gives up when the connection or the
// session ends, and reports whether f was taken (written, queued, or
// released by the writer when the connection ended).
//
// When no writer runs and nothing waits in the queues, the caller (the
// session's pump) is the writer: it writes f itself, as writeLoop, and
// returns once the queues are empty again. Handing each frame to a writer
// goroutine cost a wake-up of another thread per frame (futex, and
// Go's scheduler searching for work on the other P): a third of the
// server's CPU while streaming, and a lone session's throughput was 0.73
// to 0.77 of the raw pty on a 2-CPU machine, 0.88 to 0.91 with this
// (BENCHMARKS.md). The pump waits in the write as it waited for room
// before; the write timeout and end bound that wait as they bound the
// writer's (an end without EXIT cuts it after the close grace: cutOwner).
// One cost: a resume that takes over an owner stuck in such a write gets
// the program's new output only when end has cut that write, at most the
// close grace later; its screen goes out at once.
func (c *wsConn) send(f *outFrame, sessDone <-chan struct{}) bool {
	c.mu.Lock()
	inline := !c.writerOn && !c.writerDone && len(c.data) == 0
	c.writerOn = c.writerOn || inline
	c.mu.Unlock()
	if inline {
		c.data <- f // room: the queue was empty, and while the pump runs only it fills an owner's
		c.writeLoop()
		return true
	}
	select {
	case c.data <- f:
		c.wake()
		return true
	case <-c.ctx.Done():
	case <-sessDone:
	}
	return false
}

// offer queues f for a watcher without waiting; false means the watcher
// is too far behind.
func (c *wsConn) offer(f *outFrame) bool {
	select {
	case c.data <- f:
		c.wake()
		return true
	default:
		return false
	}
}

// sendFinal queues a last data message (EXIT), waiting for room until
// deadline at most.
func (c *wsConn) sendFinal(msg []byte, deadline time.Time) {
	f := &outFrame{b: msg}
	f.refs.Store(1)
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case c.data <- f:
		c.wake()
	case <-c.ctx.Done():
	case <-t.C:
	}
}

// notice queues a NOTICE; if the control queue is full it is dropped.
func (c *wsConn) notice(level, text string) {
	if !c.sendCtrl(frame(msgNotice, noticePayload(level, text))) {
		c.log.Debug().Str("notice", text).Msg("notice dropped: queue full")
	}
}

// sendCtrl queues a control message without waiting; false if the queue
// is full.
func (c *wsConn) sendCtrl(m []byte) bool {
	select {
	case c.ctrl <- m:
		c.wake()
		return true
	default:
		return false
	}
}

// writeLoop is the only writer of frames, run by wake while there is
// something to write; it returns when there is nothing left, and for good
// once the connection has ended and its close is sent. It also pings, and
// finds dead clients: one that has sent nothing, not even a pong, for two
// ping intervals while the server had nothing queued for it. A client
// that is slow to read is the write timeout's business, and ends as
// "client too slow", never "client gone".
func (c *wsConn) writeLoop() {
	if !c.writeQueued() {
		c.mu.Lock()
		c.writerOn, c.writerDone = false, true
		c.mu.Unlock()
		c.pingTimer.Stop()
		c.drainQueues()
		close(c.writeDone)
	}
}

// writeQueued writes what is queued until nothing is, and reports whether
// the writer may run again: false when the connection has ended (its
// close sent, or a write failed).
func (c *wsConn) writeQueued() bool {
	cfg := &c.srv.cfg
	for {
		if c.ctx.Err() != nil {
			c.closing()
			return false
		}
		if !c.writePreamble() {
			return false
		}
		select { // control messages pass output
		case m := <-c.ctrl:
			if !c.writeMsg(m) {
				return false
			}
			continue
		default:
		}
		select {
		case f := <-c.data:
			ok := c.writePreamble() && c.writeOutput(f)
			f.release()
			if !ok {
				return false
			}
			continue
		default:
		}
		c.mu.Lock()
		ping := c.pingDue
		c.pingDue = false
		c.mu.Unlock()
		if ping {
			c.pingTimer.Reset(cfg.PingInterval)
			// Silence while data flows is a client behind in reading
			// (its pongs wait behind the data): the write timeout judges
			// that. Silence with nothing to read is a client gone.
			idle := time.Since(time.Unix(0, c.heard.Load()))
			quiet := time.Since(time.Unix(0, c.wrote.Load()))
			if idle > 2*cfg.PingInterval && quiet > 2*cfg.PingInterval && len(c.data) == 0 {
				c.logger().Info().Float64("silent_ms", ms(idle)).Msg("client gone: no answer to pings")
				c.end(0, "", "client gone", false)
				continue
			}
			err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(cfg.WriteTimeout))
			if err != nil {
				c.writeFailed(err)
				return false
			}
			continue
		}
		if c.idle() {
			return true
		}
	}
}

func (c *wsConn) writePreamble() bool {
	for _, m := range c.takePreamble() {
		if !c.writeMsg(m) {
			return false
		}
	}
	return true
}

// writeOutput writes an OUTPUT frame; a streaming one in a turn, which
// ends before the write waits for a slow client.
func (c *wsConn) writeOutput(f *outFrame) bool {
	hc := c.hookConn()
	if !f.streaming || hc == nil {
		return c.writeMsg(f.b)
	}
	t, _ := c.srv.turns.take(c.ctx.Done()) // none when ending: what is left goes out as end says
	hc.setHook(t)
	ok := c.writeMsg(f.b)
	hc.setHook(nil)
	t.end()
	return ok
}

// hookConn is the connection's socket when its reads and writes call the
// turns' hooks (turns.go), else nil.
func (c *wsConn) hookConn() *blockHookConn {
	if hc, _ := c.ws.NetConn().(*blockHookConn); hc != nil && hc.canHook() {
		return hc
	}
	return nil
}

// writeMsg writes one data frame within the write timeout.
func (c *wsConn) writeMsg(m []byte) bool {
	c.writing.Store(true)
	defer c.writing.Store(false)
	_ = c.ws.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout)) // only records the deadline
	if err := c.ws.WriteMessage(websocket.BinaryMessage, m); err != nil {
		c.writeFailed(err)
		return false
	}
	c.wrote.Store(time.Now().UnixNano())
	return true
}

func (c *wsConn) writeFailed(err error) {
	switch {
	case errors.Is(err, websocket.ErrCloseSent):
		// Ending already.
	case isTimeout(err):
		if !c.isEnded() {
			c.logger().Info().Float64("timeout_ms", ms(c.srv.cfg.WriteTimeout)).Msg("client too slow")
		}
		c.end(0, "", "client too slow", false) // the writer is broken: no close frame can follow
	default:
		c.log.Debug().Err(err).Msg("write to client")
		c.end(0, "", "client gone", false)
	}
	// The reader may be waiting for a client that will not answer.
	_ = c.ws.SetReadDeadline(time.Now())
}

// closing sends, when end asked for it, what is queued and the close
// frame, then lets the reader wait the close grace for the client's
// answer.
func (c *wsConn) closing() {
	c.mu.Lock()
	code, text, flush := c.code, c.text, c.flush
	c.mu.Unlock()
	grace := c.srv.cfg.CloseGrace
	if flush {
		if !c.writePreamble() {
			return
		}
	drain:
		for {
			select {
			case m := <-c.ctrl:
				if !c.writeMsg(m) {
					return
				}
			case f := <-c.data:
				ok := c.writeMsg(f.b)
				f.release()
				if !ok {
					return
				}
			default:
				break drain
			}
		}
	}
	if code == 0 {
		_ = c.ws.SetReadDeadline(time.Now()) // nothing more to hear
		return
	}
	msg := websocket.FormatCloseMessage(code, text)
	if err := c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(grace)); err != nil && !errors.Is(err, websocket.ErrCloseSent) {
		c.log.Debug().Err(err).Int("close", code).Msg("close frame not sent")
		_ = c.ws.SetReadDeadline(time.Now())
		return
	}
	_ = c.ws.SetReadDeadline(time.Now().Add(grace)) // fails only on a closed conn
}

// drainQueues releases frames nobody will send.
func (c *wsConn) drainQueues() {
	for {
		select {
		case f := <-c.data:
			f.release()
		default:
			return
		}
	}
}

// readFailed ends the connection after a failed read from the client.
func (c *wsConn) readFailed(err error, duringInit bool) {
	if c.isEnded() {
		return
	}
	var ce *websocket.CloseError
	switch {
	case errors.Is(err, websocket.ErrReadLimit):
		// gorilla has sent 1009 already; the close frame below is a no-op then.
		c.violation(&closeError{websocket.CloseMessageTooBig, "frame larger than the server's limit"}, "protocol error")
	case errors.As(err, &ce):
		c.log.Debug().Int("client_close", ce.Code).Str("client_text", ce.Text).Msg("client closed")
		c.end(0, "", "client left", false)
	case isTimeout(err) && duringInit:
		c.violation(protocolError("no init within %v", c.srv.cfg.InitTimeout), "protocol error")
	default:
		// EOF, reset, or a framing error gorilla has answered with 1002.
		c.log.Debug().Err(err).Msg("read from client")
		c.end(0, "", "client gone", false)
	}
}

// logger is the session's logger once the connection has one, else the
// connection's: events of a session carry its id, wherever they happen.
func (c *wsConn) logger() *zerolog.Logger {
	if ss, _ := c.session(); ss != nil {
		l := ss.l().With().Str("remote", c.ws.RemoteAddr().String()).Logger()
		return &l
	}
	return &c.log
}

// violation ends the connection for something the client did wrong.
func (c *wsConn) violation(cerr *closeError, reason string) {
	if c.isEnded() {
		return
	}
	c.logger().Warn().Int("close", cerr.code).Str("why", cerr.text).Msg(reason)
	c.end(cerr.code, cerr.text, reason, false)
}

// finish is the handler's last step: it ends the connection if nothing
// did, reads on until the client answers the close (at most the close
// grace), closes the socket, and waits for the writer.
func (c *wsConn) finish(readErr error) {
	c.end(0, "", "ended", false)
	c.linger(readErr)
	_ = c.ws.Close() // also unblocks a writer stuck on a client that stopped reading
	<-c.writeDone
}

// linger waits, at most the close grace the writer set, for the client to
// answer the close frame, discarding whatever it still sends. Closing the
// socket while the client's data is unread would send a TCP reset, which
// can destroy the close frame before the client reads it.
func (c *wsConn) linger(readErr error) {
	<-c.writeDone // the writer has sent the close frame and set the deadline, or given up
	for readErr == nil {
		_, _, readErr = c.ws.NextReader() // discards the previous message
	}
	var ce *websocket.CloseError
	if errors.As(readErr, &ce) || isTimeout(readErr) {
		return // the client answered, or we waited long enough
	}
	if errors.Is(readErr, websocket.ErrReadLimit) {
		// gorilla stopped reading with the client's bytes still in
		// flight: drain the socket itself.
		nc := c.ws.NetConn()
		if err := nc.SetReadDeadline(time.Now().Add(c.srv.cfg.CloseGrace)); err == nil {
			_, _ = io.Copy(io.Discard, nc) // ends at the client's FIN, a reset or the deadline; all fine
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
