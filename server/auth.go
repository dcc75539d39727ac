package server

import (
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"strings"
)

// auth is ttyd's -c: HTTP basic auth on every endpoint but /healthz, and the
// same credential, base64-encoded, as the token the page fetches from /token
// and sends in its init frame. The token is checked as well as basic auth
// because ttyd does and its clients send it: a second, independent check
// before any container is started.
type auth struct {
	user, pass string
	token      string // base64("user:pass"); empty when auth is off
}

func newAuth(credential string) auth {
	if credential == "" {
		return auth{}
	}
	user, pass, _ := strings.Cut(credential, ":") // Validate checked the form
	return auth{user: user, pass: pass, token: base64.StdEncoding.EncodeToString([]byte(credential))}
}

func (a auth) on() bool { return a.token != "" }

// basicOK reports whether r carries the credential. The comparisons take
// the same time whatever the input, so response times do not leak it.
func (a auth) basicOK(r *http.Request) bool {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return false
	}
	u := subtle.ConstantTimeCompare([]byte(user), []byte(a.user))
	p := subtle.ConstantTimeCompare([]byte(pass), []byte(a.pass))
	return u&p == 1
}

// tokenOK reports whether an init frame's AuthToken is the token.
func (a auth) tokenOK(token string) bool {
	return !a.on() || subtle.ConstantTimeCompare([]byte(token), []byte(a.token)) == 1
}

// middleware asks for basic auth on every path but /healthz, which probes
// must reach without a secret.
func (a auth) middleware(next http.Handler) http.Handler {
	if !a.on() {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" && !a.basicOK(r) {
			w.Header().Set("WWW-Authenticate", `Basic realm="playground", charset="UTF-8"`)
			http.Error(w, "401 unauthorized", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}
