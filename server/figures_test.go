package server

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"

	"github.com/guntainer/playground/server/vt"
)

// The figures issue 8 asks for, as benchmarks beside a baseline measured
// in the same run:
//
//	go test -run '^$' -bench 'Resume|DetachedMemory|SlowReaders' -benchtime 200x ./server

// BenchmarkResume measures what a user whose network dropped waits for:
// from the drop (the old connection closed) to the screen restored on the
// new one (dial, init with the resume key, the rebuilt screen drawn by a
// client-side emulator up to the prompt). The session's screen is full and
// its scrollback holds 1,000 lines (the output of seq 1 2000). The
// baseline is a new session on the same server: dial to the first prompt,
// with a container started cold.
func BenchmarkResume(b *testing.B) {
	b.Run("resume", func(b *testing.B) {
		s := newTestServer(b, Config{}, func(d *Deps) { d.Log = zerolog.Nop() })
		c := s.open(b, "", nil)
		key := c.session().Resume
		c.input("seq 1 2000\r")
		c.waitOutput("2000\r\n$ ")
		var ds []time.Duration
		conn := c.conn
		for b.Loop() {
			begin := time.Now()
			_ = conn.Close()
			var err error
			conn, err = resumeUntilPrompt(s, key)
			if err != nil {
				b.Fatal(err)
			}
			ds = append(ds, time.Since(begin))
		}
		_ = conn.Close()
		reportPercentiles(b, ds)
	})
	b.Run("new-session-cold", func(b *testing.B) {
		s := newTestServer(b, Config{ReconnectGrace: -1}, func(d *Deps) { d.Log = zerolog.Nop() })
		var ds []time.Duration
		for b.Loop() {
			begin := time.Now()
			conn, err := newUntilPrompt(s)
			if err != nil {
				b.Fatal(err)
			}
			ds = append(ds, time.Since(begin))
			_ = conn.Close()
		}
		reportPercentiles(b, ds)
		s.waitSessions(b, 0)
	})
}

// resumeUntilPrompt resumes and reads until the screen shows the prompt
// after 2000.
func resumeUntilPrompt(s *testServer, key string) (*websocket.Conn, error) {
	conn, resp, err := s.dial(nil)
	if err != nil {
		return nil, fmt.Errorf("dial: %v (%s)", err, respStatus(resp))
	}
	_ = conn.SetReadDeadline(time.Now().Add(waitTimeout))
	if err := conn.WriteMessage(websocket.BinaryMessage, []byte(initWith("resume", key))); err != nil {
		return nil, err
	}
	scr := vt.New(80, 24, 1000, 1<<20)
	for {
		_, m, err := conn.ReadMessage()
		if err != nil {
			return nil, fmt.Errorf("read: %v", err)
		}
		if m[0] != msgOutput {
			continue
		}
		_, _ = scr.Write(m[1:])
		if l := scr.Lines(); l[22] == "2000" && l[23] == "$" {
			return conn, nil
		}
	}
}

func newUntilPrompt(s *testServer) (*websocket.Conn, error) {
	conn, resp, err := s.dial(nil)
	if err != nil {
		return nil, fmt.Errorf("dial: %v (%s)", err, respStatus(resp))
	}
	_ = conn.SetReadDeadline(time.Now().Add(waitTimeout))
	if err := conn.WriteMessage(websocket.BinaryMessage, []byte(`{"columns": 80, "rows": 24}`)); err != nil {
		return nil, err
	}
	for {
		_, m, err := conn.ReadMessage()
		if err != nil {
			return nil, fmt.Errorf("read: %v", err)
		}
		if m[0] == msgOutput && strings.Contains(string(m), "$ ") {
			return conn, nil
		}
	}
}

func reportPercentiles(b *testing.B, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	p := func(q float64) float64 { return ms(ds[min(int(q*float64(len(ds))), len(ds)-1)]) }
	b.ReportMetric(p(0.5), "p50-ms")
	b.ReportMetric(p(0.99), "p99-ms")
	b.ReportMetric(0, "ns/op") // the percentiles are the figure
}

// BenchmarkDetachedMemory measures the server's memory per session:
// detached (its client gone, waiting for a resume: goroutines, terminal
// state, buffers), and attached, beside none. Each session's shell has
// printed 200 lines. Memory is the Go heap in use plus goroutine stacks
// after a GC, in this process, which runs the clients too: the attached
// figure includes a client's connection (its two buffers of 4 KiB and
// more), the detached one nothing of the clients.
func BenchmarkDetachedMemory(b *testing.B) {
	const n = 50
	s := newTestServer(b, Config{}, func(d *Deps) { d.Log = zerolog.Nop() })
	base := serverMemory()
	conns := make([]*websocket.Conn, 0, n)
	for range n {
		conn, err := newUntilPrompt(s)
		if err != nil {
			b.Fatal(err)
		}
		if err := conn.WriteMessage(websocket.BinaryMessage, []byte("0seq 1 200\r")); err != nil {
			b.Fatal(err)
		}
		var out []byte
		for !strings.Contains(string(out), "200\r\n$ ") {
			_, m, err := conn.ReadMessage()
			if err != nil {
				b.Fatal(err)
			}
			out = append(out[max(len(out)-16, 0):], m[1:]...)
		}
		conns = append(conns, conn)
	}
	attached := serverMemory()
	for i, c := range conns {
		_ = c.Close()
		conns[i] = nil // the client's side goes: what is left is the server's
	}
	s.waitDetached(b, n)
	// Let each session's terminal state digest what it holds.
	time.Sleep(200 * time.Millisecond)
	detached := serverMemory()
	for b.Loop() {
		// The figure is the memory, measured once.
	}
	b.ReportMetric(float64(attached-base)/n/1024, "KiB/attached-session")
	b.ReportMetric(float64(detached-base)/n/1024, "KiB/detached-session")
	b.ReportMetric(0, "ns/op")
}

func serverMemory() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse + m.StackInuse)
}

// BenchmarkSlowReaders: 20 sessions run `yes` to clients that read a
// frame every 50 ms; the server's memory must stay bounded. It reports
// the process's resident memory (this process: the server, and the
// clients) and the Go heap at the end of 5 s of it, beside the same 20
// sessions idle.
func BenchmarkSlowReaders(b *testing.B) {
	const n = 20
	s := newTestServer(b, Config{}, func(d *Deps) { d.Log = zerolog.Nop() })
	var conns []*websocket.Conn
	for range n {
		conn, err := newUntilPrompt(s)
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, conn)
	}
	idleRSS, idleHeap := rss(), serverMemory()
	for _, conn := range conns {
		if err := conn.WriteMessage(websocket.BinaryMessage, []byte("0yes\r")); err != nil {
			b.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var peak int64
	var mu sync.Mutex
	for _, conn := range conns {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond): // a slow reader
				}
				_ = conn.SetReadDeadline(time.Now().Add(waitTimeout))
				if _, _, err := conn.ReadMessage(); err != nil {
					b.Errorf("slow reader cut off: %v", err)
					return
				}
			}
		})
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(250 * time.Millisecond)
		r := rss()
		mu.Lock()
		peak = max(peak, r)
		mu.Unlock()
	}
	floodHeap := serverMemory()
	close(stop)
	wg.Wait()
	for b.Loop() {
	}
	b.ReportMetric(float64(idleRSS)/(1<<20), "MiB-RSS-idle")
	b.ReportMetric(float64(peak)/(1<<20), "MiB-RSS-peak-flooding")
	b.ReportMetric(float64(idleHeap)/(1<<20), "MiB-heap-idle")
	b.ReportMetric(float64(floodHeap)/(1<<20), "MiB-heap-flooding")
	b.ReportMetric(0, "ns/op")
	for _, conn := range conns {
		_ = conn.Close()
	}
}

// rss is this process's resident memory, from /proc.
func rss() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkThroughput: a program floods its terminal (64 MB of Z); the
// server sends it to a client reading as fast as it can. The shell is a
// plain pty, so the figure is the server's own cost.
func BenchmarkThroughput(b *testing.B) {
	s := newTestServer(b, Config{}, withStart(plainStart(b)), func(d *Deps) { d.Log = zerolog.Nop() })
	const size = 64 << 20
	for b.Loop() {
		conn, err := newUntilPrompt(s)
		if err != nil {
			b.Fatal(err)
		}
		cmd := fmt.Sprintf("0head -c %d /dev/zero | tr '\\000' '\\132'; exit\r", size)
		if err := conn.WriteMessage(websocket.BinaryMessage, []byte(cmd)); err != nil {
			b.Fatal(err)
		}
		got := 0
		for {
			_ = conn.SetReadDeadline(time.Now().Add(waitTimeout))
			_, m, err := conn.ReadMessage()
			if err != nil {
				break
			}
			if m[0] == msgOutput {
				got += strings.Count(string(m[1:]), "Z")
			}
		}
		if got != size {
			b.Fatalf("got %d bytes", got)
		}
		_ = conn.Close()
	}
	b.SetBytes(size)
}
