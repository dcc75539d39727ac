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
// there. Without a hook, or on a connection that is not a socket, Write is
// the connection's own.
type blockHookConn struct {
	net.Conn
	hook atomic.Pointer[turn]
	raw  rawWriter // nil: not a socket; hooks are never called
}

// rawWriter is the part of syscall.RawConn that Write needs.
type rawWriter interface {
	Write(f func(fd uintptr) (done bool)) error
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
