package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"

	"github.com/guntainer/playground/static"
)

// scriptedConn is one /ws connection of the scripted server: its init frame, and the
// socket for the test to answer on.
type scriptedConn struct {
	init  map[string]any
	route string // the request's ?route=
	ws    *websocket.Conn
}

func (c *scriptedConn) send(t *testing.T, cmd byte, payload string) {
	t.Helper()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, append([]byte{cmd}, payload...)); err != nil {
		t.Fatalf("send %c: %v", cmd, err)
	}
}

func (c *scriptedConn) close(t *testing.T, code int, text string) {
	t.Helper()
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(time.Second))
	_ = c.ws.Close()
}

// TestBrowserSessionLife drives the page's session logic (resume keys and routes,
// NOTICE, EXIT, the close codes 1013, 4404, 4409 of docs/PROTOCOL.md, and a route whose
// server is gone) against a scripted server: the real page and static handler, and a
// /ws that answers as the protocol says a server does, in orders and cases that a real
// server gives only by chance (a proxy in front of a dead server, for one).
// TestBrowser and TestBrowserDrain cover the same against the real server.
func TestBrowserSessionLife(t *testing.T) {
	exe := chromium(t)
	conns := make(chan *scriptedConn, 10)
	var deadRoute atomic.Value // a route whose server is gone: a proxy's 502
	deadRoute.Store("")
	var deadTries atomic.Int32
	up := websocket.Upgrader{Subprotocols: []string{"tty"}}
	mux := http.NewServeMux()
	mux.Handle("GET /", static.Handler())
	mux.HandleFunc("GET /token", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{"token":""}`)) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ready\n")) })
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		route := r.URL.Query().Get("route")
		if dead := deadRoute.Load().(string); dead != "" && route == dead {
			deadTries.Add(1)
			http.Error(w, "bad gateway", http.StatusBadGateway)
			return
		}
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		_, first, err := ws.ReadMessage()
		if err != nil {
			return
		}
		var init map[string]any
		if err := json.Unmarshal(first, &init); err != nil {
			t.Errorf("init %q: %v", first, err)
			return
		}
		conns <- &scriptedConn{init: init, route: route, ws: ws}
		for { // the page's frames are not needed; read until it goes
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	b := newBrowser(t, exe)
	tab := b.open(t, srv.URL+"/")

	nextWithin := func(d time.Duration, wantResume, wantRoute string) *scriptedConn {
		t.Helper()
		select {
		case c := <-conns:
			got, _ := c.init["resume"].(string)
			if got != wantResume || c.route != wantRoute {
				t.Fatalf("init %v, route %q: want resume %q, route %q", c.init, c.route, wantResume, wantRoute)
			}
			return c
		case <-time.After(d):
			t.Fatalf("the page did not connect; state %s", tab.state())
			return nil
		}
	}
	next := func(wantResume string) *scriptedConn {
		t.Helper()
		return nextWithin(20*time.Second, wantResume, "")
	}
	status := func() string { return tab.run(chromedp.Text(chromedp.ID(`status-text`))) }
	waitStatus := func(want string) {
		t.Helper()
		tab.do(voidOf(chromedp.Poll[bool](`document.getElementById('status-text').textContent.includes(` + jsString(want) + `)`)))
	}

	// A session with a resume key and a notice, shown outside the grid.
	c := next("")
	c.send(t, '7', `{"id":"s1","resume":"key-1"}`)
	c.send(t, '0', "one$ ")
	c.send(t, '9', `{"level":"warn","text":"idle: this session ends in 60 s"}`)
	tab.do(voidOf(chromedp.Poll[bool](`document.getElementById('notice').textContent === 'idle: this session ends in 60 s'`)))
	if tab.text() != "one$" {
		t.Errorf("terminal %q: the notice must not be in the grid", tab.text())
	}

	// At capacity: the page says so and comes back later, with its key.
	c.close(t, 1013, "server at capacity, try again later")
	waitStatus("reconnecting in")
	c = next("key-1")

	// The key is unknown now: a new session, at once, and the page says so.
	c.close(t, 4404, "unknown or expired key")
	c = next("")
	c.send(t, '7', `{"id":"s2","resume":"key-2"}`)
	c.send(t, '0', "two$ ")
	tab.waitText("two$")
	if n := eval[string](tab, `document.getElementById('notice').textContent`); !strings.Contains(n, "new one") {
		t.Errorf("notice after 4404: %q, want it to say this is a new session", n)
	}
	if strings.Contains(tab.text(), "one$") {
		t.Errorf("the new session's terminal still shows the old one's output: %q", tab.text())
	}

	// A refresh reattaches with the tab's key.
	tab.do(chromedp.Reload())
	c = next("key-2")
	c.send(t, '7', `{"id":"s2","resume":"key-2"}`)
	c.send(t, '0', "two$ again$ ")
	tab.waitText("again$")

	// Taken over elsewhere: say so, and do not fight back.
	c.close(t, 4409, "taken over by a newer connection")
	waitStatus("another tab")
	select {
	case c := <-conns:
		t.Fatalf("the page reconnected after 4409: init %v", c.init)
	case <-time.After(3 * time.Second):
	}
	// Until the person asks for it.
	tab.do(chromedp.WaitVisible(chromedp.ID(`retry`)), chromedp.Click(chromedp.ID(`retry`)))
	c = next("key-2")

	// A session on a server with a route id: the tab keeps the route with the key, and
	// a reconnect names it.
	c.send(t, '7', `{"id":"s2","resume":"key-2","route":"pg-a"}`)
	c.send(t, '0', "routed$ ")
	tab.waitText("routed$")
	if r := eval[string](tab, `sessionStorage.getItem('playground.route') ?? ''`); r != "pg-a" {
		t.Errorf("route in sessionStorage: %q, want pg-a", r)
	}
	_ = c.ws.Close() // dropped, no close frame
	c = nextWithin(20*time.Second, "key-2", "pg-a")
	c.send(t, '7', `{"id":"s2","resume":"key-2","route":"pg-a"}`)
	c.send(t, '0', "\x1bcrouted$ back$ ") // a resume's screen begins with a full reset
	tab.waitText("back$")

	// The server of that route is gone: the proxy answers its handshakes with 502 while
	// the site answers. The page retries with the key for a while, then starts afresh
	// without key or route, and says so.
	deadRoute.Store("pg-a")
	_ = c.ws.Close()
	waitStatus("session's server does not answer")
	c = nextWithin(90*time.Second, "", "")
	if n := deadTries.Load(); n < 2 {
		t.Errorf("the page gave the session up after %d refused handshakes", n)
	}
	if n := eval[string](tab, `document.getElementById('notice').textContent`); !strings.Contains(n, "cannot be reached") {
		t.Errorf("notice after giving up the route: %q", n)
	}
	if r := eval[string](tab, `(sessionStorage.getItem('playground.resume') ?? '') + (sessionStorage.getItem('playground.route') ?? '')`); r != "" {
		t.Errorf("key or route kept after giving the session up: %q", r)
	}
	c.send(t, '7', `{"id":"s3","resume":"key-3"}`)
	c.send(t, '0', "three$ ")
	tab.waitText("three$")
	if strings.Contains(tab.text(), "back$") {
		t.Errorf("the new session's terminal still shows the old one's output: %q", tab.text())
	}

	// The program is killed at a limit: ended, with the reason and a way to start again.
	c.send(t, '8', `{"code":-1,"signal":"KILL","reason":"memory limit 512 MiB reached"}`)
	c.close(t, 1000, "")
	tab.do(voidOf(chromedp.Poll[bool](`window.playground.state.ended`)), chromedp.WaitVisible(chromedp.ID(`restart`)))
	if s := status(); !strings.Contains(s, "signal KILL") || !strings.Contains(s, "memory limit 512 MiB reached") {
		t.Errorf("status after EXIT: %q", s)
	}
	if k := eval[string](tab, `sessionStorage.getItem('playground.resume') ?? ''`); k != "" {
		t.Errorf("resume key %q kept after the session ended", k)
	}
	tab.do(chromedp.Click(chromedp.ID(`restart`)))
	c = next("")
	c.close(t, 1000, "")
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
