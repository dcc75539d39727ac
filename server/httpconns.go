package server

import (
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// The HTTP server's own connections, before any WebSocket: net/http keeps
// a keep-alive connection open between requests for as long as its
// IdleTimeout, which is forever when unset. Measured on the server before
// this: 5,000 connections of one address, each after one GET /healthz,
// held 97 MB of the server's memory (19 KiB each) and 5,000 fds, and were
// all still open when the client looked again; a client could hold tens of
// thousands per address, and fds run out for everyone.
const (
	// ReadHeaderTimeout bounds a request's headers, the first one's too.
	ReadHeaderTimeout = 10 * time.Second
	// MaxHeaderBytes bounds a request's headers (net/http's default is 1
	// MiB): 300 connections of one client, each sending 1 MB of headers
	// and never their end, held 318 MB of the server's memory for the 10
	// s of ReadHeaderTimeout, and could again the next 10 s. The page's
	// requests send about 1 KiB; nginx's default allows 32 KiB at most.
	MaxHeaderBytes = 64 << 10
	// HTTPIdleTimeout closes a keep-alive connection with no request for
	// this long (nginx's keepalive_timeout is 75 s).
	HTTPIdleTimeout = time.Minute
	// MaxIdleConnsPerPeer is how many keep-alive connections between
	// requests one peer address (an IPv6 one by its /64) may hold; one
	// more is closed once its response is sent (a browser opens a new one
	// when it needs it). Trusted proxies are not counted: a proxy keeps a
	// pool.
	MaxIdleConnsPerPeer = 64
)

// HTTPServer returns the http.Server to serve h (the Server itself when
// nil) with: the bounds above, and the idle connections of each peer
// address capped (ConnState).
func (s *Server) HTTPServer(h http.Handler) *http.Server {
	if h == nil {
		h = s
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		IdleTimeout:       HTTPIdleTimeout,
		ConnState:         s.idleConns.track,
	}
}

// idleConns counts the idle keep-alive connections of each peer.
type idleConns struct {
	max     int
	trusted []netip.Prefix
	closed  func() // counts a connection closed at the cap

	mu    sync.Mutex
	peers map[netip.Addr]int
	idle  map[net.Conn]netip.Addr
}

func newIdleConns(max int, trusted []netip.Prefix, closed func()) *idleConns {
	return &idleConns{max: max, trusted: trusted, closed: closed, peers: map[netip.Addr]int{}, idle: map[net.Conn]netip.Addr{}}
}

// track is the http.Server's ConnState hook.
func (ic *idleConns) track(c net.Conn, state http.ConnState) {
	ic.mu.Lock()
	if peer, ok := ic.idle[c]; ok {
		// Idle no more: active again, closed or hijacked.
		delete(ic.idle, c)
		if ic.peers[peer]--; ic.peers[peer] <= 0 {
			delete(ic.peers, peer)
		}
	}
	if state != http.StateIdle {
		ic.mu.Unlock()
		return
	}
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil || trustedAddr(ic.trusted, ap.Addr().Unmap()) {
		ic.mu.Unlock()
		return
	}
	peer := peerKey(ap.Addr()) // an IPv6 peer by its /64
	if ic.peers[peer] >= ic.max {
		ic.mu.Unlock()
		ic.closed()
		// The server's goroutine waits for the next request on it: the
		// close ends that wait, and the connection (StateClosed).
		_ = c.Close()
		return
	}
	ic.peers[peer]++
	ic.idle[c] = peer
	ic.mu.Unlock()
}
