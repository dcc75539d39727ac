package server

import (
	"context"
	"fmt"
	"io"
	"sync"
	"syscall"

	"github.com/guntainer/playground/runtime"
)

// Terminal is a program running on a pty: a container from runtime, or a
// plain shell in tests and baselines.
//
// A session uses its Terminal from two goroutines: one reads (and, once Read
// fails, calls Wait), the other writes. Resize may come from a third. Close
// may be called from any goroutine, at any time, more than once.
//
// A Terminal may also have, and the server uses when it has:
//
//	ID() string                                   // container id, for logs and the admin API
//	Stats() (runtime.Stats, error)                // processes and memory, for the admin API
//	ReadNow(p []byte) (int, error)                // read what is there without waiting
//	Done() <-chan struct{}                        // closed when the program has ended
//	SignalForeground(syscall.Signal) error        // what a signal key does: signal the foreground job, drop unread input
//	SignalKey(byte) (syscall.Signal, bool, error) // whether a typed byte is a signal key now
type Terminal interface {
	// Read reads pty output. It returns an error (io.EOF or EIO-ish) once the
	// program and everything holding the pty has ended, or after Close.
	io.Reader
	// Write writes pty input. It may block while the program does not read
	// its input; Close unblocks it.
	io.Writer
	// Resize sets the pty's window size.
	Resize(cols, rows uint16) error
	// Wait blocks until the program has ended and reports how. It is safe to
	// call after Close.
	Wait() (runtime.ExitStatus, error)
	// Close is idempotent; it ends every process and unblocks Read, Write
	// and Wait.
	Close() error
}

// StartRequest says what terminal a session needs.
type StartRequest struct {
	// Cols and Rows are the terminal's size, 1 to 1000 each.
	Cols, Rows uint16
	// Env names the environment (root file system): "" for the default,
	// the first of Deps.Envs; else one of the others. The server has
	// checked it against Deps.Envs.
	Env string
	// Notify shows a progress message to the waiting client as a NOTICE
	// (level "info", "warn" or "error"), e.g. "preparing ubuntu: 40%". It
	// may be nil (the pool's starts have nobody to tell), and is safe to
	// call from any goroutine until StartFunc returns.
	Notify func(level, text string)

	info *startInfo // the server's: how the terminal was got
}

// settle tells the server the session has been to the pool.
func (r StartRequest) settle() {
	if r.info != nil && r.info.settle != nil {
		r.info.settle()
	}
}

// startInfo is how the Pool and the server tell each other about a start:
// warm, filled in by the Pool for the server's metrics; settle, the
// server's, which the Pool calls once it has given the session a warm
// terminal or found none (Server.room).
type startInfo struct {
	warm   bool
	settle func()
}

// StartFunc starts a terminal for a session. Its error is logged, never
// shown to the client (who gets "could not start a terminal"), so it should
// say what failed in full.
//
// ctx is canceled when the start timeout passes or the session ends while
// the start is running (the client left, the server shuts down): StartFunc
// must give up then and return promptly, and must not leave behind a
// terminal it started (close it when it arrives). The server Closes every
// terminal it got.
type StartFunc func(ctx context.Context, req StartRequest) (Terminal, error)

// ContainerStart is the StartFunc that starts a container from spec for
// each session, at the session's terminal size. It knows the default
// environment only. runtime.Start takes no context: it runs on its own
// goroutine, and when ctx is done first ContainerStart returns at once and
// the container, once it is up, is closed.
func ContainerStart(spec runtime.Spec) StartFunc {
	return func(ctx context.Context, req StartRequest) (Terminal, error) {
		if req.Env != "" {
			return nil, fmt.Errorf("environment %q: this server starts only the default one", req.Env)
		}
		s := spec
		s.Cols, s.Rows = req.Cols, req.Rows
		return StartAbandonable(ctx, func() (Terminal, error) {
			c, err := runtime.Start(s)
			if err != nil {
				return nil, err // a nil *Container must not become a non-nil Terminal
			}
			return c, nil
		})
	}
}

// StartAbandonable runs start, which cannot be canceled, on its own
// goroutine. It returns start's result, or ctx's error as soon as ctx is
// done; a terminal that start returns after that is closed and reaped by
// that goroutine, which ends when start does. The Server and the Pool
// wait for such goroutines when they shut down (they mark the contexts
// they start with), so that no container outlives them.
func StartAbandonable(ctx context.Context, start func() (Terminal, error)) (Terminal, error) {
	if err := ctx.Err(); err != nil {
		return nil, context.Cause(ctx)
	}

	type result struct {
		t   Terminal
		err error
	}
	var (
		mu        sync.Mutex
		abandoned bool
		ch        = make(chan result, 1)
	)
	var wg *sync.WaitGroup
	if w, _ := ctx.Value(abandonKey{}).(*sync.WaitGroup); w != nil {
		wg = w
		wg.Add(1)
	}
	go func() {
		if wg != nil {
			defer wg.Done()
		}
		t, err := start()
		mu.Lock()
		gone := abandoned
		mu.Unlock()
		if gone {
			if err == nil {
				_ = t.Close()   // nobody wants it any more
				_, _ = t.Wait() // reap it; how it ended does not matter
			}
			return
		}
		ch <- result{t, err}
	}()
	select {
	case r := <-ch:
		return r.t, r.err
	case <-ctx.Done():
		mu.Lock()
		abandoned = true
		mu.Unlock()
		// The result may have come in the meantime: then it is ours to close.
		select {
		case r := <-ch:
			if r.err == nil {
				_ = r.t.Close()
				_, _ = r.t.Wait()
			}
		default:
		}
		return nil, context.Cause(ctx)
	}
}

// abandonKey marks a context with the WaitGroup that StartAbandonable's
// goroutines join.
type abandonKey struct{}

func withAbandonGroup(ctx context.Context, wg *sync.WaitGroup) context.Context {
	return context.WithValue(ctx, abandonKey{}, wg)
}

// Optional Terminal methods.

type readNower interface {
	ReadNow(p []byte) (int, error)
}

type identifier interface{ ID() string }

type foregroundSignaler interface {
	SignalForeground(sig syscall.Signal) error
}

type signalKeyer interface {
	SignalKey(b byte) (sig syscall.Signal, ok bool, err error)
}

func terminalID(t Terminal) string {
	if t == nil {
		return ""
	}
	if i, ok := t.(identifier); ok {
		return i.ID()
	}
	return ""
}

type statser interface {
	Stats() (runtime.Stats, error)
}

// terminalStats is the Terminal's Stats, if it has them.
func terminalStats(t Terminal) (procs int, mem int64, ok bool) {
	st, isStatser := t.(statser)
	if !isStatser {
		return 0, 0, false
	}
	s, err := st.Stats()
	if err != nil {
		return 0, 0, false
	}
	return s.Processes, s.MemoryBytes, true
}
