package server

import (
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"
)

// BenchmarkSessionStart measures what a user waits for: from dialing /ws to
// the shell's first answer, through the whole server, then the close. The
// "container" case is the product (every namespace, its own root); the
// "plain" case is the same server and client with an unisolated shell on a
// plain pty, so the difference is what isolation costs, measured in the
// same run.
//
// "warm" is the container case with a warm pool that is given time to
// refill between sessions (outside the timer): what a visitor waits for
// while arrivals stay within what the pool refills.
func BenchmarkSessionStart(b *testing.B) {
	b.Run("container", func(b *testing.B) { benchSessionStart(b, testStart(b), nil) })
	b.Run("warm", func(b *testing.B) {
		p := NewPool(testStart(b), 2, zerolog.Nop())
		defer p.Close()
		benchSessionStart(b, p.Start, func() {
			b.StopTimer()
			waitWarm(b, p, 2)
			b.StartTimer()
		})
	})
	b.Run("plain", func(b *testing.B) { benchSessionStart(b, plainStart(b), nil) })
}

func benchSessionStart(b *testing.B, start StartFunc, between func()) {
	// No reconnect grace: a session ends with its connection, as it did
	// before sessions outlived them, so that the next one is not counted
	// against the per-client limits and none is left at the end.
	s := newTestServer(b, Config{ReconnectGrace: -1}, withStart(start), func(d *Deps) { d.Log = zerolog.Nop() })
	init := []byte(`{"AuthToken": "", "columns": 80, "rows": 24}`)
	b.ResetTimer()
	for b.Loop() {
		if between != nil {
			between()
		}
		conn, resp, err := s.dial(nil)
		if err != nil {
			b.Fatalf("dial: %v (%s)", err, respStatus(resp))
		}
		_ = conn.SetReadDeadline(time.Now().Add(waitTimeout)) // the watchdog
		if err := conn.WriteMessage(websocket.BinaryMessage, init); err != nil {
			b.Fatal(err)
		}
		if err := conn.WriteMessage(websocket.BinaryMessage, []byte("0echo $((6*7))\r")); err != nil {
			b.Fatal(err)
		}
		var out []byte
		for !hasLine(out, "42") {
			_, m, err := conn.ReadMessage()
			if err != nil {
				b.Fatalf("read: %v; output so far %q", err, out)
			}
			if m[0] == msgOutput {
				out = append(out, m[1:]...)
			}
		}
		_ = conn.Close() // the server sees the client go and ends the session
	}
	b.StopTimer()
	b.ReportMetric(ms(b.Elapsed())/float64(b.N), "ms/ready")
	s.waitSessions(b, 0)
}

// BenchmarkPTYStart is the floor under BenchmarkSessionStart: the same
// shell and question on a bare pty, no server in between.
func BenchmarkPTYStart(b *testing.B) {
	start := plainStart(b)
	b.ResetTimer()
	for b.Loop() {
		term, err := start(b.Context(), StartRequest{Cols: 80, Rows: 24})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := term.Write([]byte("echo $((6*7))\r")); err != nil {
			b.Fatal(err)
		}
		timer := time.AfterFunc(waitTimeout, func() { _ = term.Close() }) // the watchdog
		var out []byte
		buf := make([]byte, 4096)
		for !hasLine(out, "42") {
			n, err := term.Read(buf)
			if err != nil {
				b.Fatalf("read: %v; output so far %q", err, out)
			}
			out = append(out, buf[:n]...)
		}
		timer.Stop()
		_ = term.Close()
		_, _ = term.Wait()
	}
	b.StopTimer()
	b.ReportMetric(ms(b.Elapsed())/float64(b.N), "ms/ready")
}
