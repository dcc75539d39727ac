package server

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// originPolicy decides which web pages may open a WebSocket. Browsers send
// cookies and basic auth with a cross-site WebSocket handshake, so without
// this check any site a logged-in user visits could drive their terminal
// (cross-site WebSocket hijacking).
type originPolicy struct {
	any     bool
	allowed map[string]bool // normalized "scheme://host:port"
}

func newOriginPolicy(origins []string) (originPolicy, error) {
	p := originPolicy{allowed: make(map[string]bool)}
	for _, o := range origins {
		if o == "*" {
			p.any = true
			continue
		}
		n, err := normalizeOrigin(o)
		if err != nil {
			return originPolicy{}, fmt.Errorf("allowed origin %q: %w", o, err)
		}
		p.allowed[n] = true
	}
	return p, nil
}

// check returns nil when r may open a WebSocket, else an error to show.
//
// A request without Origin is allowed: browsers always send one on a
// WebSocket handshake, so its absence means a non-browser client, which
// could forge any Origin anyway.
func (p originPolicy) check(r *http.Request) error {
	origin := r.Header.Get("Origin")
	if origin == "" || p.any {
		return nil
	}
	n, err := normalizeOrigin(origin)
	if err != nil {
		return fmt.Errorf("origin %q not allowed: %w", origin, err)
	}
	u, _ := url.Parse(n) // normalizeOrigin's output always parses
	if host, err := normalizeHost(r.Host, defaultPort(u.Scheme)); err == nil && host == u.Host {
		return nil
	}
	if p.allowed[n] {
		return nil
	}
	return fmt.Errorf("origin %q not allowed", origin)
}

// normalizeOrigin turns "HTTPS://Example.com" into "https://example.com:443",
// so that equal origins compare equal as strings.
func normalizeOrigin(origin string) (string, error) {
	u, err := url.Parse(origin)
	if err != nil {
		return "", errors.New("not a URL")
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", errors.New(`want "http://host" or "https://host"`)
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", errors.New("an origin is only scheme://host[:port]")
	}
	host, err := normalizeHost(u.Host, defaultPort(scheme))
	if err != nil {
		return "", err
	}
	return scheme + "://" + host, nil
}

// normalizeHost lower-cases host and adds the port when it has none.
func normalizeHost(host, port string) (string, error) {
	if host == "" {
		return "", errors.New("no host")
	}
	h, p, err := net.SplitHostPort(host)
	if err != nil {
		// No port; a bracketed IPv6 literal keeps its brackets in Host.
		h, p = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), port
	}
	if h == "" || p == "" {
		return "", errors.New("bad host")
	}
	return net.JoinHostPort(strings.ToLower(h), p), nil
}

func defaultPort(scheme string) string {
	if scheme == "https" {
		return "443"
	}
	return "80"
}
