package server

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/guntainer/playground/server/vt"
)

// TestResume: the connection drops while the shell runs; an init with the
// resume key gets the session back: the same shell (a variable set before
// is still set) and the screen as it was (the last prompt on it).
func TestResume(t *testing.T) {
	s := newTestServer(t, Config{})
	c1 := s.open(t, "", nil)
	key := c1.session().Resume
	c1.input("X=resumed-ok\r")
	c1.input("echo marker-$((6*7))\r")
	c1.waitOutput("marker-42\r\n$ ")
	_ = c1.conn.Close() // the network drops: no close frame
	s.waitDetached(t, 1)

	c2 := s.open(t, initWith("resume", key), nil)
	if si := c2.session(); si.Resume != key || si.ID != c1.session().ID {
		t.Errorf("SESSION after resume %+v, want the same id and key", si)
	}
	scr := c2.screen(80, 24, "the screen with marker-42 and the prompt", func(s *vt.Screen) bool {
		return screenHas(s, "marker-42") && lastRow(s) == "$"
	})
	if x, y := scr.Cursor(); x != 2 || scr.Lines()[y] != "$" {
		t.Errorf("cursor at %d,%d after resume, want it after the last prompt; screen:\n%s", x, y, strings.Join(scr.Lines(), "\n"))
	}
	c2.input("echo $X\r")
	c2.waitLine("resumed-ok")
	if d, _ := s.srv.attachCounts(); d != 0 {
		t.Errorf("%d sessions detached after the resume", d)
	}
}

// TestResumeSendsNoQuery: a program printed ESC[c (a terminal query)
// before the drop. The screen sent at resume must not carry it: a browser
// would answer it, and its answer would be typed into the program
// (coder/coder #3666). The second client answers queries as xterm.js
// does; the program must read nothing.
func TestResumeSendsNoQuery(t *testing.T) {
	s := newTestServer(t, Config{})
	c1 := s.open(t, "", nil)
	key := c1.session().Resume
	c1.waitOutput("$ ")
	c1.input("stty -echo; printf 'Q\\033[cQ\\n'; cat -v > /tmp/got; stty echo; wc -c < /tmp/got\r")
	c1.waitOutput("Q\x1b[cQ") // the query reached the first client, which did not answer
	_ = c1.conn.Close()
	s.waitDetached(t, 1)

	c2 := s.open(t, initWith("resume", key), nil)
	var seen []byte
	deadline := time.After(waitTimeout)
	for !bytes.Contains(seen, []byte("QQ")) {
		select {
		case m, ok := <-c2.msgs:
			if !ok {
				t.Fatalf("connection ended (%v)", c2.err)
			}
			if m[0] != msgOutput {
				continue
			}
			seen = append(seen, m[1:]...)
			if bytes.Contains(m[1:], []byte("\x1b[c")) {
				c2.input("\x1b[?1;2c") // what xterm.js answers
			}
		case <-deadline:
			t.Fatalf("no screen with QQ within %v; got %q", waitTimeout, tail(seen))
		}
	}
	if q := bytes.Index(seen, []byte("\x1b[c")); q >= 0 {
		t.Errorf("the screen sent at resume carries the query: %q", seen)
	}
	c2.input("\x04") // end cat: the program has read what it got
	c2.waitLine("0")
}

func TestResumeAfterGrace(t *testing.T) {
	var logs syncBuffer
	s := newTestServer(t, Config{ReconnectGrace: 100 * time.Millisecond}, withLog(&logs))
	c1 := s.open(t, "", nil)
	key := c1.session().Resume
	c1.waitOutput("$ ")
	_ = c1.conn.Close()
	s.waitSessions(t, 0)
	if terms := s.starts.terminals(); len(terms) != 1 || !terms[0].closed.Load() {
		t.Errorf("the expired session's terminal was not closed")
	}
	c2 := s.open(t, initWith("resume", key), nil)
	if code, text, _ := c2.waitClose(); code != closeUnknownKey {
		t.Errorf("resume after the grace: close %d %q, want %d", code, text, closeUnknownKey)
	}
	if !strings.Contains(logs.String(), "resume refused: expired key") {
		t.Errorf("the log does not say the key expired")
	}
}

// TestTakeover: a second attach with the resume key takes the session
// over; the first connection is closed with 4409.
func TestTakeover(t *testing.T) {
	s := newTestServer(t, Config{})
	c1 := s.open(t, "", nil)
	key := c1.session().Resume
	c1.waitOutput("$ ")
	c2 := s.open(t, initWith("resume", key), nil)
	if code, text, _ := c1.waitClose(); code != closeTakenOver {
		t.Errorf("first connection: close %d %q, want %d", code, text, closeTakenOver)
	}
	c2.input("echo $((6*7))\r")
	c2.waitLine("42")
	// And back: the third takes it from the second.
	c3 := s.open(t, initWith("resume", key), nil)
	if code, _, _ := c2.waitClose(); code != closeTakenOver {
		t.Errorf("second connection: close %d, want %d", code, closeTakenOver)
	}
	c3.input("echo $((7*8))\r")
	c3.waitLine("56")
	if n := s.starts.calls.Load(); n != 1 {
		t.Errorf("%d terminals started, want 1", n)
	}
}

// TestResumeBadKeys: each bad key gets its close code and a log line, and
// nothing else is touched: the session lives on, and its real key works.
func TestResumeBadKeys(t *testing.T) {
	var logs syncBuffer
	s := newTestServer(t, Config{}, withLog(&logs))
	owner := s.open(t, "", nil)
	si := owner.session()
	owner.input("Y=still-here\r")
	owner.waitOutput("$ ")
	// An ended session's key, for "expired".
	gone := s.open(t, "", nil)
	goneKey := gone.session().Resume
	gone.input("exit\r")
	gone.waitClose()
	s.waitSessions(t, 1)

	tests := []struct {
		name, field, key string
		wantCode         int
		wantLog          string
	}{
		{"wrong secret", "resume", si.ID + ".AAAAAAAAAAAAAAAAAAAAAAAAAA", closeUnknownKey, "resume refused: wrong key"},
		{"unknown id", "resume", "NOSUCHSESSION000.AAAAAAAAAAAAAAAAAAAAAAAAAA", closeUnknownKey, "resume refused: unknown key"},
		{"no id", "resume", "garbage", closeUnknownKey, "resume refused: malformed key"},
		{"expired", "resume", goneKey, closeUnknownKey, "resume refused: expired key"},
		{"watch key as resume key", "resume", si.Watch, websocket.ClosePolicyViolation, "a watch key used as a resume key"},
		{"wrong watch key", "watch", si.ID + ".AAAAAAAAAAAAAAAAAAAAAAAAAA", closeUnknownKey, "watch refused: wrong key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := s.open(t, initWith(tt.field, tt.key), nil)
			if code, text, _ := c.waitClose(); code != tt.wantCode {
				t.Errorf("close %d %q, want %d", code, text, tt.wantCode)
			}
			if !strings.Contains(logs.String(), tt.wantLog) {
				t.Errorf("the log lacks %q", tt.wantLog)
			}
			// The owner is still attached and typing works.
			owner.input("echo $Y\r")
			owner.waitLine("still-here")
		})
	}
	if n := s.starts.calls.Load(); n != 2 {
		t.Errorf("%d terminals started, want 2", n)
	}
}

// TestResumeResizes: the resumed client's size is the terminal's.
func TestResumeResizes(t *testing.T) {
	s := newTestServer(t, Config{})
	c1 := s.open(t, "", nil)
	key := c1.session().Resume
	c1.waitOutput("$ ")
	_ = c1.conn.Close()
	s.waitDetached(t, 1)
	c2 := s.open(t, `{"columns": 120, "rows": 40, "resume": "`+key+`"}`, nil)
	c2.input("stty size\r")
	c2.waitLine("40 120")
}

// TestResumeFullScreen: a full-screen program (alternate screen, cursor
// keys mode) is shown as it was, in its modes, not as a replay.
func TestResumeFullScreen(t *testing.T) {
	s := newTestServer(t, Config{})
	c1 := s.open(t, "", nil)
	key := c1.session().Resume
	c1.waitOutput("$ ")
	c1.input("printf '\\033[?1049h\\033[?1h\\033[2J\\033[5;7HFULL-SCREEN\\033[10;1H'; cat > /dev/null\r")
	c1.waitOutput("FULL-SCREEN")
	_ = c1.conn.Close()
	s.waitDetached(t, 1)
	c2 := s.open(t, initWith("resume", key), nil)
	scr := c2.screen(80, 24, "the full-screen program", func(s *vt.Screen) bool {
		return s.AltScreen() && s.Lines()[4] == "      FULL-SCREEN"
	})
	if x, y := scr.Cursor(); x != 0 || y != 9 {
		t.Errorf("cursor %d,%d, want 0,9", x, y)
	}
	c2.input("\x04")
	c2.input("printf '\\033[?1049l'; echo back-$((6*7))\r")
	c2.waitOutput("back-42\r\n")
}

// TestOutputWhileDetached: what the program prints while nobody is
// attached is on the screen at resume.
func TestOutputWhileDetached(t *testing.T) {
	s := newTestServer(t, Config{})
	c1 := s.open(t, "", nil)
	key := c1.session().Resume
	c1.waitOutput("$ ")
	c1.input("read x; echo printed-while-away-$x\r")
	c1.waitOutput("read x")
	ss := s.only(t)
	_ = c1.conn.Close()
	s.waitDetached(t, 1)
	// Typing cannot reach a detached session; the program goes on by
	// itself: have it print through a second, resumed-then-dropped
	// connection's keystroke.
	c2 := s.open(t, initWith("resume", key), nil)
	c2.session()
	before := ss.bytesOut.Load()
	c2.input("42\r")
	_ = c2.conn.Close()
	s.waitDetached(t, 1)
	deadline := time.Now().Add(waitTimeout)
	for ss.bytesOut.Load() < before+int64(len("42\r\nprinted-while-away-42\r\n$ ")) {
		if time.Now().After(deadline) {
			t.Fatalf("the program printed %d bytes after the keystroke", ss.bytesOut.Load()-before)
		}
		time.Sleep(10 * time.Millisecond)
	}
	c3 := s.open(t, initWith("resume", key), nil)
	c3.screen(80, 24, "the output printed while detached", func(s *vt.Screen) bool {
		return screenHas(s, "printed-while-away-42")
	})
}
