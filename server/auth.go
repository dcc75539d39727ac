package server

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// auth decides who a request is. Any of the configured ways will do:
//
//   - basic auth with Config.Credential, as ttyd's -c; the init frame's
//     AuthToken must then also be the credential, base64-encoded, as the
//     page gets it from /token (a second, independent check before any
//     container is started, because ttyd does it and its clients send it);
//   - Config.Token as ?token= (which sets a cookie, so the page can drop
//     it from the address bar), the cookie, "Authorization: Bearer", or a
//     WebSocket's init AuthToken;
//   - Config.AuthHeader, from a trusted proxy: the user's name;
//   - Config.AdminToken as "Authorization: Bearer", which also opens /api.
//
// With none configured every request is let in, anonymous.
type auth struct {
	user, pass string
	basicToken string // base64("user:pass"); empty when basic auth is off
	token      string
	admin      string
	header     string
	trusted    []netip.Prefix
}

// CookieName is the cookie that carries Config.Token.
const CookieName = "playground_token"

const cookieMaxAge = 7 * 24 * time.Hour

func newAuth(cfg Config, trusted []netip.Prefix) *auth {
	a := &auth{token: cfg.Token, admin: cfg.AdminToken, header: cfg.AuthHeader, trusted: trusted}
	if cfg.Credential != "" {
		a.user, a.pass, _ = strings.Cut(cfg.Credential, ":") // Validate checked the form
		a.basicToken = base64.StdEncoding.EncodeToString([]byte(cfg.Credential))
	}
	return a
}

// on reports whether requests need a credential.
func (a *auth) on() bool { return a.basicToken != "" || a.token != "" || a.header != "" }

// identity is who a request is.
type identity struct {
	ok        bool   // authenticated (or auth is off)
	user      string // a name, when the credential carries one
	admin     bool   // the admin token
	fromQuery bool   // the token came as ?token=: set the cookie
}

type identityKey struct{}

func identityOf(r *http.Request) identity {
	id, _ := r.Context().Value(identityKey{}).(identity)
	return id
}

func ctEqual(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

func (a *auth) identify(r *http.Request, remote netip.Addr) identity {
	var id identity
	bearer, hasBearer := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if hasBearer && a.admin != "" && ctEqual(a.admin, bearer) {
		id.ok, id.admin, id.user = true, true, "admin"
	}
	if a.basicToken != "" {
		if user, pass, ok := r.BasicAuth(); ok {
			u := subtle.ConstantTimeCompare([]byte(user), []byte(a.user))
			p := subtle.ConstantTimeCompare([]byte(pass), []byte(a.pass))
			if u&p == 1 {
				id.ok, id.user = true, user
			}
		}
	}
	if a.token != "" {
		switch q := r.URL.Query().Get("token"); {
		case q != "" && ctEqual(a.token, q):
			id.ok, id.fromQuery = true, true
		case hasBearer && ctEqual(a.token, bearer):
			id.ok = true
		default:
			if c, err := r.Cookie(CookieName); err == nil && ctEqual(a.token, c.Value) {
				id.ok = true
			}
		}
	}
	if a.header != "" && trustedAddr(a.trusted, remote) {
		if u := strings.TrimSpace(r.Header.Get(a.header)); u != "" {
			id.ok, id.user = true, u
		}
	}
	if !a.on() {
		id.ok = true
	}
	return id
}

// initOK checks an init frame's AuthToken against the handshake's
// identity: see auth.
func (a *auth) initOK(id identity, authToken string) bool {
	if a.basicToken != "" && !ctEqual(a.basicToken, authToken) {
		return false
	}
	return id.ok || ctEqual(a.token, authToken) || ctEqual(a.admin, authToken)
}

// probe paths answer anyone, for any Host: load balancers and Prometheus
// ask by IP or by a service name.
func isProbe(path string) bool {
	return path == "/healthz" || path == "/readyz" || path == "/metrics"
}

// checkRequest is the gate in front of every endpoint: the Host must be
// one of the server's own (DNS rebinding), and the request must be
// authenticated, except the probes. /ws may authenticate in its init frame
// instead (ttyd clients put the token there), /api answers in JSON.
func (s *Server) checkRequest(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isProbe(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		if err := s.hosts.check(r); err != nil {
			s.log.Warn().Str("host", r.Host).Str("remote", r.RemoteAddr).Str("path", r.URL.Path).Msg("request refused: host not allowed")
			s.metrics.rejected.WithLabelValues("host").Inc()
			if strings.HasPrefix(r.URL.Path, "/api/") {
				apiError(w, http.StatusForbidden, err.Error())
				return
			}
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		id := s.auth.identify(r, remoteAddr(r))
		if id.fromQuery {
			http.SetCookie(w, &http.Cookie{
				Name:     CookieName,
				Value:    s.auth.token,
				Path:     "/",
				MaxAge:   int(cookieMaxAge / time.Second),
				HttpOnly: true,
				Secure:   s.isHTTPS(r),
				SameSite: http.SameSiteStrictMode,
			})
		}
		switch {
		case id.ok, strings.HasPrefix(r.URL.Path, "/api/"):
			// /api checks the admin token itself, and answers in JSON.
		case r.URL.Path == "/ws" && s.auth.basicToken == "":
			// The init frame may carry the token: checked before any start.
		default:
			s.metrics.rejected.WithLabelValues("auth").Inc()
			if s.auth.basicToken != "" {
				w.Header().Set("WWW-Authenticate", `Basic realm="playground", charset="UTF-8"`)
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(unauthorizedText)) // a write error means the client left
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), identityKey{}, id)))
	})
}

const unauthorizedText = "401 unauthorized: this playground needs a credential. " +
	"Open the address the server printed when it started (it carries ?token=...), " +
	"or ask whoever runs it.\n"

// isHTTPS reports whether the client reached the server over TLS, itself
// or through a trusted proxy that says so.
func (s *Server) isHTTPS(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	return trustedAddr(s.trusted, remoteAddr(r)) && strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}
