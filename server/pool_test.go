package server

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/guntainer/playground/runtime"
)

// countingStart wraps a StartFunc and keeps every terminal it started.
type countingStart struct {
	start StartFunc
	mu    sync.Mutex
	terms []Terminal
}

func (c *countingStart) Start(ctx context.Context, req StartRequest) (Terminal, error) {
	t, err := c.start(ctx, req)
	if err == nil {
		c.mu.Lock()
		c.terms = append(c.terms, t)
		c.mu.Unlock()
	}
	return t, err
}

func (c *countingStart) started() []Terminal {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Terminal(nil), c.terms...)
}

func waitWarm(t testing.TB, p *Pool, n int) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for p.Warm() != n {
		if time.Now().After(deadline) {
			t.Fatalf("Warm() = %d after %v, want %d", p.Warm(), waitTimeout, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// readUntil reads a terminal until its output has a line want.
func readUntil(t testing.TB, term Terminal, want string) string {
	t.Helper()
	timer := time.AfterFunc(waitTimeout, func() { _ = term.Close() }) // the watchdog
	defer timer.Stop()
	var out []byte
	buf := make([]byte, 4096)
	for !hasLine(out, want) {
		n, err := term.Read(buf)
		if err != nil {
			t.Fatalf("read: %v; output so far %q", err, out)
		}
		out = append(out, buf[:n]...)
	}
	return string(out)
}

func TestPoolHandsOutWarmContainers(t *testing.T) {
	cs := &countingStart{start: testStart(t)}
	p := NewPool(cs.Start, 2, zerolog.Nop())
	t.Cleanup(func() { _ = p.Close() })
	waitWarm(t, p, 2)

	term, err := p.Start(context.Background(), StartRequest{Cols: 100, Rows: 30})
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	if got := cs.started(); len(got) != 2 && len(got) != 3 || got[0] != term {
		t.Fatalf("Start did not hand out the first warm terminal")
	}
	// The warm shell was started at 80x24; it is the session's size now.
	if _, err := term.Write([]byte("stty size\n")); err != nil {
		t.Fatal(err)
	}
	readUntil(t, term, "30 100")
	waitWarm(t, p, 2) // refilled
	if n := len(cs.started()); n != 3 {
		t.Errorf("started %d terminals, want 3: two warm and one refill", n)
	}
}

func TestPoolCloseEndsWarmContainers(t *testing.T) {
	cs := &countingStart{start: testStart(t)}
	p := NewPool(cs.Start, 3, zerolog.Nop())
	waitWarm(t, p, 3)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	_ = p.Close() // idempotent
	for i, term := range cs.started() {
		c := term.(*runtime.Container)
		select {
		case <-c.Done():
		case <-time.After(waitTimeout):
			t.Errorf("warm container %d still runs after Close", i)
		}
	}
}

func TestPoolSkipsDeadContainers(t *testing.T) {
	state := testStateDir(t)
	short := &countingStart{start: func(_ context.Context, req StartRequest) (Terminal, error) {
		c, err := runtime.Start(runtime.Spec{Args: []string{"/bin/sh", "-c", "sleep 0.2"}, StateDir: state, Cols: req.Cols, Rows: req.Rows})
		if err != nil {
			return nil, err
		}
		return c, nil
	}}
	p := NewPool(short.Start, 2, zerolog.Nop())
	t.Cleanup(func() { _ = p.Close() })
	waitWarm(t, p, 2)
	dead := short.started()
	for _, d := range dead {
		if _, err := d.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	term, err := p.Start(context.Background(), StartRequest{Cols: 101, Rows: 30})
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	if term == dead[0] || term == dead[1] {
		t.Fatal("Start handed out a terminal whose program had ended")
	}
}

func TestPoolBacksOffWhenStartsFail(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	failing := func(context.Context, StartRequest) (Terminal, error) {
		mu.Lock()
		calls++
		mu.Unlock()
		return nil, errors.New("no containers today")
	}
	var logs syncBuffer
	p := NewPool(failing, 2, zerolog.New(&logs))
	_, err := p.Start(context.Background(), StartRequest{Cols: 80, Rows: 24})
	if err == nil || !strings.Contains(err.Error(), "no containers today") {
		t.Errorf("Start: got %v, want the start error", err)
	}
	time.Sleep(400 * time.Millisecond)
	_ = p.Close()
	mu.Lock()
	defer mu.Unlock()
	// 100, 200, 400 ms of backoff: a handful of tries, not a hot loop.
	if calls > 6 {
		t.Errorf("%d starts in 0.4 s: no backoff", calls)
	}
	if !strings.Contains(logs.String(), "warm start failed") {
		t.Errorf("failure not logged: %s", logs.String())
	}
}
