// Package server is the playground's HTTP and WebSocket front: it serves the
// terminal page, speaks the ttyd-compatible protocol of docs/PROTOCOL.md on /ws,
// and runs one session per WebSocket, pumping bytes between the client and a
// Terminal it gets from a StartFunc (a container in production, a plain
// shell in tests). It checks origins and credentials, bounds every buffer
// and wait, logs each request and session, and drains on Shutdown.
//
// The server never starts programs itself; whatever StartFunc returns is
// ended by the server when its session ends, whichever way it ends.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"sync"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"

	"github.com/guntainer/playground/static"
)

// Deps are what the server needs from outside.
type Deps struct {
	// Log receives one line per request and the events of every session.
	// The zero Logger logs nothing.
	Log zerolog.Logger
	// Start starts a session's terminal. Required.
	Start StartFunc
	// Static holds the page: index.html and what it loads. Required.
	Static fs.FS
}

// Server serves the playground. It is an http.Handler; run it under an
// http.Server and call Shutdown before, or together with, the
// http.Server's: http.Server.Shutdown does not wait for WebSockets.
// Its methods are safe for concurrent use.
type Server struct {
	cfg      Config
	log      zerolog.Logger
	start    StartFunc
	handler  http.Handler
	upgrader websocket.Upgrader
	origins  originPolicy
	auth     auth
	prefs    []byte // Config.Preferences as JSON

	mu       sync.Mutex
	sessions map[*session]struct{}
	draining bool          // Shutdown was called: no new sessions
	inflight int           // requests inside ServeHTTP
	drained  chan struct{} // closed when draining and inflight is 0
	isClosed bool          // drained is closed
}

// New builds a server. It fails on a bad config or a missing dependency.
func New(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("server config: %w", err)
	}
	if deps.Start == nil {
		return nil, errors.New("server: Deps.Start is nil")
	}
	if deps.Static == nil {
		return nil, errors.New("server: Deps.Static is nil")
	}
	cfg = cfg.withDefaults()
	origins, err := newOriginPolicy(cfg.AllowedOrigins)
	if err != nil {
		return nil, fmt.Errorf("server config: %w", err)
	}
	prefs := []byte("{}")
	if cfg.Preferences != nil {
		if prefs, err = json.Marshal(cfg.Preferences); err != nil {
			return nil, fmt.Errorf("server config: preferences: %w", err)
		}
	}
	s := &Server{
		cfg:      cfg,
		log:      deps.Log,
		start:    deps.Start,
		origins:  origins,
		auth:     newAuth(cfg.Credential),
		prefs:    prefs,
		sessions: make(map[*session]struct{}),
		drained:  make(chan struct{}),
	}
	s.upgrader = websocket.Upgrader{
		HandshakeTimeout: cfg.WriteTimeout,
		ReadBufferSize:   4 << 10,
		// One OUTPUT message fits the buffer, so it goes out as one frame.
		// The pool lends the buffer only while a message is being written,
		// so idle sessions hold none.
		WriteBufferSize: 1 + outputChunk + 16,
		WriteBufferPool: &sync.Pool{},
		Subprotocols:    []string{Subprotocol},
		// handleWS has checked the origin already, answering with a reason.
		CheckOrigin: func(*http.Request) bool { return true },
		Error: func(w http.ResponseWriter, _ *http.Request, status int, reason error) {
			http.Error(w, reason.Error(), status)
		},
	}

	mux := http.NewServeMux()
	mux.Handle("GET /", static.Serve(deps.Static))
	mux.HandleFunc("GET /ws", s.handleWS)
	mux.HandleFunc("GET /token", s.handleToken)
	mux.HandleFunc("GET /healthz", handleHealthz)
	s.handler = logRequests(s.log, s.auth.middleware(mux))
	return s, nil
}

// ServeHTTP serves the playground's endpoints (docs/PROTOCOL.md).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.inflight++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inflight--
		s.maybeDrainedLocked()
		s.mu.Unlock()
	}()
	s.handler.ServeHTTP(w, r)
}

// Shutdown stops new sessions, ends every open one (its client gets close
// 1001 and its terminal is closed) and waits until every request, session
// goroutine included, has finished, or until ctx is done. It does not stop
// the http.Server. Calling it again waits again.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	s.maybeDrainedLocked()
	open := make([]*session, 0, len(s.sessions))
	for ss := range s.sessions {
		open = append(open, ss)
	}
	s.mu.Unlock()

	// Each end writes a close frame, bounded by the close grace; a stuck
	// client must not hold up the others.
	var wg sync.WaitGroup
	for _, ss := range open {
		wg.Go(func() { ss.end(websocket.CloseGoingAway, "server shutting down", "shutdown") })
	}
	wg.Wait()

	select {
	case <-s.drained:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("shutdown: %d sessions still open: %w", s.Sessions(), ctx.Err())
	}
}

// Sessions returns the number of open sessions.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

func (s *Server) maybeDrainedLocked() {
	if s.draining && s.inflight == 0 && !s.isClosed {
		close(s.drained)
		s.isClosed = true
	}
}

// register adds a session, or says with what close it must be turned away.
func (s *Server) register(ss *session) *closeError {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.draining:
		return &closeError{websocket.CloseGoingAway, "server shutting down"}
	case s.cfg.MaxSessions > 0 && len(s.sessions) >= s.cfg.MaxSessions:
		return &closeError{websocket.CloseTryAgainLater, "server at capacity, try again later"}
	}
	s.sessions[ss] = struct{}{}
	return nil
}

func (s *Server) unregister(ss *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sessions, ss)
}

func (s *Server) isDraining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.draining
}

// handleToken serves ttyd's /token: the AuthToken the page puts in init.
func (s *Server) handleToken(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(struct {
		Token string `json:"token"`
	}{s.auth.token}) // a write error means the client left; nothing to do
}

func handleHealthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok")) // a write error means the prober left
}
