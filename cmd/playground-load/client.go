//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/guntainer/playground/server/vt"
)

// The ttyd core of PROTOCOL.md, as a client sees it: nothing beyond it, so
// that the same client measures ttyd and anything else that speaks it.
const (
	subprotocol = "tty"
	cmdInput    = '0'
	msgOutput   = '0'
	msgSession  = '7' // extension (PROTOCOL.md): the session's id and keys
	initFrame   = `{"AuthToken": "", "columns": 80, "rows": 24}`
)

// initWith is an init frame with one extension field: "resume" or "watch"
// and its key.
func initWith(field, key string) string {
	b, _ := json.Marshal(map[string]any{"AuthToken": "", "columns": 80, "rows": 24, field: key}) // cannot fail for these types
	return string(b)
}

// sessionInfo is the SESSION extension a playground server sends first;
// ttyd sends none.
type sessionInfo struct {
	ID     string `json:"id"`
	Resume string `json:"resume"`
	Watch  string `json:"watch"`
}

// question is what every session is asked, and answer the line that says
// the shell has answered. The typed line is echoed first, so the answer is
// a line of its own, alone or after the prompt.
const (
	question = "echo $((6*7))\r"
	answer   = "42"
)

// session is a terminal the measurements drive: a WebSocket client of a
// server, or, for the raw baseline, a pty read by this process. A session
// is used by one goroutine at a time.
type session interface {
	// input types s.
	input(ctx context.Context, s string) error
	// output waits, at most until ctx's deadline, for the terminal's next
	// output and returns it, valid until the next call. Once it has failed
	// the session is broken and must be closed.
	output(ctx context.Context) ([]byte, error)
	// close ends the session; it returns once the session is closed on
	// this side.
	close()
	// abort cuts the session off at once. Unlike the other methods it may
	// be called while another goroutine waits in output, which it
	// unblocks; close must still follow, once that goroutine is done.
	abort()
}

// client is a session over a WebSocket.
type client struct {
	conn *websocket.Conn
	buf  []byte      // reused for every frame read
	info sessionInfo // the last SESSION, if the server sent one
}

var dialer = &websocket.Dialer{
	Subprotocols:     []string{subprotocol},
	HandshakeTimeout: 30 * time.Second,
	ReadBufferSize:   64 << 10,
	WriteBufferSize:  4 << 10,
}

// dial opens url and sends init, as ttyd's web client does.
func dial(ctx context.Context, url string) (*client, error) { return dialInit(ctx, url, initFrame) }

// dialInit opens url and sends the given init frame.
func dialInit(ctx context.Context, url, init string) (*client, error) {
	conn, resp, err := dialer.DialContext(ctx, url, http.Header{})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial %s: %w (HTTP %s)", url, err, resp.Status)
		}
		return nil, fmt.Errorf("dial %s: %w", url, err)
	}
	c := &client{conn: conn, buf: make([]byte, 0, 4<<10)}
	if err := c.write(ctx, []byte(init)); err != nil {
		_ = conn.Close() // failing already
		return nil, fmt.Errorf("send init: %w", err)
	}
	return c, nil
}

func (c *client) input(ctx context.Context, s string) error {
	msg := make([]byte, 0, 1+len(s))
	msg = append(append(msg, cmdInput), s...)
	return c.write(ctx, msg)
}

func (c *client) write(ctx context.Context, msg []byte) error {
	_ = c.conn.SetWriteDeadline(deadline(ctx)) // only records it
	return c.conn.WriteMessage(websocket.BinaryMessage, msg)
}

// output reads frames until an OUTPUT frame and returns its payload.
func (c *client) output(ctx context.Context) ([]byte, error) {
	_ = c.conn.SetReadDeadline(deadline(ctx)) // only records it
	for {
		_, r, err := c.conn.NextReader()
		if err != nil {
			return nil, closeReason(err)
		}
		c.buf = c.buf[:0]
		for {
			if len(c.buf) == cap(c.buf) {
				c.buf = append(c.buf, 0)[:len(c.buf)]
			}
			n, err := r.Read(c.buf[len(c.buf):cap(c.buf)])
			c.buf = c.buf[:len(c.buf)+n]
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, closeReason(err)
			}
		}
		if len(c.buf) > 0 && c.buf[0] == msgOutput {
			return c.buf[1:], nil
		}
		if len(c.buf) > 0 && c.buf[0] == msgSession {
			var si sessionInfo
			if json.Unmarshal(c.buf[1:], &si) == nil {
				c.info = si
			}
		}
	}
}

// waitFor reads output until done reports true of all output so far.
func waitFor(ctx context.Context, s session, what string, done func([]byte) bool) error {
	var out []byte
	for {
		b, err := s.output(ctx)
		if err != nil {
			return fmt.Errorf("waiting for %s: %w; output so far %q", what, err, tail(out))
		}
		out = append(out, b...)
		if done(out) {
			return nil
		}
	}
}

// ask asks the question and waits for the answer.
func ask(ctx context.Context, s session) error {
	if err := s.input(ctx, question); err != nil {
		return fmt.Errorf("type: %w", err)
	}
	return waitFor(ctx, s, "the answer "+answer, func(out []byte) bool { return hasLine(out, answer) })
}

// close ends the session as a closing browser tab does: a close frame,
// the server's answer (waited for at most a second, so that our close does
// not reset the connection before the server has read it), then the socket.
func (c *client) close() {
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
	if err := c.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second)); err == nil {
		_ = c.conn.SetReadDeadline(time.Now().Add(time.Second))
		for {
			if _, _, err := c.conn.NextReader(); err != nil {
				break // the server's close frame, its EOF, or the deadline
			}
		}
	}
	_ = c.conn.Close() // nothing more to say to this server
}

func (c *client) abort() { _ = c.conn.Close() } // cutting off is the point

// hasLine reports whether out has a complete line that is want, alone or
// after the prompt "$ ", as a terminal shows it (shownLine). A shell such
// as bash ends its bracketed paste mode before a command's output
// ("\x1b[?2004l\r"), as a server with its default shell at --url does.
func hasLine(out []byte, want string) bool {
	for line := range bytes.Lines(out) {
		line, complete := bytes.CutSuffix(line, []byte("\r\n"))
		if complete && strings.TrimPrefix(shownLine(line), "$ ") == want {
			return true
		}
	}
	return false
}

// shownLine is a line of output as the terminal model (server/vt) shows
// it: without its escape sequences, and with what a carriage return went
// back over written across. A line with neither is itself.
func shownLine(b []byte) string {
	if bytes.IndexByte(b, 0x1b) < 0 && bytes.IndexByte(b, '\r') < 0 {
		return string(b)
	}
	scr := vt.New(vt.MaxCols, 1, 0, 0)
	_, _ = scr.Write(b) // a Screen's Write does not fail
	return scr.Lines()[0]
}

// closeReason names a server's close code in a read error.
func closeReason(err error) error {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return closedError{ce}
	}
	return err
}

// closedError is a server's close, said as the close of a session.
type closedError struct{ *websocket.CloseError }

func (e closedError) Error() string {
	return fmt.Sprintf("server closed the session: %d %q", e.Code, e.Text)
}

func (e closedError) Unwrap() error { return e.CloseError }

func tail(b []byte) []byte {
	if len(b) > 200 {
		return b[len(b)-200:]
	}
	return b
}
