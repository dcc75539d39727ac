package server

import (
	"context"
	"io"

	"github.com/guntainer/playground/runtime"
)

// Terminal is a program running on a pty: a container from runtime, or a
// plain shell in tests and baselines.
//
// A session uses its Terminal from two goroutines: one reads (and, once Read
// fails, calls Wait), the other writes and resizes. Close may be called from
// any goroutine, at any time, more than once.
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

// StartFunc starts a terminal of the given size. The error's text may be
// shown to the client, so it must not leak secrets.
//
// ctx is canceled when the session ends, which can happen while StartFunc is
// still running (server shutdown, the start timeout): StartFunc should give
// up then. The server Closes every terminal it got, so a terminal need not
// watch ctx once started, but it may end itself when ctx is done.
type StartFunc func(ctx context.Context, cols, rows uint16) (Terminal, error)

// ContainerStart is the StartFunc that starts a container from spec for
// each session, at the session's terminal size.
func ContainerStart(spec runtime.Spec) StartFunc {
	return func(_ context.Context, cols, rows uint16) (Terminal, error) {
		s := spec
		s.Cols, s.Rows = cols, rows
		c, err := runtime.Start(s)
		if err != nil {
			return nil, err // a nil *Container must not become a non-nil Terminal
		}
		return c, nil
	}
}
