package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/guntainer/playground/runtime"
)

// Signals sent to `playground run` are the program's: passed on to it
// (through its init, which forwards them), as docker run does. Those that
// ask for an end (SIGINT, SIGTERM, SIGHUP) also start the stop timeout: a
// program that ignores them (an interactive shell ignores SIGTERM) is
// killed with its whole container when it runs out, as docker stop does,
// so `timeout 5 playground run ...` always ends. Before the program starts,
// they stop the preparation (a download) and nothing is started.
var (
	passedOn = append([]os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT}, userSignals...)
	endings  = map[syscall.Signal]bool{syscall.SIGINT: true, syscall.SIGTERM: true, syscall.SIGHUP: true}
)

// runSignals owns run's signal handling from catchSignals to stop.
type runSignals struct {
	ch      chan os.Signal
	ctx     context.Context // ends at the first ending signal: for the preparation
	cancel  context.CancelFunc
	timeout time.Duration
	stderr  io.Writer
	tty     bool // stderr is a terminal in raw mode: lines need "\r\n"
	loopEnd chan struct{}

	mu      sync.Mutex
	c       *runtime.Container
	resize  func()
	pending []syscall.Signal // came before the container started
	first   syscall.Signal   // the first ending signal
	timer   *time.Timer
}

// catchSignals takes SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and
// SIGWINCH (where the system has them) from their default actions, to
// pass them on.
func catchSignals(timeout time.Duration, stderr io.Writer, tty bool) *runSignals {
	s := &runSignals{ch: make(chan os.Signal, 16), timeout: timeout, stderr: stderr, tty: tty, loopEnd: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	signal.Notify(s.ch, append(passedOn, resizeSignals...)...)
	go s.loop()
	return s
}

func (s *runSignals) loop() {
	defer close(s.loopEnd)
	for got := range s.ch {
		sig, ok := got.(syscall.Signal)
		if !ok {
			continue
		}
		s.mu.Lock()
		switch {
		case slices.Contains(resizeSignals, os.Signal(sig)):
			if s.resize != nil {
				s.resize()
			}
		case s.c == nil:
			s.pending = append(s.pending, sig)
		default:
			_ = s.c.Signal(sig) // the container may just have ended
		}
		if endings[sig] && s.first == 0 {
			s.first = sig
			s.cancel()
			if s.c != nil {
				s.armTimer()
			}
		}
		s.mu.Unlock()
	}
}

// attach hands over the started container: signals that came while it
// started are passed on now, and from now on as they come. resize, which
// may be nil, is called on SIGWINCH.
func (s *runSignals) attach(c *runtime.Container, resize func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.c, s.resize = c, resize
	for _, sig := range s.pending {
		_ = c.Signal(sig) // the container may just have ended
	}
	s.pending = nil
	if s.first != 0 {
		s.armTimer()
	}
}

// armTimer starts the stop timeout. s.mu is held.
func (s *runSignals) armTimer() {
	c, sig, timeout := s.c, s.first, s.timeout
	s.timer = time.AfterFunc(timeout, func() {
		select {
		case <-c.Done():
			return
		default:
		}
		msg := fmt.Sprintf("playground: the program did not end within %v of SIG%s; ending its container", timeout, runtime.SignalName(sig))
		if s.tty {
			msg = "\r\n" + msg + "\r"
		}
		fmt.Fprintln(s.stderr, msg)
		_ = c.Close() // kills every process of the container; Wait then returns
	})
}

// ending is the first ending signal that came, or 0.
func (s *runSignals) ending() syscall.Signal {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.first
}

// stop gives the signals back to their default actions and stops the
// timer. The loop has ended when it returns.
func (s *runSignals) stop() {
	signal.Stop(s.ch)
	close(s.ch) // no more sends after Stop
	<-s.loopEnd
	s.mu.Lock()
	if s.timer != nil {
		s.timer.Stop()
	}
	s.mu.Unlock()
	s.cancel()
}
