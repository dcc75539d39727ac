package server

import (
	"bufio"
	"net"
	"net/http"
	goruntime "runtime"
	"sync/atomic"
	"time"
)

// Streaming output takes turns, so that a session flooding its terminal
// cannot slow another's typing (issue 7).
//
// Go polls the network and the ptys for readiness when a P runs out of
// work, and otherwise only from sysmon, every 10 ms. With every P busy
// pumping floods, nothing runs out of work: a keystroke's frame, and the
// echo the program writes back, waited for sysmon's poll. Measured with
// 8 sessions flooding: the server's goroutines waited 10 to 17 ms (p99) to
// run (runtime/metrics /sched/latencies), and keystroke echo p99 was 20 to
// 27 ms, for containers and plain shells alike.
//
// So the CPU work of streaming output, gathering a pty's output into a
// frame and writing a frame to a client's socket, is done in turns, at most
// GOMAXPROCS-1 at once server-wide (at least one): a P is always left to
// poll and to run interactive sessions at once. Only streaming output
// waits for a turn: a read that did not fill the idle buffer (typing, a
// prompt) never does. A turn is held only while the CPU works, never while
// waiting: not for a frame's room in a client's queue, and not while a
// write waits for a slow client's socket (blockHookConn gives the turn
// back before the write parks), so a slow client never holds up the
// others. Waiters are served in arrival order (a channel's), so streaming
// sessions take turns frame by frame.
type outputTurns struct {
	ch       chan struct{}
	patience time.Duration // the longest wait for a turn
	waiting  atomic.Int64  // goroutines waiting for a turn now
}

// defaultOutputTurns is GOMAXPROCS-1, at least 1.
func defaultOutputTurns() int { return max(1, goruntime.GOMAXPROCS(0)-1) }

func newOutputTurns(n int, patience time.Duration) *outputTurns {
	return &outputTurns{ch: make(chan struct{}, max(1, n)), patience: patience}
}

// take waits for a turn and returns it; false means done closed first. A
// wait longer than the patience goes on without a turn (nil): a turn is
// never held while waiting, so a holder that long is one the OS does not
// run (or, rarely, a write waiting for gorilla's lock behind a pong that
// waits for a slow client), and output must not stop for it.
func (t *outputTurns) take(done <-chan struct{}) (*turn, bool) {
	select {
	case t.ch <- struct{}{}:
		return &turn{turns: t}, true
	default:
	}
	t.waiting.Add(1)
	defer t.waiting.Add(-1)
	wait := time.NewTimer(t.patience)
	defer wait.Stop()
	select {
	case t.ch <- struct{}{}:
		return &turn{turns: t}, true
	case <-wait.C:
		return nil, true
	case <-done:
		return nil, false
	}
}

// turnPatience is the server's patience for a turn: far above a turn's
// work (a 32 KiB gather or write takes tens of microseconds).
const turnPatience = 50 * time.Millisecond

// turn is one taken turn. It may be ended from two places (the writer once
// its write is done, the hook when the write would block): the first
// gives it back. A nil turn ends as a no-op.
type turn struct {
	turns *outputTurns
	done  atomic.Bool
}

func (t *turn) end() {
	if t != nil && t.done.CompareAndSwap(false, true) {
		<-t.turns.ch
	}
}

// hookHijacker makes the connection a WebSocket upgrade hijacks a
// blockHookConn.
type hookHijacker struct{ http.ResponseWriter }

func (h hookHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	return newBlockHookConn(nc), brw, nil
}

// Unwrap lets http.ResponseController reach the ResponseWriter.
func (h hookHijacker) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// blockHookConn is a client's connection whose Write calls a hook, once,
// before it waits for room in the socket: the writer gives its turn back
// there. Its Read does the same for the reader's turn (inputTurns), before
// it waits for the client to send. Without a hook, or on a connection that
// is not a socket, Write and Read are the connection's own.
type blockHookConn struct {
	net.Conn
	hook atomic.Pointer[turn]
	raw  rawConn // nil: not a socket; hooks are never called

	// Only the connection's one reader (its read loop) uses these.
	readTurn *turn // ended before a Read waits for the client
	waited   bool  // a Read waited for the client since inputTurns looked
}

// rawConn is the part of syscall.RawConn that Read and Write need.
type rawConn interface {
	Read(f func(fd uintptr) (done bool)) error
	Write(f func(fd uintptr) (done bool)) error
}

func (c *blockHookConn) Read(p []byte) (int, error) {
	if c.raw == nil {
		return c.Conn.Read(p)
	}
	return c.readHooked(p)
}

// A client's INPUT, RESIZE, PAUSE and RESUME are handled by its
// connection's read loop, at once. A client that sends them without pause
// (three connections from a process with half a CPU, found by trying it)
// kept the Ps busy as flooding output had: another session's echo p99 went
// from 0.4 to 64 ms (INPUT) and 93 ms (RESIZE, before those were
// coalesced). So a read loop that streams takes turns too, from the same
// pool as streaming output: it streams once it has handled streamAfter
// messages without its reads of the socket having waited for the client,
// and then holds a turn for turnMessages messages at a time, giving it back
// before a read waits. A client that types, whose every message the server
// waits for, never takes one.
const (
	streamAfter  = 16
	turnMessages = 16
)

// inputTurns paces one connection's read loop.
type inputTurns struct {
	turns  *outputTurns
	conn   *blockHookConn // nil: not a socket, no turns
	done   <-chan struct{}
	streak int // messages since a read last waited for the client
	held   int // messages handled in the turn held
}

// next is called before each message is handled: it takes a turn, or the
// next one, when the client streams.
func (in *inputTurns) next() {
	c := in.conn
	if c == nil {
		return
	}
	if c.waited { // the hook ended the turn, if one was held
		c.waited = false
		in.streak, in.held = 0, 0
	}
	in.streak++
	if in.streak <= streamAfter {
		return
	}
	if c.readTurn != nil && in.held < turnMessages {
		in.held++
		return
	}
	c.endReadTurn()
	c.readTurn, _ = in.turns.take(in.done) // nil: waited past patience, or ending
	in.held = 1
}

// end gives back the turn held, when the read loop returns.
func (in *inputTurns) end() {
	if in.conn != nil {
		in.conn.endReadTurn()
	}
}

// endReadTurn gives back the reader's turn, if it holds one.
func (c *blockHookConn) endReadTurn() {
	c.readTurn.end()
	c.readTurn = nil
}

// setHook makes t end before any Write waits for the socket, until the
// next setHook. nil removes the hook.
func (c *blockHookConn) setHook(t *turn) { c.hook.Store(t) }

// canHook reports whether hooks are called: the connection is a socket.
func (c *blockHookConn) canHook() bool { return c.raw != nil }

func (c *blockHookConn) Write(p []byte) (int, error) {
	t := c.hook.Load()
	if t == nil || c.raw == nil {
		return c.Conn.Write(p)
	}
	return c.writeHooked(p, t)
}
