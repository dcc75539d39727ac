package server

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/rs/zerolog"
)

func TestNewChecksDeps(t *testing.T) {
	start := func(context.Context, StartRequest) (Terminal, error) { return nil, nil }
	static := fstest.MapFS{}
	tests := []struct {
		name    string
		cfg     Config
		deps    Deps
		wantErr string
	}{
		{"ok", Config{}, Deps{Start: start, Static: static}, ""},
		{"no start", Config{}, Deps{Static: static}, "Deps.Start is nil"},
		{"no static", Config{}, Deps{Start: start}, "Deps.Static is nil"},
		{"bad config", Config{MaxFrame: 1}, Deps{Start: start, Static: static}, "max frame"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.deps.Log = zerolog.Nop()
			_, err := New(tt.cfg, tt.deps)
			if got := errText(err); !strings.Contains(got, tt.wantErr) || (tt.wantErr == "") != (err == nil) {
				t.Errorf("New: error %q, want one containing %q", got, tt.wantErr)
			}
		})
	}
}

func TestHTTP(t *testing.T) {
	s := newTestServer(t, Config{})
	tests := []struct {
		path       string
		wantStatus int
		wantBody   string
	}{
		{"/", http.StatusOK, testIndex},
		{"/index.html", http.StatusMovedPermanently, ""}, // FileServer's canonical "/"
		{"/nope.js", http.StatusNotFound, ""},
		{"/healthz", http.StatusOK, "ok"},
		{"/token", http.StatusOK, `{"token":""}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, s.ts.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			client := *s.ts.Client()
			client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.wantStatus || (tt.wantBody != "" && string(body) != tt.wantBody) {
				t.Errorf("GET %s: %d %q, want %d %q", tt.path, resp.StatusCode, body, tt.wantStatus, tt.wantBody)
			}
		})
	}
}

func TestBasicAuth(t *testing.T) {
	s := newTestServer(t, Config{Credential: "teacher:s3cret"})
	tests := []struct {
		name       string
		path       string
		user, pass string
		wantStatus int
		wantBody   string
	}{
		{"token without auth", "/token", "", "", http.StatusUnauthorized, ""},
		{"token wrong password", "/token", "teacher", "nope", http.StatusUnauthorized, ""},
		{"token wrong user", "/token", "student", "s3cret", http.StatusUnauthorized, ""},
		{"token", "/token", "teacher", "s3cret", http.StatusOK, `{"token":"dGVhY2hlcjpzM2NyZXQ="}` + "\n"},
		{"page without auth", "/", "", "", http.StatusUnauthorized, ""},
		{"page", "/", "teacher", "s3cret", http.StatusOK, testIndex},
		{"healthz needs none", "/healthz", "", "", http.StatusOK, "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, hdr, body := s.get(t, tt.path, tt.user, tt.pass)
			if code != tt.wantStatus || (tt.wantBody != "" && body != tt.wantBody) {
				t.Errorf("GET %s: %d %q, want %d %q", tt.path, code, body, tt.wantStatus, tt.wantBody)
			}
			if code == http.StatusUnauthorized && !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("401 with WWW-Authenticate %q, want Basic", hdr.Get("WWW-Authenticate"))
			}
		})
	}
}

func TestHandshake(t *testing.T) {
	tests := []struct {
		name       string
		cfg        Config
		header     http.Header
		noProto    bool // dial without the tty subprotocol
		wantStatus int
	}{
		{"no origin", Config{}, nil, false, http.StatusSwitchingProtocols},
		{"same host", Config{}, http.Header{"Origin": {"http://HOST"}}, false, http.StatusSwitchingProtocols},
		{"foreign origin", Config{}, http.Header{"Origin": {"https://evil.example"}}, false, http.StatusForbidden},
		{"same host other port", Config{}, http.Header{"Origin": {"http://127.0.0.1:1"}}, false, http.StatusForbidden},
		{"null origin", Config{}, http.Header{"Origin": {"null"}}, false, http.StatusForbidden},
		{"allowed origin", Config{AllowedOrigins: []string{"https://class.example"}}, http.Header{"Origin": {"https://Class.Example:443"}}, false, http.StatusSwitchingProtocols},
		{"allowed other scheme", Config{AllowedOrigins: []string{"https://class.example"}}, http.Header{"Origin": {"http://class.example"}}, false, http.StatusForbidden},
		{"any origin", Config{AllowedOrigins: []string{"*"}}, http.Header{"Origin": {"https://evil.example"}}, false, http.StatusSwitchingProtocols},
		{"no subprotocol", Config{}, nil, true, http.StatusBadRequest},
		{"other subprotocol", Config{}, http.Header{"Sec-WebSocket-Protocol": {"chat"}}, true, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, tt.cfg)
			header := http.Header{}
			for k, v := range tt.header {
				header[k] = []string{strings.ReplaceAll(v[0], "HOST", strings.TrimPrefix(s.ts.URL, "http://"))}
			}
			d := *s.dialer()
			if tt.noProto {
				d.Subprotocols = nil
			}
			conn, resp, err := d.Dial(s.wsURL, header)
			if resp == nil {
				t.Fatalf("dial: %v, no response", err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("handshake status %d, want %d (%v)", resp.StatusCode, tt.wantStatus, err)
			}
			if conn == nil {
				return
			}
			c := newTestClient(t, conn)
			if got := conn.Subprotocol(); got != Subprotocol {
				t.Errorf("subprotocol %q, want %q", got, Subprotocol)
			}
			c.send(`{"columns": 80, "rows": 24}`)
			c.input("echo $((6*7))\r")
			c.waitLine("42")
		})
	}
}

func TestNotWebSocket(t *testing.T) {
	s := newTestServer(t, Config{})
	code, _, body := s.get(t, "/ws", "", "")
	if code != http.StatusBadRequest || !strings.Contains(body, "WebSocket") {
		t.Errorf("plain GET /ws: %d %q, want %d and a word about WebSocket", code, body, http.StatusBadRequest)
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
