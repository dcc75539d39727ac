package server

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// remoteAddr is the address of the request's peer.
func remoteAddr(r *http.Request) netip.Addr {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr().Unmap()
	}
	if a, err := netip.ParseAddr(r.RemoteAddr); err == nil {
		return a.Unmap()
	}
	return netip.Addr{}
}

func trustedAddr(trusted []netip.Prefix, a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientAddr is the address a client is known by for limits and logs:
// the peer's, or, when the peer is a trusted proxy, the last address in
// X-Forwarded-For that is not a trusted proxy (the proxies append, so
// everything left of that could be forged by the client).
func (s *Server) clientAddr(r *http.Request) string {
	peer := remoteAddr(r)
	if !trustedAddr(s.trusted, peer) {
		if peer.IsValid() {
			return peer.String()
		}
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			return r.RemoteAddr
		}
		return host
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // a forged or broken entry: trust nothing left of it
		}
		client = a.Unmap()
		if !trustedAddr(s.trusted, client) {
			break
		}
	}
	return client.String()
}

// IPv6PrefixBits is the prefix of an IPv6 client address that the
// per-client limits count as one client: a home or a cloud machine gets a
// /64 (or a /56) to itself, so counting each address apart let one client
// open ten sessions, fifty watchers and a connection rate per address, on
// as many addresses as it liked.
const IPv6PrefixBits = 64

// limitKey is what the per-client limits count client by: an IPv4 address
// itself, an IPv6 one by its /64 (peerKey).
func limitKey(client string) string {
	a, err := netip.ParseAddr(client)
	if err != nil || !a.Unmap().Is6() {
		return client
	}
	return netip.PrefixFrom(peerKey(a), IPv6PrefixBits).String()
}

// peerKey is the address the limits count a peer by: an IPv4 address
// itself, an IPv6 one by its /64, the prefix's first address.
func peerKey(a netip.Addr) netip.Addr {
	if a = a.Unmap(); !a.Is6() {
		return a
	}
	return netip.PrefixFrom(a, IPv6PrefixBits).Masked().Addr()
}

// clientLimits counts sessions and watchers and paces new connections per
// client address (limitKey). Entries of clients with no session, no
// watcher and a full bucket are swept once the table grows, so it stays
// bounded by the clients active lately.
type clientLimits struct {
	maxSessions int // -1: no cap
	maxWatchers int // -1: no cap
	rate        rate.Limit
	burst       int
	unlimited   bool

	mu      sync.Mutex
	clients map[string]*clientEntry
}

type clientEntry struct {
	sessions int
	watchers int
	limiter  *rate.Limiter
	seen     time.Time
}

const sweepAbove = 4096

func newClientLimits(cfg Config) *clientLimits {
	return &clientLimits{
		maxSessions: cfg.MaxSessionsPerClient,
		maxWatchers: cfg.MaxWatchersPerClient,
		rate:        rate.Limit(cfg.ConnRate),
		burst:       cfg.ConnBurst,
		unlimited:   cfg.ConnRate < 0,
		clients:     make(map[string]*clientEntry),
	}
}

func (l *clientLimits) entry(client string) *clientEntry {
	e := l.clients[client]
	if e == nil {
		if len(l.clients) >= sweepAbove {
			l.sweep()
		}
		e = &clientEntry{}
		if !l.unlimited {
			e.limiter = rate.NewLimiter(l.rate, l.burst)
		}
		l.clients[client] = e
	}
	e.seen = time.Now()
	return e
}

// sweep drops clients with no session or watcher whose bucket has
// refilled.
func (l *clientLimits) sweep() {
	for k, e := range l.clients {
		if e.sessions == 0 && e.watchers == 0 && (e.limiter == nil || e.limiter.Tokens() >= float64(l.burst)) {
			delete(l.clients, k)
		}
	}
}

// allowConn takes a token for a new connection from client.
func (l *clientLimits) allowConn(client string) bool {
	client = limitKey(client)
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entry(client)
	return e.limiter == nil || e.limiter.Allow()
}

func (l *clientLimits) addSession(client string) bool {
	client = limitKey(client)
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entry(client)
	if l.maxSessions >= 0 && e.sessions >= l.maxSessions {
		return false
	}
	e.sessions++
	return true
}

func (l *clientLimits) removeSession(client string) {
	client = limitKey(client)
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.clients[client]; e != nil && e.sessions > 0 {
		e.sessions--
	}
}

// addWatcher counts a watcher of client's; false at the cap.
func (l *clientLimits) addWatcher(client string) bool {
	client = limitKey(client)
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entry(client)
	if l.maxWatchers >= 0 && e.watchers >= l.maxWatchers {
		return false
	}
	e.watchers++
	return true
}

func (l *clientLimits) removeWatcher(client string) {
	client = limitKey(client)
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.clients[client]; e != nil && e.watchers > 0 {
		e.watchers--
	}
}
