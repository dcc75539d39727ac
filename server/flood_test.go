package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// A client's own messages are cheap to send and were not cheap to act on
// (issue 7): found by flooding the real server from three connections
// whose process had half a CPU, while another session's echo was timed.
// RESIZE as fast as they could go took the server to most of a CPU and the
// other session's echo p99 from 0.4 to 93 ms; INPUT, to 7.6 ms.

// TestResizeFloodCoalesced: an owner sending RESIZE without pause gets at
// most one applied to the terminal per resizeEvery, the first at once, and
// the last size it sent is the terminal's in the end. Each applied resize
// costs the server an ioctl that signals the program (SIGWINCH), a resize
// of its screen and a SESSION frame to every watcher; 85,000 a second
// took most of a CPU.
func TestResizeFloodCoalesced(t *testing.T) {
	s := newTestServer(t, Config{})
	c := s.open(t, "", nil)
	c.waitOutput("$ ")
	term := s.starts.terminals()[0]

	begin := time.Now()
	c.send(`1{"columns": 100, "rows": 30}`)
	term.waitResized(t, "100x30") // the first is applied at once
	for i := range 2000 {
		c.send(fmt.Sprintf(`1{"columns": %d, "rows": %d}`, 60+i%2, 20+i%2))
	}
	c.send(`1{"columns": 123, "rows": 45}`)
	term.waitResized(t, "123x45")
	elapsed := time.Since(begin)

	term.mu.Lock()
	n := len(term.sizes)
	last := term.sizes[n-1]
	term.mu.Unlock()
	if most := int(elapsed/resizeEvery) + 2; n > most {
		t.Errorf("%d resizes reached the terminal in %v; at most %d (one per %v)", n, elapsed.Round(time.Millisecond), most, resizeEvery)
	}
	if last != "123x45" {
		t.Errorf("the terminal's last resize was %s; want the last one sent, 123x45", last)
	}
	c.input("stty size\r")
	c.waitLine("45 123")
}

// TestTurnsStreamingInput: a client that streams INPUT (messages come
// faster than the server handles them: its reads of the socket never wait)
// takes turns as streaming output does, so that it cannot keep every P
// busy; a client that types never waits for one; and what the streaming
// client sent all arrives once it has its turns again.
func TestTurnsStreamingInput(t *testing.T) {
	s := newTestServer(t, Config{})
	oneTurn(s)
	streaming := s.open(t, "", nil)
	streaming.waitOutput("$ ")
	streaming.input("stty -echo; wc -c\r")
	typing := s.open(t, "", nil)
	typing.waitOutput("$ ")

	held, _ := s.srv.turns.take(nil)
	const n = 5000
	for range n {
		streaming.input("x\r")
	}
	for deadline := time.Now().Add(waitTimeout); s.srv.turns.waiting.Load() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			held.end()
			t.Fatalf("a client streamed %d INPUT messages and its reads never waited for a turn", n)
		}
	}
	typing.input("echo $((6*7))\r")
	typing.waitLine("42")
	held.end()

	streaming.input("\x04")
	streaming.waitLine(fmt.Sprint(2 * n)) // wc -c: every "x\n"
}

// TestBlockHookConnRead: Read returns what the peer sent without calling
// the hook when the data was there; when it must wait, it ends the
// reader's turn first and records the wait; a read deadline is a timeout;
// the peer's close is io.EOF, bare, as net.Conn's Read says it.
func TestBlockHookConnRead(t *testing.T) {
	peer, nc := tcpPair(t)
	c := newBlockHookConn(nc)
	defer c.Close()
	if !c.canHook() {
		t.Fatal("a TCP connection cannot hook its reads")
	}
	turns := newOutputTurns(1, time.Hour)

	if _, err := peer.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	for got := ""; got != "abc"; {
		c.waited = false
		c.readTurn, _ = turns.take(nil)
		n, err := c.Read(buf[:3-len(got)])
		if err != nil {
			t.Fatal(err)
		}
		got += string(buf[:n])
		if !c.waited && len(turns.ch) != 1 {
			t.Fatal("a read that did not wait gave the turn back")
		}
		c.readTurn.end()
	}

	c.waited = false
	c.readTurn, _ = turns.take(nil)
	read := make(chan error, 1)
	go func() {
		_, err := c.Read(buf)
		read <- err
	}()
	for deadline := time.Now().Add(waitTimeout); len(turns.ch) != 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a read waiting for the peer kept its turn")
		}
	}
	if _, err := peer.Write([]byte("d")); err != nil {
		t.Fatal(err)
	}
	if err := <-read; err != nil || !c.waited || buf[0] != 'd' {
		t.Fatalf("Read: %v, waited %v, %q; want nil, true, \"d\"", err, c.waited, buf[:1])
	}

	_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	var ne net.Error
	if _, err := c.Read(buf); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Read past its deadline: %v; want a timeout", err)
	}
	_ = c.SetReadDeadline(time.Time{})
	_ = peer.Close()
	if n, err := c.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("Read after the peer closed: %d, %v; want 0, io.EOF", n, err)
	}
}

// TestInputQueueJoinsFrames: the input writer takes the frames queued in
// one write, up to maxInputWrite bytes, in order; a frame with a signal
// key goes alone.
func TestInputQueueJoinsFrames(t *testing.T) {
	var q inputQueue
	var want []byte
	for i := range 3000 {
		f := []byte{'a' + byte(i%26), '\r'}
		q.push(f, false)
		want = append(want, f...)
	}
	var got []byte
	writes := 0
	for p := q.popOrRelease(); p != nil; p = q.popOrRelease() {
		if len(p) > maxInputWrite {
			t.Fatalf("a write of %d bytes; at most %d", len(p), maxInputWrite)
		}
		got = append(got, p...)
		writes++
		q.written()
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("the writes' bytes differ from the frames' (%d against %d bytes)", len(got), len(want))
	}
	if most := (len(want) + maxInputWrite - 1) / maxInputWrite; writes > most {
		t.Errorf("%d frames of 2 bytes took %d writes; at most %d", 3000, writes, most)
	}

	q.push([]byte("before"), false)
	q.push([]byte("\x03"), true) // drops what is queued, as ISIG does
	q.push([]byte("after"), false)
	if p := q.popOrRelease(); string(p) != "\x03" {
		t.Errorf("with a Ctrl-C queued, the write is %q; want the Ctrl-C's frame alone", p)
	}
	q.written()
	if p := q.popOrRelease(); string(p) != "after" {
		t.Errorf("after the Ctrl-C the write is %q; want %q", p, "after")
	}
}
