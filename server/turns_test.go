package server

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/guntainer/playground/runtime"
)

// Streaming output takes turns (turns.go). These tests run real sessions
// with one turn for the whole server and no patience, so that a turn held
// where it must not be shows as a session that stops.

// oneTurn gives s's server a single output turn, never skipped for waiting
// too long. It must be called before any session opens.
func oneTurn(s *testServer) { s.srv.turns = newOutputTurns(1, time.Hour) }

// floodCommand prints x without end; the typed line has no x in it.
const floodCommand = `cat /dev/zero | tr '\0' '\170'` + "\r"

// readFlood reads c's output until n bytes of x have come.
func readFlood(t *testing.T, c *testClient, n int) {
	t.Helper()
	got := 0
	for got < n {
		m := c.next()
		if m == nil {
			t.Fatalf("connection ended (%v) after %d bytes of the flood", c.err, got)
		}
		if m[0] == msgOutput {
			got += bytes.Count(m[1:], []byte{'x'})
		}
	}
}

// TestTurnsSlowClientHoldsNone: a session floods to a client that reads
// nothing. Once its socket is full its writer waits, and it must hold no
// turn while it does: another flooding session's output still flows.
func TestTurnsSlowClientHoldsNone(t *testing.T) {
	s := newTestServer(t, Config{})
	oneTurn(s)
	stuck, resp, err := s.dial(nil)
	if err != nil {
		t.Fatalf("dial: %v (%s)", err, respStatus(resp))
	}
	defer stuck.Close()
	for _, f := range []string{`{"columns": 80, "rows": 24}`, "0" + floodCommand} {
		if err := stuck.WriteMessage(websocket.BinaryMessage, []byte(f)); err != nil {
			t.Fatal(err)
		}
	}
	// Never read from stuck again: wait until the server's writer for it
	// waits on the full socket.
	s.waitSessions(t, 1)
	ss := s.only(t)
	ss.mu.Lock()
	owner := ss.owner
	ss.mu.Unlock()
	if owner == nil {
		t.Fatal("the session has no owner")
	}
	deadline := time.Now().Add(waitTimeout)
	for last := int64(-1); ; time.Sleep(100 * time.Millisecond) {
		out := ss.bytesOut.Load()
		if out == last && out > 0 && owner.writing.Load() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the writer to the client that does not read never blocked (%d bytes out)", out)
		}
		last = out
	}
	if held := len(s.srv.turns.ch); held != 0 {
		t.Fatalf("%d turn held while the only streaming session waits for its client", held)
	}

	c := s.open(t, "", nil)
	c.waitOutput("$ ")
	c.input(floodCommand)
	readFlood(t, c, 4<<20)
	c.input("\x03")
}

// TestTurnsInteractiveTakesNone: typing and a prompt never wait for a
// turn: with the server's only turn taken, a session still answers.
func TestTurnsInteractiveTakesNone(t *testing.T) {
	s := newTestServer(t, Config{})
	oneTurn(s)
	held, _ := s.srv.turns.take(nil)
	defer held.end()
	c := s.open(t, "", nil)
	c.waitOutput("$ ")
	c.input("echo $((6*7))\r")
	c.waitLine("42")
}

// TestTurnsShared: several sessions flood at once with one turn between
// them, and each one's output flows; a session that types meanwhile gets
// its answer.
func TestTurnsShared(t *testing.T) {
	s := newTestServer(t, Config{})
	oneTurn(s)
	var floods []*testClient
	for range 3 {
		c := s.open(t, "", nil)
		c.waitOutput("$ ")
		c.input(floodCommand)
		floods = append(floods, c)
	}
	typing := s.open(t, "", nil)
	typing.waitOutput("$ ")
	for _, c := range floods {
		readFlood(t, c, 1<<20)
	}
	typing.input("echo $((6*7))\r")
	typing.waitLine("42")
	for _, c := range floods {
		readFlood(t, c, 1<<20)
		c.input("\x03")
	}
}

// tcpPair returns both ends of a loopback TCP connection, closed when t
// ends: the one dialed and the one accepted.
func tcpPair(t *testing.T) (peer, nc net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = peer.Close() })
	nc, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	return peer, nc
}

// TestBlockHookConn: a write to a peer that does not read calls the hook
// when the socket is full, then waits, and completes once the peer reads;
// the write deadline still holds; a write after Close fails.
func TestBlockHookConn(t *testing.T) {
	peer, nc := tcpPair(t)
	// Fixed buffers, far below the message: autotuned, a loopback socket's
	// grew with the first transfer to hold the second whole on a kernel
	// whose tcp_rmem allows 32 MiB (6.18 here), and its write ended within
	// the deadline (CI, as the test user).
	if err := peer.(*net.TCPConn).SetReadBuffer(256 << 10); err != nil {
		t.Fatal(err)
	}
	if err := nc.(*net.TCPConn).SetWriteBuffer(256 << 10); err != nil {
		t.Fatal(err)
	}
	c := newBlockHookConn(nc)
	defer c.Close()
	if !c.canHook() {
		t.Fatal("a TCP connection cannot hook its writes")
	}

	turns := newOutputTurns(1, time.Hour)
	tu, _ := turns.take(nil)
	c.setHook(tu)
	msg := bytes.Repeat([]byte("x"), 16<<20) // far beyond the socket's buffers
	type result struct {
		n   int
		err error
	}
	wrote := make(chan result, 1)
	go func() {
		n, err := c.Write(msg)
		wrote <- result{n, err}
	}()
	deadline := time.After(waitTimeout)
	for len(turns.ch) != 0 {
		select {
		case r := <-wrote:
			t.Fatalf("the write ended (%d, %v) before the socket was full", r.n, r.err)
		case <-deadline:
			t.Fatal("the hook was not called while the write waited for the peer")
		case <-time.After(10 * time.Millisecond):
		}
	}
	got, err := io.CopyN(io.Discard, peer, int64(len(msg)))
	if err != nil {
		t.Fatalf("peer read %d bytes: %v", got, err)
	}
	if r := <-wrote; r.n != len(msg) || r.err != nil {
		t.Fatalf("Write = %d, %v; want %d, nil", r.n, r.err, len(msg))
	}
	c.setHook(nil)

	// The deadline: the peer reads nothing more.
	tu, _ = turns.take(nil)
	c.setHook(tu)
	_ = c.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	n, err := c.Write(msg)
	if err == nil || !isTimeout(err) || n >= len(msg) {
		t.Fatalf("Write past its deadline = %d, %v; want a timeout", n, err)
	}
	if len(turns.ch) != 0 {
		t.Fatal("the turn was still held after the write timed out")
	}
	_ = c.Close()
	if _, err := c.Write([]byte("x")); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("Write after Close: %v, want a closed connection's error", err)
	}
}

// streamTerminal is a terminal whose program has n bytes of output ready
// at once, as a pty that a flood keeps full does, handed out a pty read's
// most (readChunk) at a time; it counts the server's calls.
type streamTerminal struct {
	mu              sync.Mutex
	left            int
	reads, readNows int
	done            chan struct{}
	closeOnce       sync.Once
}

func newStreamTerminal(n int) *streamTerminal {
	return &streamTerminal{left: n, done: make(chan struct{})}
}

func (t *streamTerminal) take(p []byte) int {
	n := min(len(p), readChunk, t.left)
	for i := range n {
		p[i] = 'x'
	}
	t.left -= n
	return n
}

func (t *streamTerminal) Read(p []byte) (int, error) {
	t.mu.Lock()
	t.reads++
	if t.left > 0 {
		defer t.mu.Unlock()
		return t.take(p), nil
	}
	t.mu.Unlock()
	<-t.done
	return 0, io.EOF
}

func (t *streamTerminal) ReadNow(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.readNows++
	return t.take(p), nil
}

func (t *streamTerminal) calls() (reads, readNows int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.reads, t.readNows
}

func (t *streamTerminal) Write(p []byte) (int, error)    { return len(p), nil }
func (t *streamTerminal) Resize(cols, rows uint16) error { return nil }
func (t *streamTerminal) Wait() (runtime.ExitStatus, error) {
	<-t.done
	return runtime.ExitStatus{}, nil
}
func (t *streamTerminal) Close() error { t.closeOnce.Do(func() { close(t.done) }); return nil }

// TestStreamingFramesNeedNoSmallRead: while a flood fills frame after
// frame, the pump gathers the next frame at once, without first waiting
// in a small read of the idle buffer: one system call fewer a frame. A
// 2 MiB flood takes a read to start and one at its end, where it took one
// a frame (64).
func TestStreamingFramesNeedNoSmallRead(t *testing.T) {
	const size = 2 << 20
	term := newStreamTerminal(size)
	s := newTestServer(t, Config{}, withStart(func(context.Context, StartRequest) (Terminal, error) { return term, nil }))
	c := s.open(t, "", nil)
	readFlood(t, c, size)
	reads, readNows := term.calls()
	if reads > 2 {
		t.Errorf("%d small reads for a %d-byte flood (and %d reads of what was there), want at most 2: one to start, one at its end", reads, size, readNows)
	}
	if readNows < size/outputChunk {
		t.Errorf("%d reads of what was there for a %d-byte flood, want at least one a frame (%d)", readNows, size, size/outputChunk)
	}
}
