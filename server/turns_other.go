//go:build !unix

package server

import "net"

func newBlockHookConn(nc net.Conn) *blockHookConn { return &blockHookConn{Conn: nc} }

func (c *blockHookConn) writeHooked(p []byte, _ *turn) (int, error) { return c.Conn.Write(p) }

func (c *blockHookConn) readHooked(p []byte) (int, error) { return c.Conn.Read(p) }
