package server

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"

	"github.com/guntainer/playground/internal/testenv"
)

// TestConnectStorm: 1,000 clients connect and drop at every stage (before
// init, right after it while the container starts, with the shell up,
// after a resume), 8 at a time, against real containers. Afterwards no
// session, goroutine, fd, child process or container mount point is left,
// and the server still works.
func TestConnectStorm(t *testing.T) {
	if testing.Short() {
		testenv.Skipf(t, "a long test, left out under -short") // -short is for quick local runs; CI runs it
	}
	start, state := testStartState(t)
	var logs syncBuffer
	s := newTestServer(t, Config{ReconnectGrace: 50 * time.Millisecond}, withStart(start),
		func(d *Deps) { d.Log = zerolog.New(&logs).Level(zerolog.WarnLevel) })
	defer func() {
		if t.Failed() {
			t.Logf("the server's warnings and errors:\n%s", logs.String())
		}
	}()
	// The baseline, with the server listening and one session done.
	s.checkWorks(t)
	s.waitSessions(t, 0)
	waitNoChildren(t)
	fds := openFds()
	goroutines := len(testenv.Goroutines())
	const total, parallel = 1000, 8
	var next, shells atomic.Int32
	var wg sync.WaitGroup
	for range parallel {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > total {
					return
				}
				if err := stormClient(s, int(i), &shells); err != nil {
					t.Errorf("client %d: %v", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d clients, %d reached a shell", total, shells.Load())
	s.waitSessions(t, 0)
	waitNoChildren(t)
	if err := testenv.CheckGoroutines(goroutines); err != nil {
		t.Error(err)
	}
	if err := checkLeaks(fds); err != nil {
		t.Error(err)
	}
	es, _ := readDirNames(state)
	for _, e := range es {
		if len(e) > 2 && e[:2] == "c-" {
			t.Errorf("container mount point %s left in the state dir", e)
		}
	}
	if mi, err := os.ReadFile("/proc/self/mountinfo"); err == nil && strings.Contains(string(mi), state) {
		t.Errorf("a mount under the state dir is left in the server's mount namespace")
	}
	s.checkWorks(t)
}

// stormClient is one client of the storm; i picks how far it gets.
func stormClient(s *testServer, i int, shells *atomic.Int32) error {
	d := s.dialer()
	conn, resp, err := d.Dial(s.wsURL, nil)
	if err != nil {
		return fmt.Errorf("dial: %v (%s)", err, respStatus(resp))
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(waitTimeout))
	stage := i % 4
	if stage == 0 {
		return nil // gone before init
	}
	if err := conn.WriteMessage(websocket.BinaryMessage, []byte(`{"columns": 80, "rows": 24}`)); err != nil {
		return err
	}
	if stage == 1 {
		// Gone while the container starts, after a random short while.
		time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		return nil
	}
	var key string
	for {
		_, m, err := conn.ReadMessage()
		if err != nil {
			return fmt.Errorf("read: %v", err)
		}
		if m[0] == msgSession {
			key = string(m[1:])
		}
		if m[0] == msgOutput {
			break // the shell is up
		}
	}
	shells.Add(1)
	if stage == 2 {
		return nil // dropped with the shell up; the grace ends it
	}
	// Resume, then drop again.
	var si sessionInfo
	if err := jsonUnmarshal([]byte(key), &si); err != nil {
		return err
	}
	conn2, resp, err := d.Dial(s.wsURL, nil)
	if err != nil {
		return fmt.Errorf("dial: %v (%s)", err, respStatus(resp))
	}
	defer conn2.Close()
	_ = conn.Close()
	_ = conn2.SetReadDeadline(time.Now().Add(waitTimeout))
	if err := conn2.WriteMessage(websocket.BinaryMessage, []byte(initWith("resume", si.Resume))); err != nil {
		return err
	}
	// Either the resume is in (the opening messages come) or the grace
	// ran out first (4404): both are fine.
	if _, _, err := conn2.ReadMessage(); err != nil {
		if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != closeUnknownKey {
			return fmt.Errorf("resume: %v", err)
		}
	}
	return nil
}

// TestPoolStartRacesClose: sessions take terminals while the pool closes;
// every terminal ends up either with its caller or closed, and Start
// fails cleanly once the pool is closed.
func TestPoolStartRacesClose(t *testing.T) {
	for round := range 5 {
		cs := &countingStart{start: testStart(t)}
		p := NewPool(cs.Start, 3, zerolog.Nop())
		waitWarm(t, p, 3)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var got []Terminal
		for range 4 {
			wg.Go(func() {
				for range 3 {
					ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
					term, err := p.Start(ctx, StartRequest{Cols: 80, Rows: 24})
					cancel()
					if err != nil {
						continue // closed under it, or a start abandoned
					}
					mu.Lock()
					got = append(got, term)
					mu.Unlock()
				}
			})
		}
		if round%2 == 1 {
			time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond)
		}
		_ = p.Close()
		wg.Wait()
		if _, err := p.Start(context.Background(), StartRequest{Cols: 80, Rows: 24}); err != ErrPoolClosed {
			t.Errorf("Start after Close: %v, want ErrPoolClosed", err)
		}
		seen := map[Terminal]bool{}
		for _, term := range got {
			if seen[term] {
				t.Errorf("a terminal was handed out twice")
			}
			seen[term] = true
			_ = term.Close()
			_, _ = term.Wait()
		}
	}
	waitNoChildren(t)
}
