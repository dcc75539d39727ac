package main

import (
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// asyncOutput gathers what a reader gives, for waitFor.
type asyncOutput struct {
	mu  sync.Mutex
	buf strings.Builder
}

func readAllAsync(r io.Reader) *asyncOutput {
	o := &asyncOutput{}
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := r.Read(b)
			o.mu.Lock()
			o.buf.Write(b[:n])
			o.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return o
}

func (o *asyncOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// waitFor waits until the output holds s, failing after a while.
func (o *asyncOutput) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(o.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %q; output so far:\n%q", s, o.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
