package server

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestWatch: any number of watchers follow a session read-only: they see
// its screen and output; their input, resizes and flow control are
// ignored.
func TestWatch(t *testing.T) {
	s := newTestServer(t, Config{})
	owner := s.open(t, "", nil)
	si := owner.session()
	owner.input("echo before-$((6*7))\r")
	owner.waitOutput("before-42\r\n")

	w1 := s.open(t, initWith("watch", si.Watch), nil)
	w2 := s.open(t, `{"columns": 100, "rows": 40, "watch": "`+si.Watch+`"}`, nil)
	for _, w := range []*testClient{w1, w2} {
		ws := w.session()
		if ws.ID != si.ID || ws.Resume != "" || ws.Watch != "" || ws.Columns != 80 || ws.Rows != 24 {
			t.Errorf("watcher's SESSION %+v: want the id and the terminal's size, no keys", ws)
		}
		// The screen as it is, then live output.
		w.waitOutput("before-42")
	}
	w1.input("echo typed-by-a-watcher\r")
	w1.send(`1{"columns": 50, "rows": 10}`)
	w1.send("2") // PAUSE from a watcher: no effect
	owner.input("echo after-$((6*7)); stty size\r")
	for _, c := range []*testClient{owner, w1, w2} {
		out := c.waitOutput("24 80\r\n")
		if !strings.Contains(out, "after-42") {
			t.Errorf("output %q lacks after-42", out)
		}
		if strings.Contains(out, "typed-by-a-watcher") {
			t.Errorf("a watcher's input reached the terminal: %q", out)
		}
	}
	if n := s.starts.calls.Load(); n != 1 {
		t.Errorf("%d terminals started, want 1", n)
	}
	// When the program ends, watchers get EXIT and 1000 too.
	owner.input("exit 4\r")
	for _, c := range []*testClient{owner, w1, w2} {
		code, _, frames := c.waitClose()
		if code != websocket.CloseNormalClosure || len(frames) == 0 || string(frames[len(frames)-1]) != `8{"code":4}` {
			t.Errorf("close %d, last frame %q; want EXIT code 4 and 1000", code, frames[len(frames)-1:])
		}
	}
}

// TestWatchDetached: a watcher follows a session whose owner is gone, and
// sees what the owner does after a resume.
func TestWatchDetached(t *testing.T) {
	s := newTestServer(t, Config{})
	owner := s.open(t, "", nil)
	si := owner.session()
	owner.waitOutput("$ ")
	_ = owner.conn.Close()
	s.waitDetached(t, 1)
	w := s.open(t, initWith("watch", si.Watch), nil)
	w.session()
	back := s.open(t, initWith("resume", si.Resume), nil)
	back.input("echo back-$((6*7))\r")
	w.waitOutput("back-42")
}

// TestWatcherTooSlow: a watcher that does not read is dropped; the owner
// and the program go on at the owner's pace, and nothing piles up for the
// watcher.
func TestWatcherTooSlow(t *testing.T) {
	s := newTestServer(t, Config{})
	owner := s.open(t, "", nil)
	si := owner.session()
	owner.waitOutput("$ ")
	// A watcher with a small receive buffer, so that the kernel does not
	// hold megabytes for it.
	d := s.dialer()
	d.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			_ = c.(*net.TCPConn).SetReadBuffer(8 << 10)
		}
		return c, err
	}
	conn, resp, err := d.Dial(s.wsURL, nil)
	if err != nil {
		t.Fatalf("dial: %v (%s)", err, respStatus(resp))
	}
	t.Cleanup(func() { _ = conn.Close() })
	if err := conn.WriteMessage(websocket.BinaryMessage, []byte(initWith("watch", si.Watch))); err != nil {
		t.Fatal(err)
	}
	ss := s.only(t)
	deadline := time.Now().Add(waitTimeout)
	for _, w := s.srv.attachCounts(); w != 1; _, w = s.srv.attachCounts() {
		if time.Now().After(deadline) {
			t.Fatal("the watcher never attached")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The owner reads 16 MiB of output; the watcher reads nothing.
	owner.input("head -c 16777216 /dev/zero | tr '\\000' '\\132'; echo; echo done-$((6*7))\r")
	var zs int
	var last []byte
	for !bytes.Contains(last, []byte("done-42")) {
		m := owner.next()
		if m == nil {
			t.Fatalf("owner's connection ended: %v", owner.err)
		}
		if m[0] == msgOutput {
			zs += bytes.Count(m[1:], []byte{'Z'})
			last = append(last[max(len(last)-64, 0):], m[1:]...)
		}
	}
	if zs != 16<<20 {
		t.Errorf("the owner got %d bytes of output, want %d", zs, 16<<20)
	}
	if _, w := s.srv.attachCounts(); w != 0 {
		t.Errorf("%d watchers still attached after 16 MiB unread", w)
	}
	if ss.bytesOut.Load() < 16<<20 {
		t.Errorf("the program wrote %d bytes", ss.bytesOut.Load())
	}
}

// TestOwnerPauseGovernsWatchers: while the owner is paused, nobody gets
// output; at RESUME everyone does.
func TestOwnerPauseGovernsWatchers(t *testing.T) {
	s := newTestServer(t, Config{})
	owner := s.open(t, "", nil)
	si := owner.session()
	owner.waitOutput("$ ")
	w := s.open(t, initWith("watch", si.Watch), nil)
	w.waitOutput("$")
	owner.send("2")
	// The output comes a while after the typed line's echo: by then the
	// pump waits at the gate, not in a read.
	owner.input("sleep 0.2; echo paused-$((6*7))\r")
	// Nothing of the command's output while paused: the pump does not
	// read the terminal. (One read already waiting when PAUSE came, the
	// terminal's echo of the typed line, may pass.)
	quiet := time.After(800 * time.Millisecond)
	for waiting := true; waiting; {
		select {
		case m := <-w.msgs:
			if m[0] == msgOutput && bytes.Contains(m, []byte("paused-42")) {
				t.Fatalf("a watcher got output while the owner was paused: %q", m)
			}
		case <-quiet:
			waiting = false
		}
	}
	owner.send("3")
	w.waitOutput("paused-42")
	owner.waitOutput("paused-42")
}
