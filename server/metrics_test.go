package server

import (
	"testing"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"
)

func TestMetrics(t *testing.T) {
	p := NewPool(plainStart(t), 1, zerolog.Nop())
	t.Cleanup(func() { _ = p.Close() })
	s := newTestServer(t, Config{MaxSessions: 2}, withStart(p.Start), func(d *Deps) { d.Pool = p })
	waitWarm(t, p, 1)
	a := s.open(t, "", nil) // warm
	a.input("echo $((6*7))\r")
	a.waitLine("42")
	b := s.open(t, "", nil)
	b.waitOutput("$ ")
	s.refusedNew(t, websocket.CloseTryAgainLater, "capacity") // over the limit
	m := s.metrics(t)
	for name, want := range map[string]float64{
		"playground_sessions_active":                           2,
		"playground_sessions_max":                              2,
		"playground_sessions_started_total":                    2,
		`playground_rejections_total{reason="capacity"}`:       1,
		`playground_session_start_seconds_count{start="warm"}`: 1,
		`playground_session_start_seconds_count{start="cold"}`: 1,
		"playground_pool_size":                                 1,
		"playground_pool_warm":                                 0,
		"playground_sessions_detached":                         0,
		"playground_watchers":                                  0,
		`playground_bytes_total{direction="in"}`:               float64(len("echo $((6*7))\r")),
	} {
		if m[name] != want {
			t.Errorf("%s = %v, want %v", name, m[name], want)
		}
	}
	if m[`playground_bytes_total{direction="out"}`] <= 0 || m["process_resident_memory_bytes"] <= 0 || m["go_goroutines"] <= 0 {
		t.Errorf("bytes out, process and Go metrics missing")
	}
	a.input("exit\r")
	a.waitClose()
	_ = b.conn.Close()
	s.waitDetached(t, 1)
	m = s.metrics(t)
	if m[`playground_sessions_ended_total{reason="exit"}`] != 1 || m["playground_sessions_detached"] != 1 || m["playground_sessions_active"] != 1 {
		t.Errorf("after an exit and a drop: ended{exit} %v, detached %v, active %v; want 1, 1, 1",
			m[`playground_sessions_ended_total{reason="exit"}`], m["playground_sessions_detached"], m["playground_sessions_active"])
	}
}
