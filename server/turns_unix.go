//go:build unix

package server

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
)

func newBlockHookConn(nc net.Conn) *blockHookConn {
	c := &blockHookConn{Conn: nc}
	if sc, ok := nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			c.raw = rc
		}
	}
	return c
}

// writeHooked writes p as net.Conn's Write does (the whole of it, within
// the write deadline), through the socket itself so that it sees the
// moment the kernel has no room: t ends then, before the wait.
func (c *blockHookConn) writeHooked(p []byte, t *turn) (int, error) {
	n := 0
	var werr error
	err := c.raw.Write(func(fd uintptr) bool {
		for n < len(p) {
			m, e := syscall.Write(int(fd), p[n:])
			if m > 0 {
				n += m
			}
			switch {
			case e == nil && m == 0:
				werr = io.ErrUnexpectedEOF
				return true
			case e == nil:
			case errors.Is(e, syscall.EINTR):
			case errors.Is(e, syscall.EAGAIN):
				t.end()
				return false // the poller waits for room, within the deadline
			default:
				werr = os.NewSyscallError("write", e)
				return true
			}
		}
		return true
	})
	if err == nil {
		err = werr
	}
	if err != nil {
		return n, c.opError("write", err)
	}
	return n, nil
}

// opError is err as net.Conn's Read and Write return it: a *net.OpError.
func (c *blockHookConn) opError(op string, err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		return err
	}
	return &net.OpError{Op: op, Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// readHooked reads as net.Conn's Read does, through the socket itself, so
// that it sees whether the client's data was there: when it was not, the
// reader's turn ends before the wait, and waited records it.
func (c *blockHookConn) readHooked(p []byte) (int, error) {
	n := 0
	var rerr error
	err := c.raw.Read(func(fd uintptr) bool {
		for {
			m, e := syscall.Read(int(fd), p)
			switch {
			case e == nil:
				n = max(m, 0)
				if m == 0 && len(p) > 0 {
					rerr = io.EOF
				}
				return true
			case errors.Is(e, syscall.EINTR):
			case errors.Is(e, syscall.EAGAIN):
				c.waited = true
				c.endReadTurn()
				return false // the poller waits for data, within the deadline
			default:
				rerr = os.NewSyscallError("read", e)
				return true
			}
		}
	})
	if err == nil {
		err = rerr
	}
	switch {
	case err == nil:
		return n, nil
	case err == io.EOF:
		return n, io.EOF // as net.Conn's Read says it: bare
	}
	return n, c.opError("read", err)
}
