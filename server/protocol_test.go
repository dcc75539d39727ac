package server

import (
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"unicode/utf8"

	"github.com/guntainer/playground/runtime"
)

func TestParseInit(t *testing.T) {
	tests := []struct {
		name     string
		frame    string
		want     initMsg
		wantCode int // 0: accepted
	}{
		{"ttyd", `{"AuthToken": "t", "columns": 120, "rows": 40}`, initMsg{AuthToken: "t", Cols: 120, Rows: 40}, 0},
		{"defaults", `{}`, initMsg{Cols: 80, Rows: 24}, 0},
		{"null size", `{"columns": null, "rows": null}`, initMsg{Cols: 80, Rows: 24}, 0},
		{"extensions", `{"resume": "r", "watch": "w", "env": "e"}`, initMsg{Cols: 80, Rows: 24, Resume: "r", Watch: "w", Env: "e"}, 0},
		{"unknown field ignored", `{"columns": 1, "rows": 1000, "future": [1]}`, initMsg{Cols: 1, Rows: 1000}, 0},
		{"empty", ``, initMsg{}, 1002},
		{"not init", `0ls`, initMsg{}, 1002},
		{"not an object", `{`, initMsg{}, 1002},
		{"trailing", `{} {}`, initMsg{}, 1002},
		{"zero columns", `{"columns": 0}`, initMsg{}, 1002},
		{"too many rows", `{"rows": 1001}`, initMsg{}, 1002},
		{"negative", `{"rows": -24}`, initMsg{}, 1002},
		{"overflow", `{"rows": 99999999999999999999}`, initMsg{}, 1002},
		{"string size", `{"rows": "24"}`, initMsg{}, 1002},
		{"token not a string", `{"AuthToken": 1}`, initMsg{}, 1002},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, cerr := parseInit([]byte(tt.frame))
			if code := closeCode(cerr); code != tt.wantCode {
				t.Fatalf("parseInit(%q): close %d (%v), want %d", tt.frame, code, cerr, tt.wantCode)
			}
			if got != tt.want {
				t.Errorf("parseInit(%q) = %+v, want %+v", tt.frame, got, tt.want)
			}
		})
	}
}

func TestParseResize(t *testing.T) {
	tests := []struct {
		payload          string
		wantCols, wantRo uint16
		wantCode         int
	}{
		{`{"columns": 100, "rows": 30}`, 100, 30, 0},
		{`{"rows": 1, "columns": 1000}`, 1000, 1, 0},
		{`{"columns": 100}`, 0, 0, 1002},
		{`{"rows": 30}`, 0, 0, 1002},
		{`{"columns": 0, "rows": 0}`, 0, 0, 1002},
		{`{"columns": 65535, "rows": 65535}`, 0, 0, 1002},
		{`{"columns": 65536, "rows": 1}`, 0, 0, 1002},
		{`{"columns": 1.5, "rows": 1}`, 0, 0, 1002},
		{`[100, 30]`, 0, 0, 1002},
		{``, 0, 0, 1002},
	}
	for _, tt := range tests {
		t.Run(tt.payload, func(t *testing.T) {
			cols, rows, cerr := parseResize([]byte(tt.payload))
			if code := closeCode(cerr); code != tt.wantCode || cols != tt.wantCols || rows != tt.wantRo {
				t.Errorf("parseResize(%q) = %d, %d, close %d; want %d, %d, close %d", tt.payload, cols, rows, code, tt.wantCols, tt.wantRo, tt.wantCode)
			}
		})
	}
}

func TestParseCommand(t *testing.T) {
	tests := []struct {
		frame       string
		wantCmd     byte
		wantPayload string
		wantCode    int
	}{
		{"0ls\r", cmdInput, "ls\r", 0},
		{"0", cmdInput, "", 0},
		{`1{"columns":1,"rows":1}`, cmdResize, `{"columns":1,"rows":1}`, 0},
		{"2", cmdPause, "", 0},
		{"3", cmdResume, "", 0},
		{"", 0, "", 1002},
		{"{}", 0, "", 1002},
		{"4", 0, "", 1002},
		{"\xff", 0, "", 1002},
	}
	for _, tt := range tests {
		t.Run(tt.frame, func(t *testing.T) {
			cmd, payload, cerr := parseCommand([]byte(tt.frame))
			if code := closeCode(cerr); code != tt.wantCode || cmd != tt.wantCmd || string(payload) != tt.wantPayload {
				t.Errorf("parseCommand(%q) = %q, %q, close %d; want %q, %q, close %d", tt.frame, cmd, payload, code, tt.wantCmd, tt.wantPayload, tt.wantCode)
			}
		})
	}
}

func TestExitPayload(t *testing.T) {
	tests := []struct {
		name   string
		st     runtime.ExitStatus
		reason string
		want   string
	}{
		{"zero", runtime.ExitStatus{}, "", `{"code":0}`},
		{"code", runtime.ExitStatus{Code: 3}, "", `{"code":3}`},
		{"signal", runtime.ExitStatus{Code: -1, Signal: syscall.SIGKILL}, "", `{"code":-1,"signal":"KILL"}`},
		{"signal with reason", runtime.ExitStatus{Code: -1, Signal: syscall.SIGKILL}, "memory limit", `{"code":-1,"signal":"KILL","reason":"memory limit"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(exitPayload(tt.st, tt.reason)); got != tt.want {
				t.Errorf("exitPayload(%+v, %q) = %s, want %s", tt.st, tt.reason, got, tt.want)
			}
		})
	}
}

func TestCloseText(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"short", "bad JSON", "bad JSON"},
		{"newlines", "a\n\tb ", "a b"},
		{"invalid UTF-8", "a\xffb", "a?b"},
		{"long ASCII", strings.Repeat("x", 200), strings.Repeat("x", maxCloseText)},
		{"long, cut at a rune", strings.Repeat("€", 50), strings.Repeat("€", maxCloseText/3)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := closeText(tt.in); got != tt.want {
				t.Errorf("closeText(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func closeCode(cerr *closeError) int {
	if cerr == nil {
		return 0
	}
	return cerr.code
}

// checkCloseError is what every decoder error must be: a protocol error
// with a text that fits a close frame.
func checkCloseError(t *testing.T, in []byte, cerr *closeError) {
	t.Helper()
	if cerr.code != 1002 {
		t.Errorf("%q: close code %d, want 1002", in, cerr.code)
	}
	if txt := closeText(cerr.text); txt != cerr.text {
		t.Errorf("%q: close text %q does not fit a close frame", in, cerr.text)
	}
}

func FuzzParseInit(f *testing.F) {
	for _, s := range []string{
		`{"AuthToken": "t", "columns": 120, "rows": 40}`, `{}`, `{"columns": 0}`, `{"rows": 1e3}`,
		`{"resume": "k", "watch": "w", "env": "e"}`, `0ls`, ``, `{"columns": 1000, "rows": 1}`, "{\"AuthToken\": \"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		m, cerr := parseInit(in)
		if cerr != nil {
			checkCloseError(t, in, cerr)
			return
		}
		if m.Cols < 1 || m.Cols > maxTermSize || m.Rows < 1 || m.Rows > maxTermSize {
			t.Errorf("%q: accepted size %dx%d", in, m.Cols, m.Rows)
		}
		if !json.Valid(in) || in[0] != '{' {
			t.Errorf("%q: accepted, but it is not a JSON object", in)
		}
	})
}

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{
		"0ls\r", "0", `1{"columns": 100, "rows": 30}`, `1{"columns": 0, "rows": 0}`, "1[]", "2", "3", "", "{}", "9", "\x00",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		cmd, payload, cerr := parseCommand(in)
		if cerr != nil {
			checkCloseError(t, in, cerr)
			return
		}
		if len(payload) != len(in)-1 {
			t.Errorf("%q: payload %q is not the rest of the frame", in, payload)
		}
		if cmd != cmdResize {
			return
		}
		cols, rows, cerr := parseResize(payload)
		if cerr != nil {
			checkCloseError(t, in, cerr)
			return
		}
		if cols < 1 || cols > maxTermSize || rows < 1 || rows > maxTermSize {
			t.Errorf("%q: accepted size %dx%d", in, cols, rows)
		}
	})
}

func FuzzCloseText(f *testing.F) {
	for _, s := range []string{"", "bad", strings.Repeat("é", 100), "a\xffb\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got := closeText(in)
		if len(got) > maxCloseText || !utf8.ValidString(got) {
			t.Errorf("closeText(%q) = %q: want valid UTF-8 of at most %d bytes", in, got, maxCloseText)
		}
	})
}
