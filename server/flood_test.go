package server

import (
	"fmt"
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
