package server

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/guntainer/playground/server/vt"
)

func newTestTermState(t testing.TB, cols, rows int) (*termState, *sync.WaitGroup) {
	var wg sync.WaitGroup
	log := zerolog.Nop()
	st := newTermState(cols, rows, func() *zerolog.Logger { return &log }, func(f func()) bool {
		wg.Go(f)
		return true
	})
	t.Cleanup(func() {
		st.stop()
		wg.Wait()
	})
	return st, &wg
}

// rebuild draws a snapshot on a fresh emulator, as a client would.
func rebuild(snap []byte, cols, rows int) *vt.Screen {
	s := vt.New(cols, rows, vt.DefaultScrollbackLines, vt.DefaultScrollbackBytes)
	_, _ = s.Write(snap)
	return s
}

func TestTermState(t *testing.T) {
	st, _ := newTestTermState(t, 40, 5)
	for i := range 10 {
		st.append([]byte(fmt.Sprintf("line %d\r\n", i)))
	}
	st.resize(20, 3)
	st.append([]byte("after resize"))
	got := rebuild(st.snapshot(), 20, 3)
	if want := []string{"line 8", "line 9", "after resize"}; !slices.Equal(got.Lines(), want) {
		t.Errorf("screen %q, want %q", got.Lines(), want)
	}
}

// TestTermStateFlood: more output than the ring holds, fed faster than
// the emulator takes it: the oldest is dropped, the screen shows the
// newest, and memory stays within the ring.
func TestTermStateFlood(t *testing.T) {
	st, wg := newTestTermState(t, 80, 24)
	chunk := bytes.Repeat([]byte("y\r\n"), 10000)
	for range 200 { // 6 MB
		st.append(chunk)
	}
	st.append([]byte("the end\r\n"))
	st.rmu.Lock()
	if len(st.ring) > maxRing {
		t.Errorf("ring of %d bytes, more than %d", len(st.ring), maxRing)
	}
	st.rmu.Unlock()
	got := rebuild(st.snapshot(), 80, 24)
	if l := got.Lines(); l[22] != "the end" || l[21] != "y" {
		t.Errorf("screen ends %q", l[20:])
	}
	wg.Wait()
	st.rmu.Lock()
	if st.ring != nil || st.n != 0 {
		t.Errorf("an idle state holds a ring of %d bytes, %d unfed", len(st.ring), st.n)
	}
	st.rmu.Unlock()
}

// TestTermStateConcurrent: output, resizes and snapshots from different
// goroutines at once (run with -race).
func TestTermStateConcurrent(t *testing.T) {
	st, _ := newTestTermState(t, 80, 24)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 2000 {
			st.append([]byte(fmt.Sprintf("\x1b[3%dmout %d\x1b[0m\r\n", i%8, i)))
		}
	})
	wg.Go(func() {
		for i := range 50 {
			st.resize(40+i, 10+i%10)
		}
	})
	wg.Go(func() {
		for range 50 {
			if s := st.snapshot(); !bytes.HasPrefix(s, []byte("\x1bc")) {
				t.Errorf("snapshot %q", s[:min(len(s), 20)])
			}
		}
	})
	wg.Wait()
	st.resize(80, 24)
	got := rebuild(st.snapshot(), 80, 24)
	if !strings.Contains(strings.Join(got.Lines(), "\n"), "out 1999") {
		t.Errorf("the last output is not on the screen: %q", got.Lines())
	}
}

// FuzzTermState feeds the terminal state what a program could print,
// cut anywhere, with resizes between: it must not panic, and a snapshot
// must rebuild on a client the screen the state holds.
func FuzzTermState(f *testing.F) {
	f.Add([]byte("hello\r\n\x1b[31mred\x1b[0m\r\n"), uint8(7), uint8(40), uint8(10))
	f.Add([]byte("\x1b[?1049h\x1b[2J\x1b[5;5Hfull\x1b[?25l"), uint8(3), uint8(80), uint8(24))
	f.Add([]byte("x\x1b[999999999b\x1b[1;99r\x1b[999B\n"), uint8(1), uint8(10), uint8(3))
	f.Add([]byte("世界\u0301\x1b]2;title\a"), uint8(2), uint8(5), uint8(2))
	f.Fuzz(func(t *testing.T, out []byte, cut, cols, rows uint8) {
		c, r := int(cols)%120+1, int(rows)%50+1
		st, _ := newTestTermState(t, 80, 24)
		step := int(cut)%64 + 1
		for i := 0; i < len(out); i += step {
			st.append(out[i:min(i+step, len(out))])
			if i == step {
				st.resize(c, r)
			}
		}
		if len(out) <= step {
			st.resize(c, r)
		}
		snap := st.snapshot()
		st.vmu.Lock()
		want := st.screen.Lines()
		st.vmu.Unlock()
		if got := rebuild(snap, c, r).Lines(); !slices.Equal(got, want) {
			t.Errorf("snapshot rebuilds %q, the state holds %q", got, want)
		}
	})
}
