package server

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
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

// hostPolicy decides which Host names the server answers to. A page on
// an attacker's name that resolves to this server (DNS rebinding) sends
// that name as Host, and as Origin, so an Origin that matches the Host
// proves nothing by itself: the Host must be one of the server's own.
//
// Allowed: the address the connection came in on (for a server listening
// on every address, whichever one the client used: an address cannot be
// rebound, only a name can), "localhost", 127.0.0.1 and ::1 when the
// connection is over loopback, and Config.AllowedHosts. The port is not
// checked: a proxy may change it, and rebinding is about the name.
type hostPolicy struct {
	allowed map[string]bool // lower-case names and addresses
}

func newHostPolicy(hosts []string) hostPolicy {
	p := hostPolicy{allowed: map[string]bool{"localhost": true}}
	for _, h := range hosts {
		p.allowed[strings.ToLower(strings.Trim(h, "[]"))] = true
	}
	return p
}

func (p hostPolicy) check(r *http.Request) error {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	if host == "" {
		return errors.New("host not allowed: the request names no host")
	}
	if p.allowed[host] {
		return nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		local := localAddr(r)
		if a.Unmap() == local {
			return nil
		}
		if local.IsLoopback() && a.Unmap().IsLoopback() {
			return nil
		}
	}
	return fmt.Errorf("host %q not allowed: this server answers to its own addresses, localhost, and the names given with --allowed-host", host)
}

// localAddr is the address the request's connection came in on.
func localAddr(r *http.Request) netip.Addr {
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			return ap.Addr().Unmap()
		}
	}
	return netip.Addr{}
}
