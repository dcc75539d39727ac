package server

// The wire protocol of docs/PROTOCOL.md: ttyd's, byte for byte, plus extensions a
// ttyd client ignores. Everything here is pure decoding and encoding, so the
// fuzzers can reach it without a network.

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"github.com/guntainer/playground/runtime"
)

// Subprotocol is the WebSocket subprotocol ttyd speaks; /ws requires it.
const Subprotocol = "tty"

// Client to server: the first byte of every frame.
const (
	cmdInput  = '0' // bytes for the terminal
	cmdResize = '1' // JSON {"columns": C, "rows": R}
	cmdPause  = '2' // stop sending output
	cmdResume = '3' // send output again
	cmdInit   = '{' // the whole frame is the init JSON; first frame only
)

// Server to client: the first byte of every frame.
const (
	msgOutput      = '0'
	msgTitle       = '1'
	msgPreferences = '2'
	msgSession     = '7' // extension
	msgExit        = '8' // extension
	msgNotice      = '9' // extension
)

// Close codes beyond RFC 6455's.
const (
	closeUnknownKey = 4404 // resume or watch key unknown or expired
	closeTakenOver  = 4409 // a newer connection resumed the session
)

// maxCloseText is what fits in a close frame: a control frame carries at
// most 125 bytes, two of them the code.
const maxCloseText = 123

// Terminal sizes: what a client may ask for, and what it gets when it does
// not say.
const (
	maxTermSize = 1000
	defaultCols = 80
	defaultRows = 24
)

// closeError is why a connection is being closed: the close code and a short
// text for the close frame, safe to show to the client.
type closeError struct {
	code int
	text string
}

func (e *closeError) Error() string { return fmt.Sprintf("close %d: %s", e.code, e.text) }

func protocolError(format string, args ...any) *closeError {
	return &closeError{code: websocket.CloseProtocolError, text: fmt.Sprintf(format, args...)}
}

// initMsg is a decoded init frame.
type initMsg struct {
	AuthToken  string
	Cols, Rows uint16
	Resume     string // extension: reattach to a living session
	Watch      string // extension: follow a living session read-only
	Env        string // extension: which environment (root file system)
}

// parseInit decodes the first frame of a connection. Missing columns or rows
// mean 80x24; present ones must be within 1..1000. Unknown fields are
// ignored, so that newer clients still reach older servers.
func parseInit(frame []byte) (initMsg, *closeError) {
	if len(frame) == 0 || frame[0] != cmdInit {
		return initMsg{}, protocolError("first frame must be init")
	}
	var raw struct {
		AuthToken string `json:"AuthToken"`
		Columns   *int   `json:"columns"`
		Rows      *int   `json:"rows"`
		Resume    string `json:"resume"`
		Watch     string `json:"watch"`
		Env       string `json:"env"`
	}
	if err := json.Unmarshal(frame, &raw); err != nil {
		return initMsg{}, protocolError("init: bad JSON")
	}
	m := initMsg{AuthToken: raw.AuthToken, Resume: raw.Resume, Watch: raw.Watch, Env: raw.Env}
	var cerr *closeError
	if m.Cols, cerr = termSize("init", "columns", raw.Columns, defaultCols); cerr != nil {
		return initMsg{}, cerr
	}
	if m.Rows, cerr = termSize("init", "rows", raw.Rows, defaultRows); cerr != nil {
		return initMsg{}, cerr
	}
	return m, nil
}

// parseCommand splits a frame after init into its command byte and payload.
func parseCommand(frame []byte) (byte, []byte, *closeError) {
	if len(frame) == 0 {
		return 0, nil, protocolError("empty frame")
	}
	switch frame[0] {
	case cmdInput, cmdResize, cmdPause, cmdResume:
		return frame[0], frame[1:], nil
	case cmdInit:
		return 0, nil, protocolError("init sent twice")
	default:
		return 0, nil, protocolError("unknown command %q", frame[0])
	}
}

// parseResize decodes a RESIZE_TERMINAL payload. Unlike init, both sizes
// are required: a resize without a size is a client bug worth hearing of.
func parseResize(payload []byte) (cols, rows uint16, _ *closeError) {
	var raw struct {
		Columns *int `json:"columns"`
		Rows    *int `json:"rows"`
	}
	if err := json.Unmarshal(payload, &raw); err != nil {
		return 0, 0, protocolError("resize: bad JSON")
	}
	if raw.Columns == nil || raw.Rows == nil {
		return 0, 0, protocolError("resize: columns and rows required")
	}
	var cerr *closeError
	if cols, cerr = termSize("resize", "columns", raw.Columns, 0); cerr != nil {
		return 0, 0, cerr
	}
	if rows, cerr = termSize("resize", "rows", raw.Rows, 0); cerr != nil {
		return 0, 0, cerr
	}
	return cols, rows, nil
}

func termSize(what, name string, v *int, def uint16) (uint16, *closeError) {
	if v == nil {
		return def, nil
	}
	if *v < 1 || *v > maxTermSize {
		return 0, protocolError("%s: %s must be 1 to %d", what, name, maxTermSize)
	}
	return uint16(*v), nil
}

// frame prepends the command byte to payload.
func frame(cmd byte, payload []byte) []byte {
	b := make([]byte, 0, 1+len(payload))
	return append(append(b, cmd), payload...)
}

// sessionInfo is the SESSION message. The owner gets the keys and limits;
// a watcher gets the id and the terminal's size, which it cannot change.
type sessionInfo struct {
	ID          string `json:"id"`
	Resume      string `json:"resume,omitempty"`
	Watch       string `json:"watch,omitempty"`
	IdleTimeout int64  `json:"idleTimeout,omitempty"`
	MaxLifetime int64  `json:"maxLifetime,omitempty"`
	Columns     uint16 `json:"columns,omitempty"`
	Rows        uint16 `json:"rows,omitempty"`
	Route       string `json:"route,omitempty"`
}

func sessionPayload(info sessionInfo) []byte {
	b, _ := json.Marshal(info) // strings and ints always marshal
	return b
}

// noticePayload is the NOTICE message.
func noticePayload(level, text string) []byte {
	b, _ := json.Marshal(struct {
		Level string `json:"level"`
		Text  string `json:"text"`
	}{level, strings.ToValidUTF8(text, "?")})
	return b
}

// exitPayload is the EXIT message: {"code": N}, or {"code": -1, "signal":
// "KILL"} when a signal ended the program, with "reason" when it is known.
func exitPayload(st runtime.ExitStatus, reason string) []byte {
	var msg struct {
		Code   int    `json:"code"`
		Signal string `json:"signal,omitempty"`
		Reason string `json:"reason,omitempty"`
	}
	msg.Code, msg.Reason = st.Code, reason
	if st.Signaled() {
		msg.Code, msg.Signal = -1, runtime.SignalName(st.Signal)
	}
	b, _ := json.Marshal(msg) // ints and strings always marshal
	return b
}

// closeText makes s fit a close frame: valid UTF-8, one line, at most
// maxCloseText bytes, cut at a rune boundary.
func closeText(s string) string {
	s = strings.ToValidUTF8(s, "?")
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= maxCloseText {
		return s
	}
	cut := maxCloseText
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}
