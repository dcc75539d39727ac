package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"
)

// waitTimeout is the watchdog on every wait in these tests: a hang becomes
// a failure that says what was awaited.
const waitTimeout = 10 * time.Second

const testIndex = "<!doctype html><title>playground</title>"

// testServer is a Server under httptest.NewServer. When the test ends it is
// shut down, which waits for every session, and then closed.
type testServer struct {
	srv    *Server
	ts     *httptest.Server
	wsURL  string
	starts *startRecorder
}

type serverOption func(*Deps)

// withStart replaces testStart, for tests of start failures.
func withStart(start StartFunc) serverOption { return func(d *Deps) { d.Start = start } }

// withLog sends the server's log to w instead of the test log.
func withLog(w *syncBuffer) serverOption {
	return func(d *Deps) { d.Log = zerolog.New(w) }
}

func newTestServer(t testing.TB, cfg Config, opts ...serverOption) *testServer {
	t.Helper()
	deps := Deps{
		Log:    zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel),
		Start:  testStart(t),
		Static: fstest.MapFS{"index.html": {Data: []byte(testIndex)}},
	}
	for _, o := range opts {
		o(&deps)
	}
	rec := &startRecorder{start: deps.Start}
	deps.Start = rec.Start
	srv, err := New(cfg, deps)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close) // runs after Shutdown below: cleanups run last first
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if n := srv.Sessions(); n != 0 {
			t.Errorf("after Shutdown: Sessions() = %d, want 0", n)
		}
		for i, term := range rec.terminals() {
			if !term.closed.Load() {
				t.Errorf("terminal %d was never closed", i)
			}
		}
	})
	return &testServer{srv: srv, ts: ts, wsURL: "ws" + strings.TrimPrefix(ts.URL, "http") + "/ws", starts: rec}
}

// dialer offers subprotocol tty, as ttyd's clients do.
func (s *testServer) dialer() *websocket.Dialer {
	return &websocket.Dialer{Subprotocols: []string{Subprotocol}, HandshakeTimeout: waitTimeout}
}

// dial opens /ws with the given extra headers.
func (s *testServer) dial(header http.Header) (*websocket.Conn, *http.Response, error) {
	return s.dialer().Dial(s.wsURL, header)
}

// open dials /ws and sends init, which is sent as is (a ttyd client's
// {"AuthToken": "", "columns": 80, "rows": 24} when empty).
func (s *testServer) open(t testing.TB, init string, header http.Header) *testClient {
	t.Helper()
	conn, resp, err := s.dial(header)
	if err != nil {
		t.Fatalf("dial: %v (%s)", err, respStatus(resp))
	}
	c := newTestClient(t, conn)
	if init == "" {
		init = `{"AuthToken": "", "columns": 80, "rows": 24}`
	}
	c.send(init)
	return c
}

// get fetches path, with basic auth when user is not empty.
func (s *testServer) get(t testing.TB, path, user, pass string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.ts.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	client := *s.ts.Client()
	client.Timeout = waitTimeout
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	if _, err := body.ReadFrom(resp.Body); err != nil {
		t.Fatalf("GET %s: read body: %v", path, err)
	}
	return resp.StatusCode, resp.Header, body.String()
}

// waitSessions waits until the server has n open sessions.
func (s *testServer) waitSessions(t testing.TB, n int) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for s.srv.Sessions() != n {
		if time.Now().After(deadline) {
			t.Fatalf("Sessions() = %d after %v, want %d", s.srv.Sessions(), waitTimeout, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkWorks runs a fresh session to the end: the server is still healthy.
func (s *testServer) checkWorks(t testing.TB) {
	t.Helper()
	c := s.open(t, "", nil)
	c.input("echo ok\r")
	c.waitLine("ok")
	c.input("exit\r")
	if code, text, _ := c.waitClose(); code != websocket.CloseNormalClosure {
		t.Fatalf("a fresh session after that: close %d %q, want %d", code, text, websocket.CloseNormalClosure)
	}
}

func respStatus(resp *http.Response) string {
	if resp == nil {
		return "no response"
	}
	return resp.Status
}

// testClient is one WebSocket client. A goroutine reads every frame onto
// msgs, so that tests can wait on frames with timeouts and still read on
// afterwards (a gorilla read that times out cannot be retried).
type testClient struct {
	t    testing.TB
	conn *websocket.Conn
	msgs chan []byte   // frames from the server; closed when reading ends
	err  error         // why reading ended; set before msgs is closed
	stop chan struct{} // closed by cleanup: stop delivering
	done chan struct{} // closed when the reading goroutine has returned
}

func newTestClient(t testing.TB, conn *websocket.Conn) *testClient {
	c := &testClient{t: t, conn: conn, msgs: make(chan []byte, 16), stop: make(chan struct{}), done: make(chan struct{})}
	go c.readLoop()
	t.Cleanup(func() {
		close(c.stop)
		_ = conn.Close() // the test is over; the server may be gone already
		select {
		case <-c.done:
		case <-time.After(waitTimeout):
			t.Errorf("test client's reader did not end within %v", waitTimeout)
		}
	})
	return c
}

func (c *testClient) readLoop() {
	defer close(c.done)
	defer close(c.msgs)
	for {
		_, m, err := c.conn.ReadMessage()
		if err != nil {
			c.err = err
			return
		}
		select {
		case c.msgs <- m:
		case <-c.stop:
			c.err = errors.New("test client stopped")
			return
		}
	}
}

// send sends one binary frame and fails the test if it cannot.
func (c *testClient) send(frame string) {
	c.t.Helper()
	if err := c.trySend(websocket.BinaryMessage, frame); err != nil {
		c.t.Fatalf("send %.40q: %v", frame, err)
	}
}

func (c *testClient) trySend(kind int, frame string) error {
	_ = c.conn.SetWriteDeadline(time.Now().Add(waitTimeout))
	return c.conn.WriteMessage(kind, []byte(frame))
}

func (c *testClient) input(s string) { c.t.Helper(); c.send("0" + s) }

// next returns the next frame, or nil when the connection has ended.
func (c *testClient) next() []byte {
	c.t.Helper()
	select {
	case m, ok := <-c.msgs:
		if !ok {
			return nil
		}
		return m
	case <-time.After(waitTimeout):
		c.t.Fatalf("no frame within %v", waitTimeout)
		return nil
	}
}

// waitOutput reads frames until the OUTPUT read by this call contains want,
// and returns that output. Other frames are skipped.
func (c *testClient) waitOutput(want string) string {
	c.t.Helper()
	return c.waitFor(fmt.Sprintf("output %q", want), func(out []byte) bool { return bytes.Contains(out, []byte(want)) })
}

// waitLine reads frames until the output read by this call has a line
// that is want, alone or after the prompt: the shell may print its prompt
// before or after the terminal echoes what was typed, so an answer can
// follow "$ " on the echo's next line. Other frames are skipped.
func (c *testClient) waitLine(want string) string {
	c.t.Helper()
	return c.waitFor(fmt.Sprintf("a line %q", want), func(out []byte) bool { return hasLine(out, want) })
}

// waitFor reads frames until the OUTPUT read by this call satisfies done,
// and returns that output; what names it in a failure.
func (c *testClient) waitFor(what string, done func(out []byte) bool) string {
	c.t.Helper()
	deadline := time.After(waitTimeout)
	var out []byte
	for {
		select {
		case m, ok := <-c.msgs:
			if !ok {
				c.t.Fatalf("connection ended (%v) before %s; got %q", c.err, what, out)
			}
			if len(m) > 0 && m[0] == msgOutput {
				out = append(out, m[1:]...)
				if done(out) {
					return string(out)
				}
			}
		case <-deadline:
			c.t.Fatalf("no %s within %v; got %q", what, waitTimeout, out)
		}
	}
}

// hasLine reports whether out has a complete line that is want, alone or
// after the prompt "$ ".
func hasLine(out []byte, want string) bool {
	for line := range bytes.Lines(out) {
		line, complete := bytes.CutSuffix(line, []byte("\r\n"))
		if complete && string(bytes.TrimPrefix(line, []byte("$ "))) == want {
			return true
		}
	}
	return false
}

// waitClose reads frames until the server closes, and returns its close
// code and text and the frames before it. A connection that ends without a
// close frame fails the test.
func (c *testClient) waitClose() (int, string, [][]byte) {
	c.t.Helper()
	deadline := time.After(waitTimeout)
	var frames [][]byte
	for {
		select {
		case m, ok := <-c.msgs:
			if !ok {
				var ce *websocket.CloseError
				if !errors.As(c.err, &ce) {
					c.t.Fatalf("connection ended without a close frame: %v", c.err)
				}
				return ce.Code, ce.Text, frames
			}
			frames = append(frames, m)
		case <-deadline:
			c.t.Fatalf("no close within %v", waitTimeout)
		}
	}
}

// startRecorder counts starts and keeps the terminals, so tests can check
// that none was started, or that each was closed.
type startRecorder struct {
	start StartFunc
	calls atomic.Int32
	mu    sync.Mutex
	terms []*recordedTerminal
}

func (r *startRecorder) Start(ctx context.Context, cols, rows uint16) (Terminal, error) {
	r.calls.Add(1)
	term, err := r.start(ctx, cols, rows)
	if err != nil {
		return nil, err
	}
	rt := &recordedTerminal{Terminal: term}
	r.mu.Lock()
	r.terms = append(r.terms, rt)
	r.mu.Unlock()
	return rt, nil
}

func (r *startRecorder) terminals() []*recordedTerminal {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*recordedTerminal(nil), r.terms...)
}

type recordedTerminal struct {
	Terminal
	closed atomic.Bool
}

func (t *recordedTerminal) Close() error {
	t.closed.Store(true)
	return t.Terminal.Close()
}

// ReadNow passes the wrapped terminal's on, so the server gathers output
// in tests as it does in production; 0 and no error where it has none.
func (t *recordedTerminal) ReadNow(p []byte) (int, error) {
	if now, ok := t.Terminal.(readNower); ok {
		return now.ReadNow(p)
	}
	return 0, nil
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines to log to.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
