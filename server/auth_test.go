package server

import (
	"net/http"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

func TestTokenAuth(t *testing.T) {
	const token = "class-3b-5f0c2a9e"
	s := newTestServer(t, Config{Token: token}, withStart(plainStart(t)))
	do := func(path string, h http.Header) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", s.ts.URL+path, nil)
		for k, v := range h {
			req.Header[k] = v
		}
		resp, err := s.ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp
	}
	if r := do("/", nil); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET / without the token: %d, want 401", r.StatusCode)
	}
	if r := do("/?token=nope", nil); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /?token=nope: %d, want 401", r.StatusCode)
	}
	r := do("/?token="+token, nil)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("GET /?token=TOKEN: %d, want 200", r.StatusCode)
	}
	var cookie *http.Cookie
	for _, c := range r.Cookies() {
		if c.Name == CookieName {
			cookie = c
		}
	}
	if cookie == nil || cookie.Value != token || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/" || cookie.MaxAge <= 0 {
		t.Fatalf("cookie %+v: want %s=TOKEN, HttpOnly, SameSite=Strict, Path=/", cookie, CookieName)
	}
	withCookie := http.Header{"Cookie": {cookie.String()}}
	for _, h := range []http.Header{withCookie, {"Authorization": {"Bearer " + token}}} {
		if r := do("/", h); r.StatusCode != http.StatusOK {
			t.Errorf("GET / with %v: %d, want 200", h, r.StatusCode)
		}
	}
	if r := do("/healthz", nil); r.StatusCode != http.StatusOK {
		t.Errorf("/healthz needs no token: %d", r.StatusCode)
	}
	if code, _, body := s.get(t, "/token", "", ""); code != http.StatusUnauthorized {
		t.Errorf("/token without the token: %d %q", code, body)
	}

	// /ws: the cookie (the page), or the init's AuthToken (ttyd's clients).
	tests := []struct {
		name   string
		header http.Header
		init   string
		ok     bool
	}{
		{"cookie", withCookie, `{"columns": 80, "rows": 24}`, true},
		{"init token", nil, `{"AuthToken": "` + token + `", "columns": 80, "rows": 24}`, true},
		{"nothing", nil, `{"columns": 80, "rows": 24}`, false},
		{"wrong init token", nil, `{"AuthToken": "nope", "columns": 80, "rows": 24}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := s.starts.calls.Load()
			c := s.open(t, tt.init, tt.header)
			if tt.ok {
				c.input("echo $((6*7))\r")
				c.waitLine("42")
				return
			}
			if code, _, _ := c.waitClose(); code != websocket.ClosePolicyViolation {
				t.Errorf("close %d, want 1008", code)
			}
			if s.starts.calls.Load() != before {
				t.Error("a terminal was started without the token")
			}
		})
	}
}

func TestAuthHeader(t *testing.T) {
	t.Run("from a trusted proxy", func(t *testing.T) {
		s := newTestServer(t, Config{AuthHeader: "X-Forwarded-User", TrustedProxies: []string{"127.0.0.1"}, AdminToken: "adm"}, withStart(plainStart(t)))
		h := http.Header{"X-Forwarded-User": {"ada"}}
		c := s.open(t, "", h)
		c.waitOutput("$ ")
		var list struct{ Sessions []SessionInfo }
		s.apiGet(t, "/api/sessions", "adm", &list)
		if len(list.Sessions) != 1 || list.Sessions[0].User != "ada" {
			t.Errorf("sessions %+v, want user ada", list.Sessions)
		}
		// Without the header, the handshake is let through (a token
		// could come in init), but an init without one is refused.
		c2 := s.open(t, "", nil)
		if code, _, _ := c2.waitClose(); code != websocket.ClosePolicyViolation {
			t.Errorf("no header: close %d, want 1008", code)
		}
	})
	t.Run("from anyone else", func(t *testing.T) {
		s := newTestServer(t, Config{AuthHeader: "X-Forwarded-User", TrustedProxies: []string{"10.0.0.0/8"}}, withStart(plainStart(t)))
		req, _ := http.NewRequest("GET", s.ts.URL+"/", nil)
		req.Header.Set("X-Forwarded-User", "ada")
		resp, err := s.ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET / with the header from an untrusted peer: %d, want 401", resp.StatusCode)
		}
		c := s.open(t, "", http.Header{"X-Forwarded-User": {"ada"}})
		if code, _, _ := c.waitClose(); code != websocket.ClosePolicyViolation {
			t.Errorf("session with a forged header: close %d, want 1008", code)
		}
	})
}

func TestAnyOriginNeedsNoCredential(t *testing.T) {
	for _, cfg := range []Config{
		{AllowedOrigins: []string{"*"}, Token: "t"},
		{AllowedOrigins: []string{"*"}, Credential: "u:p"},
		{AllowedOrigins: []string{"*"}, AdminToken: "a"},
		{AllowedOrigins: []string{"*"}, AuthHeader: "X-User", TrustedProxies: []string{"10.0.0.1"}},
	} {
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), `"*"`) {
			t.Errorf("Validate(%+v) = %v, want origin * refused with a credential", cfg, err)
		}
	}
	if err := (Config{AllowedOrigins: []string{"*"}}).Validate(); err != nil {
		t.Errorf("origin * without a credential: %v", err)
	}
}
