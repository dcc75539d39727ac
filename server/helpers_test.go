package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"

	pgruntime "github.com/guntainer/playground/runtime"
	"github.com/guntainer/playground/server/vt"
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
	// Every test client comes from 127.0.0.1: the per-client limits are
	// off unless a test is about them.
	if cfg.ConnRate == 0 {
		cfg.ConnRate = -1
	}
	if cfg.MaxSessionsPerClient == 0 {
		cfg.MaxSessionsPerClient = -1
	}
	if cfg.MaxWatchersPerClient == 0 {
		cfg.MaxWatchersPerClient = -1
	}
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

// openAt is open on /ws?QUERY: a reconnect names the server's route.
func (s *testServer) openAt(t testing.TB, query, init string, header http.Header) *testClient {
	t.Helper()
	conn, resp, err := s.dialer().Dial(s.wsURL+"?"+query, header)
	if err != nil {
		t.Fatalf("dial: %v (%s)", err, respStatus(resp))
	}
	c := newTestClient(t, conn)
	c.send(init)
	return c
}

// refusedNew checks that a new session is turned away as the protocol
// says for a server on its own: upgraded, and closed after its init with
// code and a text that says reason.
func (s *testServer) refusedNew(t testing.TB, code int, reason string) {
	t.Helper()
	if s.srv.cfg.Routed {
		t.Fatalf("a routed server refuses at the handshake: use refusedAt503")
	}
	c := s.open(t, "", nil)
	got, text, _ := c.waitClose()
	if got != code || !strings.Contains(text, reason) {
		t.Fatalf("a new session: closed %d %q, want %d saying %q", got, text, code, reason)
	}
}

// refusedAt503 checks that a routed server (Config.Routed) turns a
// new session's handshake away with 503 and reason.
func (s *testServer) refusedAt503(t testing.TB, reason string) {
	t.Helper()
	conn, resp, err := s.dial(nil)
	if conn != nil {
		_ = conn.Close()
	}
	if resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a new session's handshake: %v (%s), want 503", err, respStatus(resp))
	}
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	if !strings.Contains(body.String(), reason) {
		t.Errorf("503 body %q, want it to say %q", body.String(), reason)
	}
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

// waitDetached waits until the server has n detached sessions.
func (s *testServer) waitDetached(t testing.TB, n int) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		d, _ := s.srv.attachCounts()
		if d == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d detached sessions after %v, want %d", d, waitTimeout, n)
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

	mu       sync.Mutex
	notices  []string // the text of every NOTICE so far
	sessions []sessionInfo
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
		if len(m) > 0 && (m[0] == msgNotice || m[0] == msgSession) {
			c.mu.Lock()
			if m[0] == msgNotice {
				var n struct{ Level, Text string }
				_ = json.Unmarshal(m[1:], &n) // a bad one shows as ""
				c.notices = append(c.notices, n.Level+": "+n.Text)
			} else {
				var si sessionInfo
				_ = json.Unmarshal(m[1:], &si)
				c.sessions = append(c.sessions, si)
			}
			c.mu.Unlock()
		}
		select {
		case c.msgs <- m:
		case <-c.stop:
			c.err = errors.New("test client stopped")
			return
		}
	}
}

// hasNotice reports whether a NOTICE containing text has come.
func (c *testClient) hasNotice(text string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.notices {
		if strings.Contains(n, text) {
			return true
		}
	}
	return false
}

// waitNotice reads frames until a NOTICE containing text has come.
func (c *testClient) waitNotice(text string) {
	c.t.Helper()
	deadline := time.After(waitTimeout)
	for !c.hasNotice(text) {
		select {
		case _, ok := <-c.msgs:
			if !ok && !c.hasNotice(text) {
				c.mu.Lock()
				defer c.mu.Unlock()
				c.t.Fatalf("connection ended (%v) before a NOTICE %q; notices %q", c.err, text, c.notices)
			}
		case <-deadline:
			c.mu.Lock()
			defer c.mu.Unlock()
			c.t.Fatalf("no NOTICE %q within %v; notices %q", text, waitTimeout, c.notices)
		}
	}
}

// session waits for the first SESSION message and returns it.
func (c *testClient) session() sessionInfo {
	c.t.Helper()
	deadline := time.After(waitTimeout)
	for {
		c.mu.Lock()
		if len(c.sessions) > 0 {
			si := c.sessions[0]
			c.mu.Unlock()
			return si
		}
		c.mu.Unlock()
		select {
		case _, ok := <-c.msgs:
			if !ok {
				c.mu.Lock()
				n := len(c.sessions)
				c.mu.Unlock()
				if n == 0 {
					c.t.Fatalf("connection ended (%v) before SESSION", c.err)
				}
			}
		case <-deadline:
			c.t.Fatalf("no SESSION within %v", waitTimeout)
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
				c.t.Fatalf("connection ended (%v) before %s; got %q", c.err, what, tail(out))
			}
			if len(m) > 0 && m[0] == msgOutput {
				out = append(out, m[1:]...)
				if done(out) {
					return string(out)
				}
			}
		case <-deadline:
			c.t.Fatalf("no %s within %v; got %q", what, waitTimeout, tail(out))
		}
	}
}

// hasLine reports whether out has a complete line that is want, alone or
// after the prompt "$ ".
func hasLine(out []byte, want string) bool {
	for line := range bytes.Lines(out) {
		line, complete := bytes.CutSuffix(line, []byte("\r\n"))
		for bytes.HasPrefix(line, []byte("$ ")) {
			line = line[2:]
		}
		if complete && string(line) == want {
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

func (r *startRecorder) Start(ctx context.Context, req StartRequest) (Terminal, error) {
	r.calls.Add(1)
	term, err := r.start(ctx, req)
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
	mu     sync.Mutex
	sizes  []string // "COLSxROWS" of every Resize
}

func (t *recordedTerminal) Resize(cols, rows uint16) error {
	t.mu.Lock()
	t.sizes = append(t.sizes, fmt.Sprintf("%dx%d", cols, rows))
	t.mu.Unlock()
	return t.Terminal.Resize(cols, rows)
}

// waitResized waits until the terminal was resized to size ("COLSxROWS").
func (t *recordedTerminal) waitResized(tb testing.TB, size string) {
	tb.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		t.mu.Lock()
		ok := slices.Contains(t.sizes, size)
		sizes := slices.Clone(t.sizes)
		t.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("terminal not resized to %s within %v; resizes %q", size, waitTimeout, sizes)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Stats passes the wrapped terminal's on.
func (t *recordedTerminal) Stats() (pgruntime.Stats, error) {
	if st, ok := t.Terminal.(statser); ok {
		return st.Stats()
	}
	return pgruntime.Stats{}, errors.ErrUnsupported
}

// ID and SignalForeground pass the wrapped terminal's on, as the
// server looks for them.
func (t *recordedTerminal) ID() string { return terminalID(t.Terminal) }

func (t *recordedTerminal) SignalForeground(sig syscall.Signal) error {
	if fs, ok := t.Terminal.(foregroundSignaler); ok {
		return fs.SignalForeground(sig)
	}
	return errors.ErrUnsupported
}

// SignalKey passes the wrapped terminal's on, as SignalForeground.
func (t *recordedTerminal) SignalKey(b byte) (syscall.Signal, bool, error) {
	if k, ok := t.Terminal.(signalKeyer); ok {
		return k.SignalKey(b)
	}
	return 0, false, errors.ErrUnsupported
}

// EchoesInput passes the wrapped terminal's on (the typeahead hold asks
// it); a terminal without it is never held.
func (t *recordedTerminal) EchoesInput() (bool, error) {
	if e, ok := t.Terminal.(echoer); ok {
		return e.EchoesInput()
	}
	return false, errors.ErrUnsupported
}

// ReadsCookedInput passes the wrapped terminal's on, as EchoesInput.
func (t *recordedTerminal) ReadsCookedInput() (bool, error) {
	if r, ok := t.Terminal.(cookedReader); ok {
		return r.ReadsCookedInput()
	}
	return false, errors.ErrUnsupported
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

// dialWithHost dials url sending host as the Host header, as a browser
// does for a rebound name.
func dialWithHost(d *websocket.Dialer, url, host string, h http.Header) (*websocket.Conn, *http.Response, error) {
	h = h.Clone()
	h.Set("Host", host)
	return d.Dial(url, h)
}

// tail is the end of out, for failure messages.
func tail(out []byte) string {
	const n = 400
	if len(out) > n {
		return fmt.Sprintf("[%d bytes before] %s", len(out)-n, out[len(out)-n:])
	}
	return string(out)
}

// openRunning opens a session that runs cmd, on a bare connection the test
// reads (or does not read) itself.
func (s *testServer) openRunning(t testing.TB, cmd string) *websocket.Conn {
	t.Helper()
	conn, resp, err := s.dial(nil)
	if err != nil {
		t.Fatalf("dial: %v (%s)", err, respStatus(resp))
	}
	t.Cleanup(func() { _ = conn.Close() })
	for _, f := range []string{`{"columns": 80, "rows": 24}`, "0" + cmd + "\r"} {
		if err := conn.WriteMessage(websocket.BinaryMessage, []byte(f)); err != nil {
			t.Fatal(err)
		}
	}
	return conn
}

// only returns the one session the server has.
func (s *testServer) only(t testing.TB) *session {
	t.Helper()
	s.srv.mu.Lock()
	defer s.srv.mu.Unlock()
	if len(s.srv.sessions) != 1 {
		t.Fatalf("%d sessions, want 1", len(s.srv.sessions))
	}
	for _, ss := range s.srv.sessions {
		return ss
	}
	return nil
}

// waitInputBlocked waits until the session's input writer has been stuck
// on one write for longer than a Ctrl-C waits for it.
func waitInputBlocked(t testing.TB, ss *session) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !ss.input.blocked(interruptAfter) {
		if time.Now().After(deadline) {
			t.Fatalf("the input writer is not blocked after %v", waitTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// screen reads OUTPUT frames into a terminal emulator of cols x rows
// until done says the screen is as wanted, and returns it. The emulator
// is the server's own (package vt): it stands in for the browser's
// xterm.js, to read what a client would show.
func (c *testClient) screen(cols, rows int, what string, done func(s *vt.Screen) bool) *vt.Screen {
	c.t.Helper()
	s := vt.New(cols, rows, 1000, 1<<20)
	deadline := time.After(waitTimeout)
	for !done(s) {
		select {
		case m, ok := <-c.msgs:
			if !ok {
				c.t.Fatalf("connection ended (%v) before %s; screen:\n%s", c.err, what, strings.Join(s.Lines(), "\n"))
			}
			if len(m) > 0 && m[0] == msgOutput {
				_, _ = s.Write(m[1:])
			}
		case <-deadline:
			c.t.Fatalf("no %s within %v; screen:\n%s", what, waitTimeout, strings.Join(s.Lines(), "\n"))
		}
	}
	return s
}

// screenHas reports whether a row of the screen is want, alone or after
// prompts (the shell may print its prompts before the terminal echoes
// what was typed ahead).
func screenHas(s *vt.Screen, want string) bool {
	for _, l := range s.Lines() {
		for strings.HasPrefix(l, "$ ") {
			l = l[2:]
		}
		if l == want {
			return true
		}
	}
	return false
}

// lastRow is the screen's last non-empty row.
func lastRow(s *vt.Screen) string {
	lines := s.Lines()
	for i := len(lines) - 1; i >= 0; i-- {
		if lines[i] != "" {
			return lines[i]
		}
	}
	return ""
}

// initWith is an init frame of 80x24 with one extension field.
func initWith(field, value string) string {
	b, _ := json.Marshal(map[string]any{"AuthToken": "", "columns": 80, "rows": 24, field: value})
	return string(b)
}

// apiGet fetches an admin API path with the admin token and decodes its
// JSON into v; it returns the status.
func (s *testServer) apiGet(t testing.TB, path, admin string, v any) int {
	t.Helper()
	return s.api(t, http.MethodGet, path, admin, "", v)
}

func (s *testServer) api(t testing.TB, method, path, admin, body string, v any) int {
	t.Helper()
	req, err := http.NewRequest(method, s.ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if admin != "" {
		req.Header.Set("Authorization", "Bearer "+admin)
	}
	resp, err := s.ts.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q, want JSON", method, path, ct)
	}
	if v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
	return resp.StatusCode
}

// metrics scrapes /metrics and returns its samples by name with labels,
// as "name{label=\"v\"}".
func (s *testServer) metrics(t testing.TB) map[string]float64 {
	t.Helper()
	code, _, body := s.get(t, "/metrics", "", "")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	out := make(map[string]float64)
	for line := range strings.Lines(body) {
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(strings.TrimSpace(line[i+1:]), &v); err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out
}

func (s *testServer) metricValue(t testing.TB, name string) float64 {
	t.Helper()
	m := s.metrics(t)
	v, ok := m[name]
	if !ok {
		t.Errorf("no metric %s", name)
	}
	return v
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func readDirNames(dir string) ([]string, error) {
	es, err := os.ReadDir(dir)
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names, err
}
