package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	goruntime "runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

func TestEcho(t *testing.T) {
	s := newTestServer(t, Config{})
	c := s.open(t, "", nil)
	c.input("echo $((6*7))\r")
	// The typed command is echoed too; the answer is on a line of its own.
	c.waitLine("42")
}

func TestTextFrames(t *testing.T) {
	// ttyd's clients send text or binary; the server takes both.
	s := newTestServer(t, Config{})
	conn, resp, err := s.dial(nil)
	if err != nil {
		t.Fatalf("dial: %v (%s)", err, respStatus(resp))
	}
	c := newTestClient(t, conn)
	for _, f := range []string{`{"columns": 80, "rows": 24}`, "0echo $((6*7))\r"} {
		if err := c.trySend(websocket.TextMessage, f); err != nil {
			t.Fatalf("send %q: %v", f, err)
		}
	}
	c.waitLine("42")
}

func TestOpeningMessages(t *testing.T) {
	tests := []struct {
		name      string
		cfg       Config
		wantTitle string
		wantPrefs string
	}{
		{"defaults", Config{}, "playground", "{}"},
		{"configured", Config{Title: "class 3b", Preferences: map[string]any{"fontSize": 16, "cursorBlink": true}},
			"class 3b", `{"cursorBlink":true,"fontSize":16}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, tt.cfg)
			c := s.open(t, "", nil)
			var got []string
			for range 3 {
				m := c.next()
				if m == nil {
					t.Fatalf("connection ended (%v) after %q", c.err, got)
				}
				got = append(got, string(m))
			}
			if got[0][0] != msgSession {
				t.Fatalf("first frame %q, want SESSION (%q)", got[0], msgSession)
			}
			var sess map[string]any
			if err := json.Unmarshal([]byte(got[0][1:]), &sess); err != nil {
				t.Fatalf("SESSION payload %q: %v", got[0][1:], err)
			}
			id, _ := sess["id"].(string)
			resume, _ := sess["resume"].(string)
			watch, _ := sess["watch"].(string)
			if id == "" || !strings.HasPrefix(resume, id+".") || !strings.HasPrefix(watch, id+".") || resume == watch {
				t.Errorf("SESSION payload %q: want an id, and resume and watch keys that differ", got[0][1:])
			}
			// 128 bits or more of secret in each key, in base32.
			if len(secretOf(resume)) < 26 || len(secretOf(watch)) < 26 {
				t.Errorf("SESSION payload %q: keys too short", got[0][1:])
			}
			if sess["idleTimeout"] != 1800.0 || sess["maxLifetime"] != 14400.0 {
				t.Errorf("SESSION payload %q: want idleTimeout 1800 and maxLifetime 14400", got[0][1:])
			}
			if want := "1" + tt.wantTitle; got[1] != want {
				t.Errorf("second frame %q, want %q", got[1], want)
			}
			if want := "2" + tt.wantPrefs; got[2] != want {
				t.Errorf("third frame %q, want %q", got[2], want)
			}
		})
	}
}

func TestSessionIDsDiffer(t *testing.T) {
	s := newTestServer(t, Config{})
	a, b := string(s.open(t, "", nil).next()), string(s.open(t, "", nil).next())
	if a == b {
		t.Errorf("two sessions got the same SESSION message %q", a)
	}
}

func TestSize(t *testing.T) {
	tests := []struct {
		name   string
		init   string
		resize string // sent before stty when not empty
		want   string // stty size: rows, then columns
	}{
		{"init", `{"columns": 120, "rows": 40}`, "", "40 120"},
		{"init default", `{"AuthToken": ""}`, "", "24 80"},
		{"resize", "", `1{"columns": 100, "rows": 30}`, "30 100"},
		{"resize to the limit", "", `1{"columns": 1000, "rows": 1}`, "1 1000"},
		// A frame of exactly MaxFrame bytes is still accepted.
		{"max frame", "", `1{"columns": 100, "rows": 30}` + strings.Repeat(" ", DefaultMaxFrame-len(`1{"columns": 100, "rows": 30}`)), "30 100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, Config{})
			c := s.open(t, tt.init, nil)
			if tt.resize != "" {
				c.send(tt.resize)
			}
			c.input("stty size\r")
			c.waitLine(tt.want)
		})
	}
}

func TestExit(t *testing.T) {
	tests := []struct {
		name      string
		command   string
		wantExit  string
		wantClose string
	}{
		{"code", "exit 3", `{"code":3}`, "exit code 3"},
		{"zero", "exit", `{"code":0}`, "exit code 0"},
		// The shell is PID 1, which no kill from its own container
		// reaches (`kill -9 $$` does nothing, as under docker without
		// --init); the kernel's SIGKILL at the hard CPU limit does.
		{"signal", "ulimit -t 1; while :; do :; done", `{"code":-1,"signal":"KILL"}`, "signal KILL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, Config{})
			c := s.open(t, "", nil)
			c.input(tt.command + "\r")
			code, text, frames := c.waitClose()
			if code != websocket.CloseNormalClosure || text != tt.wantClose {
				t.Errorf("close %d %q, want %d %q", code, text, websocket.CloseNormalClosure, tt.wantClose)
			}
			if len(frames) == 0 {
				t.Fatal("no frames before the close")
			}
			if got, want := string(frames[len(frames)-1]), "8"+tt.wantExit; got != want {
				t.Errorf("last frame before the close %q, want EXIT %q", got, want)
			}
			for _, f := range frames[:len(frames)-1] {
				if f[0] == msgExit {
					t.Errorf("EXIT sent more than once: %q", f)
				}
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	const init = `{"AuthToken": "", "columns": 80, "rows": 24}`
	tests := []struct {
		name     string
		frames   []string
		wantCode int
		mayStart bool // whether a terminal may be started before the close
	}{
		{"non-init first frame", []string{"0ls\r"}, websocket.CloseProtocolError, false},
		{"empty first frame", []string{""}, websocket.CloseProtocolError, false},
		{"bad init JSON", []string{`{"columns": 80,`}, websocket.CloseProtocolError, false},
		{"init trailing garbage", []string{`{"columns": 80} x`}, websocket.CloseProtocolError, false},
		{"init columns zero", []string{`{"columns": 0, "rows": 24}`}, websocket.CloseProtocolError, false},
		{"init rows too many", []string{`{"columns": 80, "rows": 1001}`}, websocket.CloseProtocolError, false},
		{"init columns not a number", []string{`{"columns": "80", "rows": 24}`}, websocket.CloseProtocolError, false},
		{"init columns fractional", []string{`{"columns": 80.5, "rows": 24}`}, websocket.CloseProtocolError, false},
		{"resume key", []string{`{"columns": 80, "rows": 24, "resume": "k"}`}, closeUnknownKey, false},
		{"watch key", []string{`{"columns": 80, "rows": 24, "watch": "k"}`}, closeUnknownKey, false},
		{"unknown env", []string{`{"columns": 80, "rows": 24, "env": "nope"}`}, websocket.ClosePolicyViolation, false},
		{"oversize init", []string{`{"x": "` + strings.Repeat("a", DefaultMaxFrame) + `"}`}, websocket.CloseMessageTooBig, false},
		{"unknown command byte", []string{init, "9"}, websocket.CloseProtocolError, true},
		{"empty frame", []string{init, ""}, websocket.CloseProtocolError, true},
		{"second init", []string{init, init}, websocket.CloseProtocolError, true},
		{"bad resize JSON", []string{init, `1{"columns": 100`}, websocket.CloseProtocolError, true},
		{"resize without rows", []string{init, `1{"columns": 100}`}, websocket.CloseProtocolError, true},
		{"resize 0x0", []string{init, `1{"columns": 0, "rows": 0}`}, websocket.CloseProtocolError, true},
		{"resize 65535x65535", []string{init, `1{"columns": 65535, "rows": 65535}`}, websocket.CloseProtocolError, true},
		{"resize negative", []string{init, `1{"columns": -1, "rows": 24}`}, websocket.CloseProtocolError, true},
		{"resize huge", []string{init, `1{"columns": 1e30, "rows": 24}`}, websocket.CloseProtocolError, true},
		{"oversize frame", []string{init, "0" + strings.Repeat("x", DefaultMaxFrame)}, websocket.CloseMessageTooBig, true},
	}
	s := newTestServer(t, Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := s.starts.calls.Load()
			conn, resp, err := s.dial(nil)
			if err != nil {
				t.Fatalf("dial: %v (%s)", err, respStatus(resp))
			}
			c := newTestClient(t, conn)
			for _, f := range tt.frames {
				// The server may close before the last frame is written.
				if err := c.trySend(websocket.BinaryMessage, f); err != nil {
					t.Logf("send %.40q: %v", f, err)
				}
			}
			code, text, _ := c.waitClose()
			if code != tt.wantCode {
				t.Errorf("close %d %q, want %d", code, text, tt.wantCode)
			}
			if len(text) > maxCloseText || !utf8.ValidString(text) {
				t.Errorf("close text %q: want valid UTF-8 of at most %d bytes", text, maxCloseText)
			}
			if started := s.starts.calls.Load() > before; started && !tt.mayStart {
				t.Errorf("a terminal was started")
			}
			s.checkWorks(t)
		})
	}
}

func TestPauseResume(t *testing.T) {
	const total = 4 << 20
	s := newTestServer(t, Config{})
	c := s.open(t, "", nil)
	c.waitOutput("$ ")

	// 'Z' (octal 132) appears neither in the typed command nor in the
	// prompt, so counting Zs counts the program's output exactly.
	count := 0
	var exit []byte
	// read reads frames until none comes for quiet, or until the close;
	// it reports whether the connection is still open.
	read := func(quiet time.Duration) bool {
		t.Helper()
		deadline := time.After(waitTimeout)
		for {
			select {
			case m, ok := <-c.msgs:
				if !ok {
					return false
				}
				switch m[0] {
				case msgOutput:
					count += bytes.Count(m[1:], []byte("Z"))
				case msgExit:
					exit = m
				}
			case <-time.After(quiet):
				return true
			case <-deadline:
				t.Fatalf("output did not stop within %v (%d of %d bytes)", waitTimeout, count, total)
			}
		}
	}

	// Paused before the program starts: it must block, not finish.
	c.send("2")
	c.input(fmt.Sprintf("head -c %d /dev/zero | tr '\\000' '\\132'; exit 0\r", total))
	if !read(300 * time.Millisecond) {
		t.Fatalf("connection ended (%v) while paused", c.err)
	}
	if count >= total {
		t.Fatalf("paused, yet all %d bytes arrived", count)
	}
	paused := count

	// Resumed, then paused again mid-stream: output stops again. (Whether
	// the program is still blocked then depends on how much the socket
	// buffers took meanwhile, so only the stop is checked.)
	c.send("3")
	for count == paused {
		m := c.next()
		if m == nil {
			t.Fatalf("connection ended (%v) after %d of %d bytes", c.err, count, total)
		}
		if m[0] == msgOutput {
			count += bytes.Count(m[1:], []byte("Z"))
		}
	}
	c.send("2")
	if !read(300 * time.Millisecond) {
		t.Fatalf("connection ended (%v) while paused", c.err)
	}
	t.Logf("paused at %d, then at %d of %d bytes", paused, count, total)

	// Resumed to the end: nothing was lost.
	c.send("3")
	for read(time.Second) {
	}
	var ce *websocket.CloseError
	if !errors.As(c.err, &ce) || ce.Code != websocket.CloseNormalClosure {
		t.Errorf("connection ended with %v, want close %d", c.err, websocket.CloseNormalClosure)
	}
	if count != total {
		t.Errorf("got %d bytes of output, want %d", count, total)
	}
	if string(exit) != `8{"code":0}` {
		t.Errorf("EXIT %q, want %q", exit, `8{"code":0}`)
	}
}

func TestShutdown(t *testing.T) {
	s := newTestServer(t, Config{})
	c := s.open(t, "", nil)
	c.input("echo $((6*7))\r")
	c.waitLine("42")

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if n := s.srv.Sessions(); n != 0 {
		t.Errorf("Sessions() = %d after Shutdown, want 0", n)
	}
	terms := s.starts.terminals()
	if len(terms) != 1 || !terms[0].closed.Load() {
		t.Errorf("after Shutdown: %d terminals, want 1, closed", len(terms))
	}
	if code, text, _ := c.waitClose(); code != websocket.CloseGoingAway {
		t.Errorf("close %d %q, want %d", code, text, websocket.CloseGoingAway)
	}

	// Draining: no new sessions.
	_, resp, err := s.dial(nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("dial after Shutdown: %v (%s), want %d", err, respStatus(resp), http.StatusServiceUnavailable)
	}
}

func TestShutdownWhilePaused(t *testing.T) {
	// A paused session with a blocked program must still end at once.
	s := newTestServer(t, Config{})
	c := s.open(t, "", nil)
	c.waitOutput("$ ")
	c.send("2")
	c.input("yes\r")
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	begin := time.Now()
	if err := s.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if d := time.Since(begin); d > 2*time.Second {
		t.Errorf("Shutdown took %v", d)
	}
	if code, text, _ := c.waitClose(); code != websocket.CloseGoingAway {
		t.Errorf("close %d %q, want %d", code, text, websocket.CloseGoingAway)
	}
}

func TestAuthToken(t *testing.T) {
	const user, pass = "teacher", "s3cret"
	token := "dGVhY2hlcjpzM2NyZXQ=" // base64("teacher:s3cret")
	s := newTestServer(t, Config{Credential: user + ":" + pass})
	basic := http.Header{}
	basic.Set("Authorization", "Basic "+token)

	tests := []struct {
		name     string
		init     string
		wantCode int
	}{
		{"wrong token", `{"AuthToken": "bm9wZTpub3Bl", "columns": 80, "rows": 24}`, websocket.ClosePolicyViolation},
		{"no token", `{"columns": 80, "rows": 24}`, websocket.ClosePolicyViolation},
		{"wrong token with resume key", `{"AuthToken": "x", "resume": "k"}`, websocket.ClosePolicyViolation},
		{"right token", `{"AuthToken": "` + token + `", "columns": 80, "rows": 24}`, websocket.CloseNormalClosure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := s.starts.calls.Load()
			c := s.open(t, tt.init, basic)
			if tt.wantCode == websocket.CloseNormalClosure {
				c.input("exit\r")
			}
			code, text, _ := c.waitClose()
			if code != tt.wantCode {
				t.Errorf("close %d %q, want %d", code, text, tt.wantCode)
			}
			started := s.starts.calls.Load() > before
			if want := tt.wantCode == websocket.CloseNormalClosure; started != want {
				t.Errorf("terminal started: %v, want %v", started, want)
			}
		})
	}

	t.Run("no basic auth", func(t *testing.T) {
		_, resp, err := s.dial(nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("dial: %v (%s), want %d", err, respStatus(resp), http.StatusUnauthorized)
		}
	})
}

func TestStartFailure(t *testing.T) {
	// The client gets a safe message; the log gets the detail (host
	// paths, hints for the admin).
	tests := []struct {
		name string
		err  error
	}{
		{"short", errors.New("mount overlay on /var/lib/playground/c-1: permission denied")},
		{"long", errors.New(strings.Repeat("é", 100))},
		{"multi-line", errors.New("pull image:\n\tnot found (sysctl kernel.unprivileged_userns_clone=1)")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs syncBuffer
			s := newTestServer(t, Config{}, withLog(&logs), withStart(func(context.Context, StartRequest) (Terminal, error) {
				return nil, tt.err
			}))
			c := s.open(t, "", nil)
			code, text, frames := c.waitClose()
			if code != websocket.CloseInternalServerErr || text != startFailedMessage {
				t.Errorf("close %d %q, want %d %q", code, text, websocket.CloseInternalServerErr, startFailedMessage)
			}
			if len(frames) != 0 {
				t.Errorf("frames before the close: %q, want none", frames)
			}
			s.waitSessions(t, 0)
			want, _ := json.Marshal(tt.err.Error())
			if !strings.Contains(logs.String(), string(want[1:len(want)-1])) {
				t.Errorf("the log lacks the start error %q:\n%s", tt.err, logs.String())
			}
		})
	}
}

func TestStartTimeout(t *testing.T) {
	s := newTestServer(t, Config{StartTimeout: 100 * time.Millisecond}, withStart(func(ctx context.Context, _ StartRequest) (Terminal, error) {
		<-ctx.Done() // a start that only gives up when told
		return nil, ctx.Err()
	}))
	c := s.open(t, "", nil)
	if code, text, _ := c.waitClose(); code != websocket.CloseInternalServerErr {
		t.Errorf("close %d %q, want %d", code, text, websocket.CloseInternalServerErr)
	}
}

// TestSlowStartIsNotTheClients: a start that takes longer than the init
// timeout does not cut off a client that types while it waits.
func TestSlowStartIsNotTheClients(t *testing.T) {
	start := testStart(t)
	s := newTestServer(t, Config{InitTimeout: 200 * time.Millisecond}, withStart(func(ctx context.Context, req StartRequest) (Terminal, error) {
		time.Sleep(600 * time.Millisecond) // containers queued behind many others
		return start(ctx, req)
	}))
	c := s.open(t, "", nil)
	time.Sleep(400 * time.Millisecond) // past the init timeout, before the start ends
	c.input("echo $((6*7))\r")
	c.waitLine("42")
	c.input("echo $((7*8))\r") // and the session goes on
	c.waitLine("56")
}

// TestCapacity: at --max-sessions a new session is closed with 1013 after
// its init, as the protocol says; a routed server (one with a route id)
// turns it away at the handshake with 503 instead, so that the proxy in
// front can send it to another server, and one that names a route (a
// reconnect whose session is gone) still gets 1013 after its init.
func TestCapacity(t *testing.T) {
	for _, route := range []string{"", "pg-1"} {
		t.Run("route="+route, func(t *testing.T) { testCapacity(t, route) })
	}
}

func testCapacity(t *testing.T, route string) {
	s := newTestServer(t, Config{MaxSessions: 1, RouteID: route, Routed: route != ""})
	first := s.open(t, "", nil)
	first.waitOutput("$ ")
	if code, _, body := s.get(t, "/readyz", "", ""); code != http.StatusServiceUnavailable || !strings.Contains(body, "capacity") {
		t.Errorf("/readyz at capacity: %d %q, want 503 saying so", code, body)
	}
	if route == "" {
		s.refusedNew(t, websocket.CloseTryAgainLater, "capacity")
	} else {
		s.refusedAt503(t, "capacity")
		second := s.openAt(t, "route=elsewhere", `{"columns": 80, "rows": 24}`, nil)
		if code, text, _ := second.waitClose(); code != websocket.CloseTryAgainLater {
			t.Errorf("second session: close %d %q, want %d", code, text, websocket.CloseTryAgainLater)
		}
	}
	if n := s.starts.calls.Load(); n != 1 {
		t.Errorf("%d terminals started, want 1", n)
	}
	first.input("exit\r")
	first.waitClose()
	s.waitSessions(t, 0)
	if code, _, body := s.get(t, "/readyz", "", ""); code != http.StatusOK {
		t.Errorf("/readyz below capacity: %d %q, want 200", code, body)
	}
	s.checkWorks(t)
}

func TestInitTimeout(t *testing.T) {
	s := newTestServer(t, Config{InitTimeout: 100 * time.Millisecond})
	conn, resp, err := s.dial(nil)
	if err != nil {
		t.Fatalf("dial: %v (%s)", err, respStatus(resp))
	}
	c := newTestClient(t, conn)
	if code, text, _ := c.waitClose(); code != websocket.CloseProtocolError {
		t.Errorf("close %d %q, want %d", code, text, websocket.CloseProtocolError)
	}
	if n := s.starts.calls.Load(); n != 0 {
		t.Errorf("%d terminals started, want none", n)
	}
}

func TestKeepAlive(t *testing.T) {
	s := newTestServer(t, Config{PingInterval: 50 * time.Millisecond})

	// A client that answers pings (gorilla does while reading) stays,
	// well past two ping intervals of silence.
	live := s.open(t, "", nil)
	live.waitOutput("$ ")
	time.Sleep(300 * time.Millisecond)
	live.input("echo $((6*7))\r")
	live.waitLine("42")

	// A client that never reads never answers: its connection is dropped
	// and its session waits, detached, for a resume.
	conn, resp, err := s.dial(nil)
	if err != nil {
		t.Fatalf("dial: %v (%s)", err, respStatus(resp))
	}
	t.Cleanup(func() { _ = conn.Close() })
	if err := conn.WriteMessage(websocket.BinaryMessage, []byte(`{"columns": 80, "rows": 24}`)); err != nil {
		t.Fatal(err)
	}
	// Dropped, its session waits detached; or, when the container took
	// longer to start than two ping intervals (a busy machine), the
	// session ended with it, as nobody had its resume key yet.
	s.waitSessions(t, 2)
	deadline := time.Now().Add(waitTimeout)
	for {
		d, _ := s.srv.attachCounts()
		if n := s.srv.Sessions(); d == 1 && n == 2 || d == 0 && n == 1 {
			if n == 1 {
				t.Log("the silent client was dropped before its session started")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the silent client was not dropped within %v: %d sessions, %d detached", waitTimeout, s.srv.Sessions(), d)
		}
		time.Sleep(5 * time.Millisecond)
	}
	live.input("exit\r")
	live.waitClose()
}

func TestSlowClient(t *testing.T) {
	// A client that stops reading while the program prints holds the
	// program back, then is cut off: the server buffers nothing for it.
	// Its session stays, detached; when the grace runs out, it ends.
	var logs syncBuffer
	s := newTestServer(t, Config{WriteTimeout: 200 * time.Millisecond, ReconnectGrace: 300 * time.Millisecond}, withLog(&logs))
	s.openRunning(t, "yes")
	s.waitSessions(t, 1)
	s.waitSessions(t, 0)
	if terms := s.starts.terminals(); len(terms) != 1 || !terms[0].closed.Load() {
		t.Errorf("%d terminals, want 1, closed", len(terms))
	}
	if !strings.Contains(logs.String(), `"client too slow"`) {
		t.Errorf("the log does not say the client was too slow:\n%s", logs.String())
	}
	s.checkWorks(t)
}

func TestClientGone(t *testing.T) {
	s := newTestServer(t, Config{ReconnectGrace: 200 * time.Millisecond})
	c := s.open(t, "", nil)
	c.waitOutput("$ ")
	c.input("sleep 100\r")
	_ = c.conn.Close() // no close frame: the TCP connection just ends
	s.waitDetached(t, 1)
	s.waitSessions(t, 0) // the grace ran out
	if terms := s.starts.terminals(); len(terms) != 1 || !terms[0].closed.Load() {
		t.Errorf("%d terminals, want 1, closed", len(terms))
	}
}

func TestSessionLog(t *testing.T) {
	var logs syncBuffer
	s := newTestServer(t, Config{ReconnectGrace: 100 * time.Millisecond}, withLog(&logs))
	c := s.open(t, "", nil)
	c.input("exit 3\r")
	c.waitClose()
	s.waitSessions(t, 0)
	// A protocol error closes the connection with 1002; its session waits
	// for a resume, then ends when the grace runs out.
	c2 := s.open(t, "", nil)
	c2.waitOutput("$ ")
	c2.send("9")
	c2.waitClose()
	s.waitSessions(t, 0)
	if code, _, _ := s.get(t, "/healthz", "", ""); code != http.StatusOK {
		t.Fatalf("GET /healthz: %d", code)
	}

	var starts, ends, warns, requests []map[string]any
	for line := range strings.Lines(logs.String()) {
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		switch {
		case e["message"] == "session start":
			starts = append(starts, e)
		case e["message"] == "session end":
			ends = append(ends, e)
		case e["message"] == "protocol error":
			warns = append(warns, e)
		case e["message"] == "http request":
			requests = append(requests, e)
		}
	}
	if len(starts) != 2 || len(ends) != 2 || len(warns) != 1 {
		t.Fatalf("%d starts, %d ends, %d protocol errors, want 2, 2, 1; log:\n%s", len(starts), len(ends), len(warns), logs.String())
	}
	for _, e := range starts {
		if _, ok := e["spawn_ms"].(float64); !ok || e["session"] == "" || e["container"] == "" || e["client"] != "127.0.0.1" || e["env"] != "" || e["start"] != "cold" {
			t.Errorf("session start %v: want session, container, client, env, start and spawn_ms", e)
		}
	}
	if e := ends[0]; e["reason"] != "exit" || e["exit_code"] != 3.0 || e["close"] != 1000.0 || e["bytes_in"] != 7.0 || e["session"] != starts[0]["session"] {
		t.Errorf("first session end %v: want reason exit, exit_code 3, close 1000, bytes_in 7, the start's session id", e)
	}
	if e := ends[1]; e["reason"] != "reconnect grace expired" || e["session"] != starts[1]["session"] || e["container"] != starts[1]["container"] {
		t.Errorf("second session end %v: want reason reconnect grace expired, and the start's session and container", e)
	}
	if e := warns[0]; e["level"] != "warn" || e["close"] != 1002.0 || e["session"] != ends[1]["session"] || e["remote"] == nil {
		t.Errorf("protocol error %v: want level warn, close 1002, the session id and remote", e)
	}
	var sawWS, sawHealthz bool
	for _, e := range requests {
		switch e["path"] {
		case "/ws":
			sawWS = sawWS || (e["status"] == 101.0 && e["method"] == "GET" && e["duration_ms"] != nil && e["remote"] != nil)
		case "/healthz":
			sawHealthz = sawHealthz || e["status"] == 200.0
		}
	}
	if !sawWS || !sawHealthz {
		t.Errorf("request log: /ws 101 seen %v, /healthz 200 seen %v; log:\n%s", sawWS, sawHealthz, logs.String())
	}
}

// TestStreamingOutputIsGathered: when a program floods its terminal, the
// server gathers what the pty holds into frames larger than one pty read
// (4 KiB), and every byte arrives once.
func TestStreamingOutputIsGathered(t *testing.T) {
	s := newTestServer(t, Config{})
	c := s.open(t, "", nil)
	c.waitOutput("$ ")
	const n = 4 << 20
	c.input("head -c 4194304 /dev/zero | tr '\\000' '\\132'; exit\r") // Z, which the echoed line lacks
	var xs, largest int
	for {
		m := c.next()
		if m == nil || m[0] == msgExit {
			break
		}
		if m[0] == msgOutput {
			xs += bytes.Count(m[1:], []byte{'Z'})
			largest = max(largest, len(m)-1)
		}
	}
	if xs != n {
		t.Errorf("got %d Z, want %d", xs, n)
	}
	if largest <= 4096 {
		t.Errorf("largest OUTPUT frame %d bytes: output is not gathered beyond one pty read", largest)
	}
}

// TestUpgradedConnectionLeavesTheHandler: once upgraded, a connection is
// served on a goroutine of its own and net/http's handler returns, so that
// net/http lets go of what it kept for the request (its write buffer, the
// request, the handler's stack: a tenth of an idle session's memory). The
// connection still counts as a request in flight: Shutdown waits for it.
func TestUpgradedConnectionLeavesTheHandler(t *testing.T) {
	var logs syncBuffer
	s := newTestServer(t, Config{InitTimeout: time.Minute}, withLog(&logs))
	c := s.open(t, "", nil)
	c.waitOutput("$ ")
	handled := false
	for line := range strings.Lines(logs.String()) {
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		handled = handled || e["message"] == "http request" && e["path"] == "/ws" && e["status"] == 101.0
	}
	if !handled {
		t.Errorf("no http request line for /ws while its session is open: the handler has not returned; log:\n%s", logs.String())
	}

	// A connection that has not sent its init has no session, only its
	// goroutine: Shutdown ends the session above and waits for that one.
	quiet, resp, err := s.dial(nil)
	if err != nil {
		t.Fatalf("dial: %v (%s)", err, respStatus(resp))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err == nil {
		t.Error("Shutdown returned while a connection was still being served")
	}
	_ = quiet.Close()
	ctx, cancel = context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown after the connection closed: %v", err)
	}
}

// TestIdleConnectionHoldsNoWriter: a connection's writer runs only while
// there is something to write, so an idle session holds no goroutine for
// it (an idle server holds thousands of sessions); output, pings and the
// close still go out.
func TestIdleConnectionHoldsNoWriter(t *testing.T) {
	s := newTestServer(t, Config{PingInterval: 200 * time.Millisecond})
	var cs []*testClient
	for range 5 {
		c := s.open(t, "", nil)
		c.waitOutput("$ ")
		cs = append(cs, c)
	}
	writers := func() int {
		buf := make([]byte, 1<<20)
		return strings.Count(string(buf[:goruntime.Stack(buf, true)]), "server.(*wsConn).writeLoop")
	}
	deadline := time.Now().Add(waitTimeout)
	for writers() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := writers(); n > 0 {
		t.Fatalf("%d writer goroutines with 5 idle sessions, want none", n)
	}
	// Pings go on (the client answers them: the sessions live past two
	// ping intervals), and output wakes a writer.
	time.Sleep(600 * time.Millisecond)
	for i, c := range cs {
		c.input(fmt.Sprintf("echo idle-%d-$((6*7))\r", i))
		c.waitLine(fmt.Sprintf("idle-%d-42", i))
	}
	cs[0].input("exit 4\r")
	if code, _, _ := cs[0].waitClose(); code != websocket.CloseNormalClosure {
		t.Errorf("close %d after exit, want 1000", code)
	}
}

// TestShutdownCutsAStuckWrite: a session whose client stopped reading
// while its program floods ends at a shutdown within the close grace, not
// the write timeout. The pump writes its owner's frames itself, so it is
// the pump that waits in a write to such a client; before the session's
// end cut that write short, Shutdown waited the whole write timeout.
func TestShutdownCutsAStuckWrite(t *testing.T) {
	s := newTestServer(t, Config{WriteTimeout: time.Minute})
	s.openRunning(t, "yes")
	s.waitSessions(t, 1)
	ss := s.only(t)
	// Stuck: the socket's buffers are full, and no more output goes out.
	deadline := time.Now().Add(waitTimeout)
	for last := int64(-1); ; {
		time.Sleep(200 * time.Millisecond)
		n := ss.bytesOut.Load()
		if n > 0 && n == last {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("output still flowing to a client that does not read: %d bytes", n)
		}
		last = n
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := s.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v after %v (write timeout %v, close grace %v)", err, time.Since(start), s.srv.cfg.WriteTimeout, s.srv.cfg.CloseGrace)
	}
	if terms := s.starts.terminals(); !terms[0].closed.Load() {
		t.Error("terminal not closed")
	}
}
