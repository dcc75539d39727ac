package server

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestDrain: on SIGTERM the server stops taking sessions (/readyz 503, a
// new one is closed with 1001, or, on a routed server, refused with 503 at
// its handshake), tells the open ones, lets them finish (a resume still
// works meanwhile), and is done when they are.
func TestDrain(t *testing.T) {
	for _, route := range []string{"", "pg-1"} {
		t.Run("route="+route, func(t *testing.T) { testDrain(t, route) })
	}
}

func testDrain(t *testing.T, route string) {
	s := newTestServer(t, Config{RouteID: route, Routed: route != ""})
	c := s.open(t, "", nil)
	si := c.session()
	c.waitOutput("$ ")
	drained := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		drained <- s.srv.Drain(ctx)
	}()
	c.waitNotice("going down for maintenance: this session ends within")
	if code, _, body := s.get(t, "/readyz", "", ""); code != http.StatusServiceUnavailable || !strings.Contains(body, "draining") {
		t.Errorf("/readyz while draining: %d %q", code, body)
	}
	if route == "" {
		// On its own: as the protocol says, after the init.
		s.refusedNew(t, websocket.CloseGoingAway, "shutting down")
	} else {
		// Routed: turned away at the handshake (the proxy tries the next
		// server); one that names the route but no key, after its init.
		s.refusedAt503(t, "draining")
		n := s.openAt(t, "route="+route, `{"columns": 80, "rows": 24}`, nil)
		if code, _, _ := n.waitClose(); code != websocket.CloseGoingAway {
			t.Errorf("new session with a route while draining: close %d, want 1001", code)
		}
	}
	_ = c.conn.Close()
	s.waitDetached(t, 1)
	// A reconnect (naming the route where there is one) gets its session back.
	query := ""
	if route != "" {
		query = "route=" + route
	}
	r := s.openAt(t, query, initWith("resume", si.Resume), nil)
	r.input("echo still-$((6*7))\r")
	r.waitLine("still-42")
	select {
	case err := <-drained:
		t.Fatalf("Drain returned with a session open: %v", err)
	default:
	}
	r.input("exit\r")
	r.waitClose()
	select {
	case err := <-drained:
		if err != nil {
			t.Errorf("Drain: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Drain did not return when the last session ended")
	}
}

// TestDrainTimeout: sessions that outlast the drain are ended with 1001
// by Shutdown, their terminals closed.
func TestDrainTimeout(t *testing.T) {
	s := newTestServer(t, Config{})
	c := s.open(t, "", nil)
	c.waitOutput("$ ")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := s.srv.Drain(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Drain with a session that stays: %v, want the deadline", err)
	}
	sctx, scancel := context.WithTimeout(context.Background(), waitTimeout)
	defer scancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if code, _, _ := c.waitClose(); code != websocket.CloseGoingAway {
		t.Errorf("close %d, want 1001", code)
	}
	if terms := s.starts.terminals(); !terms[0].closed.Load() {
		t.Error("terminal not closed")
	}
}

func TestReadyz(t *testing.T) {
	var notReady error = errors.New("environment ubuntu: downloading 40%")
	s := newTestServer(t, Config{}, withStart(plainStart(t)), func(d *Deps) { d.Ready = func() error { return notReady } })
	if code, _, body := s.get(t, "/readyz", "", ""); code != http.StatusServiceUnavailable || !strings.Contains(body, "downloading 40%") {
		t.Errorf("/readyz: %d %q, want 503 with the reason", code, body)
	}
	notReady = nil
	if code, _, body := s.get(t, "/readyz", "", ""); code != http.StatusOK {
		t.Errorf("/readyz: %d %q, want 200", code, body)
	}
}

// TestRoute: with a route id, SESSION names it and every response carries
// it, for a proxy that sends reconnects to the server holding the session.
func TestRoute(t *testing.T) {
	s := newTestServer(t, Config{RouteID: "pg-2"}, withStart(plainStart(t)))
	c := s.open(t, "", nil)
	si := c.session()
	if si.Route != "pg-2" {
		t.Errorf("SESSION %+v, want route pg-2", si)
	}
	w := s.openAt(t, "route=pg-2", initWith("watch", si.Watch), nil)
	if ws := w.session(); ws.Route != "pg-2" {
		t.Errorf("watcher's SESSION %+v, want route pg-2", ws)
	}
	for _, path := range []string{"/", "/healthz", "/readyz", "/nope"} {
		_, h, _ := s.get(t, path, "", "")
		if got := h.Get("X-Playground-Route"); got != "pg-2" {
			t.Errorf("GET %s: X-Playground-Route %q, want pg-2", path, got)
		}
	}
}
