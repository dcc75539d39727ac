// Package server is the playground's HTTP and WebSocket front: it serves the
// terminal page, speaks the ttyd-compatible protocol of docs/PROTOCOL.md on /ws,
// and runs sessions: a Terminal from a StartFunc (a container in production,
// a plain shell in tests) and the clients attached to it. A session outlives
// its connection for a reconnect grace, so a client that drops can resume it
// and gets its screen back (rebuilt from a terminal state, never replayed);
// others can watch it read-only.
//
// It checks Host names (against DNS rebinding), origins and credentials;
// limits sessions (idle, lifetime, per machine, per client, connection rate);
// bounds every buffer and wait; logs each request and session event; serves
// an admin API, Prometheus metrics and probes; and drains on SIGTERM.
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
	"net/netip"
	"slices"
	"sync"
	"time"

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
	// Pool, when Start draws from it, is kept within the session limit
	// (warm terminals and open sessions together) and reported in
	// /metrics. Optional.
	Pool *Pool
	// Envs are the environment names offered, the first the default. Nil
	// means one unnamed default environment: an init that names any is
	// refused with 1008.
	Envs []string
	// Ready adds to /readyz: a non-nil error ("environment ubuntu:
	// downloading 40%") makes it 503 with the error's text. Optional.
	Ready func() error
	// EnvStatus says where each of Envs is, for /api/envs: ready,
	// preparing (with its progress) or failed. Optional.
	EnvStatus func() []EnvStatus
}

// Server serves the playground. It is an http.Handler; run it under an
// http.Server. On SIGTERM call Drain, then Shutdown, before or together
// with the http.Server's Shutdown (which does not wait for WebSockets).
// Its methods are safe for concurrent use.
type Server struct {
	cfg       Config
	log       zerolog.Logger
	start     StartFunc
	pool      *Pool
	envs      []string
	ready     func() error
	envState  func() []EnvStatus
	handler   http.Handler
	upgrader  websocket.Upgrader
	origins   originPolicy
	hosts     hostPolicy
	auth      *auth
	trusted   []netip.Prefix
	clients   *clientLimits
	idleConns *idleConns // the HTTP server's keep-alive connections (HTTPServer)
	prefs     []byte     // Config.Preferences as JSON
	metrics   *metrics
	turns     *outputTurns // streaming output's turns (turns.go)

	mu       sync.Mutex
	sessions map[string]*session
	// forWarm counts the sessions registered that will take a warm
	// terminal of the pool and have not yet been to it (session's
	// forWarm): their places are the pool's until then (room).
	forWarm   int
	ended     *endedIDs
	draining  bool          // Drain or Shutdown was called: no new sessions
	closing   bool          // Shutdown was called: no new connections
	inflight  int           // requests inside ServeHTTP, and WebSocket connections
	drained   chan struct{} // closed when closing and inflight is 0
	isClosed  bool          // drained is closed
	runs      sync.WaitGroup
	abandoned sync.WaitGroup // starts given up on, closing what they start
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
	for i, e := range deps.Envs {
		if e == "" || slices.Contains(deps.Envs[:i], e) {
			return nil, fmt.Errorf("server: Deps.Envs %q: names must be non-empty and distinct", deps.Envs)
		}
	}
	cfg = cfg.withDefaults()
	origins, err := newOriginPolicy(cfg.AllowedOrigins)
	if err != nil {
		return nil, fmt.Errorf("server config: %w", err)
	}
	trusted, err := parsePrefixes(cfg.TrustedProxies)
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
		pool:     deps.Pool,
		envs:     slices.Clone(deps.Envs),
		ready:    deps.Ready,
		envState: deps.EnvStatus,
		origins:  origins,
		hosts:    newHostPolicy(cfg.AllowedHosts),
		auth:     newAuth(cfg, trusted),
		trusted:  trusted,
		clients:  newClientLimits(cfg),
		prefs:    prefs,
		sessions: make(map[string]*session),
		turns:    newOutputTurns(defaultOutputTurns(), turnPatience),
		ended:    newEndedIDs(),
		drained:  make(chan struct{}),
	}
	s.metrics = newMetrics(s)
	s.idleConns = newIdleConns(MaxIdleConnsPerPeer, trusted, func() { s.metrics.rejected.WithLabelValues("idle connections").Inc() })
	if s.pool != nil {
		s.pool.limit(s.room)
	}
	s.upgrader = websocket.Upgrader{
		HandshakeTimeout: cfg.WriteTimeout,
		// A small buffer of its own: what clients send is keystrokes,
		// resizes and the odd paste (a frame larger than the buffer is
		// read past it). net/http's 4 KiB one, which read the handshake,
		// goes with the handler (handleWS), 3 KiB less per idle session.
		ReadBufferSize: 1 << 10,
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
	mux.HandleFunc("GET /readyz", s.handleReadyz)
	mux.Handle("GET /metrics", s.metrics.handler())
	s.adminRoutes(mux)
	s.handler = logRequests(s.log, s.checkRequest(mux))
	return s, nil
}

// ServeHTTP serves the playground's endpoints (docs/PROTOCOL.md).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requestBegin()
	defer s.requestDone()
	if s.cfg.RouteID != "" {
		w.Header().Set("X-Playground-Route", s.cfg.RouteID)
	}
	s.handler.ServeHTTP(w, r)
}

// Drain stops new sessions (/readyz says 503; resumes and watchers are
// still let in), tells every session's clients with a NOTICE, and waits
// until every session has ended or ctx is done; it returns ctx's error in
// the latter case. Shutdown ends what is left.
func (s *Server) Drain(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	open := s.openLocked()
	s.mu.Unlock()
	text := "the server is going down for maintenance: finish and save your work"
	if dl, ok := ctx.Deadline(); ok {
		text = fmt.Sprintf("the server is going down for maintenance: this session ends within %s; save your work", human(time.Until(dl).Round(time.Second)))
	}
	for _, ss := range open {
		ss.noticeAll("warn", text)
	}
	s.log.Info().Int("sessions", len(open)).Msg("draining")
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for s.Sessions() > 0 {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("drain: %d sessions still open: %w", s.Sessions(), ctx.Err())
		}
	}
	return nil
}

// Shutdown stops new connections and sessions, ends every open session
// (its clients get close 1001 and its terminal is closed) and waits until
// every request, session goroutine included, has finished, or until ctx
// is done. It does not stop the http.Server. Calling it again waits again.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining, s.closing = true, true
	s.maybeDrainedLocked()
	open := s.openLocked()
	s.mu.Unlock()
	for _, ss := range open {
		ss.endWith(causeShutdown)
	}
	runs := make(chan struct{})
	go func() {
		s.runs.Wait()
		s.abandoned.Wait() // no session runs, so none adds to it
		close(runs)
	}()
	for _, ch := range []chan struct{}{runs, s.drained} {
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("shutdown: %d sessions still open: %w", s.Sessions(), ctx.Err())
		}
	}
	return nil
}

// MaxSessions is the session limit in force (Config.MaxSessions, or the
// machine's default).
func (s *Server) MaxSessions() int { return s.cfg.MaxSessions }

// Sessions returns the number of open sessions, detached ones included.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

func (s *Server) openLocked() []*session {
	open := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		open = append(open, ss)
	}
	return open
}

// requestBegin and requestDone count a request in flight: one in
// ServeHTTP, or a WebSocket connection served after its handler returned.
func (s *Server) requestBegin() {
	s.mu.Lock()
	s.inflight++
	s.mu.Unlock()
}

func (s *Server) requestDone() {
	s.mu.Lock()
	s.inflight--
	s.maybeDrainedLocked()
	s.mu.Unlock()
}

func (s *Server) maybeDrainedLocked() {
	if s.closing && s.inflight == 0 && !s.isClosed {
		close(s.drained)
		s.isClosed = true
	}
}

// room is how many more terminals may exist: the session limit minus the
// sessions open. The pool holds at most this many warm ones. A session on
// its way to take one of them holds none yet: its place stays the pool's
// until it has been to the pool (settled), so that the pool does not end
// the warm terminal the session is about to take.
func (s *Server) room() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg.MaxSessions - len(s.sessions) + s.forWarm
}

// settled says that ss has been to the pool, or will not go: it holds
// its place itself from now. Idempotent.
func (s *Server) settled(ss *session) {
	s.mu.Lock()
	was := s.settledLocked(ss)
	s.mu.Unlock()
	if was {
		s.pool.wake()
	}
}

// settledLocked is settled's count, under s.mu; it reports whether ss was
// still on its way to the pool.
func (s *Server) settledLocked(ss *session) bool {
	if !ss.forWarm {
		return false
	}
	ss.forWarm = false
	s.forWarm--
	return true
}

// register adds a new session, or says with what close it must be
// turned away.
func (s *Server) register(ss *session) (*closeError, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.draining:
		return &closeError{websocket.CloseGoingAway, "server shutting down"}, "draining"
	case len(s.sessions) >= s.cfg.MaxSessions:
		return &closeError{websocket.CloseTryAgainLater, "server at capacity, try again later"}, "capacity"
	}
	if !s.clients.addSession(ss.client) {
		return &closeError{websocket.ClosePolicyViolation, fmt.Sprintf("too many sessions from your address (limit %d)", s.cfg.MaxSessionsPerClient)}, "per-client sessions"
	}
	s.sessions[ss.id] = ss
	s.runs.Add(1)
	s.metrics.started.Inc()
	if s.pool != nil {
		if ss.env == s.defaultEnv() {
			// The pool's warm terminals are of the default environment.
			ss.forWarm = true
			s.forWarm++
		}
		s.pool.wake()
	}
	return nil, ""
}

func (s *Server) unregister(ss *session) {
	s.mu.Lock()
	s.settledLocked(ss) // it may end before it went to the pool
	delete(s.sessions, ss.id)
	s.ended.add(ss.id)
	s.mu.Unlock()
	s.clients.removeSession(ss.client)
	if s.pool != nil {
		s.pool.wake()
	}
	s.runs.Done()
}

// lookup finds a session by the id in a resume or watch key. expired says
// whether the id was of a session that has ended.
func (s *Server) lookup(id string) (ss *session, expired bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss, ok := s.sessions[id]; ok {
		return ss, false
	}
	return nil, s.ended.has(id)
}

// refuseNew says why a /ws request to a routed server (Config.Routed)
// that is not a reconnect (it names no route) is turned away before
// the upgrade, or "": while draining or at capacity, the proxy in front
// can try another server on a 503.
func (s *Server) refuseNew() (why, metric string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.draining:
		return "server draining: no new sessions here", "draining"
	case len(s.sessions) >= s.cfg.MaxSessions:
		return "server at capacity, try again later", "capacity"
	}
	return "", ""
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// notReady is why /readyz says 503, or "".
func (s *Server) notReady() string {
	s.mu.Lock()
	draining, n := s.draining, len(s.sessions)
	s.mu.Unlock()
	switch {
	case draining:
		return "draining: the server is shutting down"
	case n >= s.cfg.MaxSessions:
		return fmt.Sprintf("at capacity: %d sessions", n)
	}
	if s.ready != nil {
		if err := s.ready(); err != nil {
			return err.Error()
		}
	}
	return ""
}

func (s *Server) handleReadyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if why := s.notReady(); why != "" {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(why + "\n")) // a write error means the prober left
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

// handleToken serves ttyd's /token: the AuthToken the page puts in init.
// With basic auth (ttyd's -c) that is the credential, base64-encoded, as
// ttyd does; with a token or a proxy's header the handshake carries the
// credential itself, so the page sends none.
func (s *Server) handleToken(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(struct {
		Token string `json:"token"`
	}{s.auth.basicToken}) // a write error means the client left; nothing to do
}

func handleHealthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok")) // a write error means the prober left
}

// endedIDs remembers the ids of ended sessions for a while, so that a
// resume with an expired key is logged as such. Bounded.
type endedIDs struct {
	ids   map[string]time.Time
	order []string
}

const (
	endedKeep = 10000
	endedFor  = time.Hour
)

func newEndedIDs() *endedIDs { return &endedIDs{ids: make(map[string]time.Time)} }

func (e *endedIDs) add(id string) {
	if len(e.order) >= endedKeep {
		delete(e.ids, e.order[0])
		e.order = e.order[1:]
	}
	e.ids[id] = time.Now()
	e.order = append(e.order, id)
}

func (e *endedIDs) has(id string) bool {
	t, ok := e.ids[id]
	return ok && time.Since(t) < endedFor
}
