package server

// The defects of issue 8 (and the DNS rebinding item of issue 6), each
// done as the user or attacker did it, against a real server.

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestFrozenPaste: a paused client pastes into a program that does not
// read its input (PAUSE, `yes`, 16 frames of 16 KiB, RESUME). Output must
// come back at RESUME, a RESIZE must reach the terminal at once, and a
// Ctrl-C must stop the program. Pasted lines fill the line discipline's
// buffer, after which no write to the pty gets through, a ^C included:
// there the input writer waits alone, input beyond its queue (1 MiB; the
// "overflow" cases paste 80 frames) is refused with a NOTICE, and a
// terminal that can signal its foreground job (a container can:
// runtime.Container.SignalForeground) gets the ^C as SIGINT.
func TestFrozenPaste(t *testing.T) {
	lines := pasteLines
	flat := strings.Repeat("x", 16<<10) // the line discipline drops what does not fit
	tests := []struct {
		name      string
		start     func(testing.TB) StartFunc
		paste     string
		frames    int
		interrupt bool // Ctrl-C can stop yes
		refused   bool // the queue overflows
	}{
		{"container, paste without newlines", testStart, flat, 16, true, false},
		{"container, paste of lines", testStart, lines, 16, true, false},
		{"container, paste of lines, overflow", testStart, lines, 80, true, true},
		{"pty that signals, paste of lines", signalingStart, lines, 16, true, false},
		{"pty that signals, paste of lines, overflow", signalingStart, lines, 80, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, Config{}, withStart(tt.start(t)))
			c := s.open(t, "", nil)
			c.waitOutput("$ ")
			c.send("2") // PAUSE
			c.input("yes\r")
			for range tt.frames {
				c.input(tt.paste)
			}
			c.send(`1{"columns": 100, "rows": 30}`)
			c.send("3") // RESUME
			c.waitOutput("y\r\ny\r\ny\r\n")
			s.starts.terminals()[0].waitResized(t, "100x30")
			if tt.refused {
				c.waitNotice("input dropped")
			}
			if !tt.interrupt {
				return
			}
			if tt.frames > 16 || !strings.Contains(tt.name, "without") {
				waitInputBlocked(t, s.only(t))
			}
			c.input("\x03")
			c.input("stty size\r")
			c.waitLine("30 100")
		})
	}
}

// atAPrompt runs f twice, on a container's terminal and on a plain pty
// that signals, each time with a server of its own and a client at the
// shell's first prompt.
func atAPrompt(t *testing.T, f func(t *testing.T, s *testServer, c *testClient)) {
	for _, tt := range []struct {
		name  string
		start func(testing.TB) StartFunc
	}{{"container", testStart}, {"pty that signals", signalingStart}} {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, Config{}, withStart(tt.start(t)))
			c := s.open(t, "", nil)
			c.waitOutput("$ ")
			f(t, s, c)
		})
	}
}

// pasteLines is 16 KiB of 100-byte lines: a canonical terminal takes
// them until its buffer is full (one long line it would cut short).
var pasteLines = strings.Repeat(strings.Repeat("x", 99)+"\n", 16<<10/100)

// pasteUntilStuck sends frame 16 times, far more than a pty holds, to a
// program that reads none of it, and waits until the input writer is
// stuck on it.
func pasteUntilStuck(t *testing.T, s *testServer, c *testClient, frame string) {
	t.Helper()
	for range 16 {
		c.input(frame)
	}
	waitInputBlocked(t, s.only(t))
}

// TestInterruptRightAfterAPaste: a paste into a program that does not read
// its input, and at once a Ctrl-C. The paste fills the terminal while the
// ^C is on its way, so the ^C finds the input writer only just begun on a
// write that never ends; it used to be queued behind that write for good,
// and the program ran on (as in CI, once, in TestFrozenPaste). Once the
// writer is stuck, it goes around it as a signal.
func TestInterruptRightAfterAPaste(t *testing.T) {
	atAPrompt(t, func(t *testing.T, s *testServer, c *testClient) {
		c.input("yes\r")
		c.waitOutput("y\r\ny\r\ny\r\n")
		for range 16 {
			c.input(pasteLines)
		}
		c.input("\x03")
		c.input("stty size\r")
		c.waitLine("24 80")
	})
}

// TestInterruptDropsThePaste: a long script pasted into a program that
// does not read its input (here sleep), then Ctrl-C. A typed ^C makes the
// line discipline drop the input the program had not read; the ^C that
// went as a signal left it, and the shell then ran what was left of the
// paste, up to the pty's 68 KiB of it, as commands. Nothing of the paste
// may run: the next command's answer comes with no line of the paste's.
func TestInterruptDropsThePaste(t *testing.T) {
	const line = "echo $((6*7))x\n" // its echo as typed shows the text; run, it prints 42x
	paste := strings.Repeat(line, 16<<10/len(line))
	atAPrompt(t, func(t *testing.T, s *testServer, c *testClient) {
		// The job says when it runs, and so is the foreground job.
		c.input("sh -c 'echo job $((6*7)); exec sleep 1000'\r")
		c.waitLine("job 42")
		pasteUntilStuck(t, s, c, paste)
		// One frame, as a client that sends keys in batches does: what
		// comes after the ^C is input, after what the ^C dropped.
		c.input("\x03echo done$((1+1))\r")
		out := c.waitLine("done2")
		if n := strings.Count(out, "\n42x\r"); n > 0 || hasLine([]byte(out), "42x") {
			t.Errorf("after the ^C, %d lines of the paste ran as commands", max(n, 1))
		}
	})
}

// TestQuitAndSuspendReachAStuckJob: ^\ and ^Z typed at a job that reads
// nothing, behind a paste, waited behind it for good, where a terminal
// of one's own sends SIGQUIT or SIGTSTP at once (only ^C went around the
// paste): a program that ignores ^C could not be quit.
func TestQuitAndSuspendReachAStuckJob(t *testing.T) {
	for _, key := range []struct{ name, b string }{{"quit", "\x1c"}, {"suspend", "\x1a"}} {
		t.Run(key.name, func(t *testing.T) {
			atAPrompt(t, func(t *testing.T, s *testServer, c *testClient) {
				c.input("sh -c 'trap \"\" INT; echo job $((6*7)); exec sleep 1000'\r")
				c.waitLine("job 42")
				pasteUntilStuck(t, s, c, pasteLines)
				c.input(key.b)
				c.input("echo done$((1+1))\r")
				c.waitLine("done2")
			})
		})
	}
}

// TestARemappedInterruptKey: after stty intr ^X, ^X interrupts a job
// stuck behind a paste, as the line discipline would have it; the server
// went around the paste for ^C alone, which is then a plain byte.
func TestARemappedInterruptKey(t *testing.T) {
	atAPrompt(t, func(t *testing.T, s *testServer, c *testClient) {
		c.input("stty intr ^X; echo keys $((6*7))\r")
		c.waitLine("keys 42")
		c.input("sh -c 'echo job $((6*7)); exec sleep 1000'\r")
		c.waitLine("job 42")
		pasteUntilStuck(t, s, c, pasteLines)
		c.input("\x18echo done$((1+1))\r")
		c.waitLine("done2")
	})
}

// TestCtrlCIsInputToARawProgram: a program that reads its keys raw (ISIG
// off: an editor, a terminal multiplexer) gets ^C as a byte, as from a
// terminal of its own, also when it has not read its input for a while:
// the server used to send it SIGINT then, which ended it, and to drop the
// input queued before the ^C, which it never saw.
func TestCtrlCIsInputToARawProgram(t *testing.T) {
	atAPrompt(t, func(t *testing.T, s *testServer, c *testClient) {
		// Raw keys; it reads nothing for a while (the paste fills the
		// pty), then shows every byte it reads with its offset: od
		// folds the lines of x into one and a *, and shows the ^C as
		// 003 in the line after, at the offset that says no x was lost.
		c.input("sh -c 'stty raw -echo; echo job $((6*7)); sleep 5; exec od -Ad -c'\r")
		c.waitOutput("job 42\n")                              // raw: no \r
		pasteUntilStuck(t, s, c, strings.Repeat("x", 16<<10)) // raw: no line to cut short
		c.input("a\x03bcdefghijklmno")                        // a line of od's
		out := c.waitOutput("003")
		if want := "0262144   a 003   b   c"; !strings.Contains(out, want) {
			t.Errorf("the program read %q; want the 262144 x of the paste, then a, ^C and b (%q)", tail([]byte(out)), want)
		}
	})
}

// TestDNSRebinding: a page on the attacker's name, rebound to the
// server's address, sends that name as Host and Origin. It must get
// nothing: no session, no token, no API.
func TestDNSRebinding(t *testing.T) {
	s := newTestServer(t, Config{AdminToken: "admin-secret"})
	port := s.ts.URL[strings.LastIndexByte(s.ts.URL, ':'):]
	evil := "rebind.evil.example" + port
	conn, resp, err := dialWithHost(s.dialer(), s.wsURL, evil, http.Header{"Origin": {"http://" + evil}})
	if conn != nil {
		_ = conn.Close()
	}
	if resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("rebound handshake: %v (%s), want 403", err, respStatus(resp))
	}
	for _, path := range []string{"/", "/token", "/api/sessions", "/api/envs"} {
		req, _ := http.NewRequest("GET", s.ts.URL+path, nil)
		req.Host = evil
		req.Header.Set("Authorization", "Bearer admin-secret")
		resp, err := s.ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("GET %s with Host %s: %d, want 403", path, evil, resp.StatusCode)
		}
	}
	if n := s.starts.calls.Load(); n != 0 {
		t.Errorf("%d terminals started", n)
	}
	// Probes answer any Host: a load balancer asks by a name of its own.
	req, _ := http.NewRequest("GET", s.ts.URL+"/healthz", nil)
	req.Host = "playground.default.svc"
	if resp, err := s.ts.Client().Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz with a service name as Host: %v %s", err, respStatus(resp))
	} else {
		_ = resp.Body.Close()
	}
}

func TestHostCheck(t *testing.T) {
	tests := []struct {
		name    string
		allowed []string
		host    string
		want    int
	}{
		{"listener address", nil, "127.0.0.1", http.StatusSwitchingProtocols},
		{"localhost", nil, "localhost", http.StatusSwitchingProtocols},
		{"localhost, case and dot", nil, "LocalHost.", http.StatusSwitchingProtocols},
		{"ipv6 loopback on a loopback listener", nil, "[::1]", http.StatusSwitchingProtocols},
		{"other address", nil, "10.1.2.3", http.StatusForbidden},
		{"foreign name", nil, "evil.example", http.StatusForbidden},
		{"a name under localhost", nil, "evil.localhost.example", http.StatusForbidden},
		{"configured name", []string{"Play.Example"}, "play.example", http.StatusSwitchingProtocols},
		{"configured name, other", []string{"play.example"}, "evil.example", http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, Config{AllowedHosts: tt.allowed}, withStart(plainStart(t)))
			port := s.ts.URL[strings.LastIndexByte(s.ts.URL, ':'):]
			host := tt.host + port
			conn, resp, err := dialWithHost(s.dialer(), s.wsURL, host, http.Header{"Origin": {"http://" + host}})
			if resp == nil || resp.StatusCode != tt.want {
				t.Fatalf("Host %s: %v (%s), want %d", host, err, respStatus(resp), tt.want)
			}
			if conn != nil {
				c := newTestClient(t, conn)
				c.send(`{"columns": 80, "rows": 24}`)
				c.input("echo $((6*7))\r")
				c.waitLine("42")
			}
		})
	}
}

func TestStartErrorNotShown(t *testing.T) {
	var logs syncBuffer
	detail := "mount overlay on /var/lib/secret/c-1: permission denied (sysctl kernel.x=1)"
	s := newTestServer(t, Config{}, withLog(&logs), withStart(func(context.Context, StartRequest) (Terminal, error) {
		return nil, errors.New(detail)
	}))
	c := s.open(t, "", nil)
	code, text, _ := c.waitClose()
	if code != websocket.CloseInternalServerErr || strings.Contains(text, "/var/lib") || strings.Contains(text, "sysctl") {
		t.Errorf("close %d %q: want 1011 without the detail", code, text)
	}
	s.waitSessions(t, 0)
	if !strings.Contains(logs.String(), detail) {
		t.Errorf("log lacks the detail %q", detail)
	}
}

// TestStartTimeoutStopsStart: with a real container start and a start
// timeout shorter than it, the client gets 1011 at once, the slot is free
// at once, and the container, when it comes up, is torn down.
func TestStartTimeoutStopsStart(t *testing.T) {
	real, state := testStartState(t)
	release := make(chan struct{})
	s := newTestServer(t, Config{StartTimeout: 50 * time.Millisecond, MaxSessions: 1}, withStart(func(_ context.Context, req StartRequest) (Terminal, error) {
		// A start that ignores ctx (a runtime.Start queued behind others):
		// the server must not wait for it.
		<-release
		return real(context.Background(), req)
	}))
	c := s.open(t, "", nil)
	if code, text, _ := c.waitClose(); code != websocket.CloseInternalServerErr {
		t.Errorf("close %d %q, want 1011", code, text)
	}
	s.waitSessions(t, 0) // the slot is free while the start still runs
	// So a second session is not turned away at capacity (1013): it
	// starts, and times out too.
	c2 := s.open(t, "", nil)
	if code, text, _ := c2.waitClose(); code != websocket.CloseInternalServerErr {
		t.Errorf("second session: close %d %q, want 1011, not 1013", code, text)
	}
	close(release)
	// The containers the starts then make are closed: no process and no
	// mount point of them stays.
	deadline := time.Now().Add(waitTimeout)
	for {
		terms := s.starts.terminals()
		if len(terms) == 2 && terms[0].closed.Load() && terms[1].closed.Load() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d terminals arrived after the timeouts, want 2, both closed", len(terms))
		}
		time.Sleep(10 * time.Millisecond)
	}
	waitNoChildren(t)
	es, _ := os.ReadDir(state)
	for _, e := range es {
		if strings.HasPrefix(e.Name(), "c-") { // a container's mount point
			t.Errorf("state dir holds %s after the abandoned start", e.Name())
		}
	}
}

// TestContainerStartHonoursCtx: ContainerStart itself gives up when ctx
// is done, and closes the container it was making.
func TestContainerStartHonoursCtx(t *testing.T) {
	start := testStart(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if term, err := start(ctx, StartRequest{Cols: 80, Rows: 24}); err == nil {
		_ = term.Close()
		t.Fatal("ContainerStart with a canceled ctx started a container")
	}
	ctx, cancel = context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	begin := time.Now()
	term, err := start(ctx, StartRequest{Cols: 80, Rows: 24})
	if err == nil {
		// The machine started one in under a millisecond: fine, but close it.
		_ = term.Close()
		_, _ = term.Wait()
	} else if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v, want the deadline", err)
	}
	t.Logf("returned after %v", time.Since(begin))
	waitNoChildren(t)
}

// TestSlowReaderIsNotClientGone: a client that reads slowly while the
// program floods is held back, not cut off as gone when the ping waits
// behind its data; when it stops reading for good, it is cut off as too
// slow, never as gone.
func TestSlowReaderIsNotClientGone(t *testing.T) {
	var logs syncBuffer
	s := newTestServer(t, Config{PingInterval: 400 * time.Millisecond, WriteTimeout: 2 * time.Second}, withLog(&logs))
	conn := s.openRunning(t, "yes")
	// Read a frame every 30 ms for a while: far slower than yes prints,
	// with pings every 400 ms behind the data.
	_ = conn.SetReadDeadline(time.Now().Add(waitTimeout))
	for range 20 {
		if _, _, err := conn.ReadMessage(); err != nil {
			t.Fatalf("the slow reader was cut off: %v\n%s", err, logs.String())
		}
		time.Sleep(30 * time.Millisecond) // the client's slowness, not a wait for the server
	}
	s.waitDetached(t, 1) // now it stops reading
	if strings.Contains(logs.String(), `"client gone`) || !strings.Contains(logs.String(), `"client too slow"`) {
		t.Errorf("log: want client too slow, never client gone:\n%s", logs.String())
	}
}
