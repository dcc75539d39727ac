package server

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"
)

// handleWS is /ws: the handshake checks, init, then one connection to a
// new session, a resumed one, or one watched.
func (s *Server) handleWS(w http.ResponseWriter, r *http.Request) {
	client := s.clientAddr(r)
	log := s.log.With().Str("remote", r.RemoteAddr).Str("client", client).Logger()
	if !websocket.IsWebSocketUpgrade(r) {
		http.Error(w, "/ws speaks WebSocket only", http.StatusBadRequest)
		return
	}
	if err := s.origins.check(r); err != nil {
		log.Warn().Err(err).Msg("websocket refused")
		s.metrics.rejected.WithLabelValues("origin").Inc()
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	// Checked here rather than left to Upgrade, which would accept the
	// connection without a subprotocol, and a client that does not speak
	// ttyd's protocol gains nothing from a session.
	if !slices.Contains(websocket.Subprotocols(r), Subprotocol) {
		http.Error(w, `WebSocket subprotocol "tty" required`, http.StatusBadRequest)
		return
	}
	if s.isClosing() {
		s.metrics.rejected.WithLabelValues("draining").Inc()
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return
	}
	// A server among several behind a routing proxy (Config.Routed)
	// turns a new session away here, before the upgrade, while draining
	// or full, so that the proxy can still send it elsewhere (on a 503);
	// a reconnect (a resume, a watcher) names the route and goes on. A
	// server on its own answers as the protocol says: the session is
	// refused after the init, with 1013 when full and 1001 when draining.
	if s.cfg.Routed && r.URL.Query().Get("route") == "" {
		if why, metric := s.refuseNew(); why != "" {
			log.Info().Str("why", why).Msg("new session refused")
			s.metrics.rejected.WithLabelValues(metric).Inc()
			http.Error(w, why, http.StatusServiceUnavailable)
			return
		}
	}
	id := identityOf(r)
	ws, err := s.upgrader.Upgrade(hookHijacker{w}, r, nil) // turns.go
	if err != nil {
		log.Debug().Err(err).Msg("websocket upgrade failed") // Upgrade has answered
		return
	}
	// The connection is served on a goroutine of its own, and this
	// handler returns: net/http then lets go of what it holds for a
	// request (its 4 KiB write buffer, the request and response, and the
	// handler's deep stack), about a tenth of an idle session's memory.
	// The goroutine counts as a request in flight, for Drain.
	s.requestBegin()
	go func() {
		defer s.requestDone()
		s.serveWS(ws, log, client, id)
	}()
}

// serveWS serves an upgraded connection: its init, then its session (a new
// one, a resumed one, or one watched) until the connection ends.
func (s *Server) serveWS(ws *websocket.Conn, log zerolog.Logger, client string, id identity) {
	c := newConn(s, ws, log, client, id.user, id.ok)
	var readErr error
	defer func() {
		if ss, _ := c.session(); ss != nil {
			ss.detach(c)
		}
		c.finish(readErr)
	}()
	if !s.clients.allowConn(client) {
		s.metrics.rejected.WithLabelValues("rate").Inc()
		c.violation(&closeError{websocket.ClosePolicyViolation, "too many connections from your address, try again later"}, "rate limit")
		return
	}

	_ = ws.SetReadDeadline(time.Now().Add(s.cfg.InitTimeout)) // fails only on a closed conn: then reads fail anyway
	_, first, err := ws.ReadMessage()
	if err != nil {
		c.readFailed(err, true)
		readErr = err
		return
	}
	_ = ws.SetReadDeadline(time.Time{})
	c.heard.Store(time.Now().UnixNano())
	in, cerr := parseInit(first)
	if cerr != nil {
		c.violation(cerr, "protocol error")
		return
	}
	if !s.auth.initOK(id, in.AuthToken) {
		s.metrics.rejected.WithLabelValues("auth").Inc()
		c.violation(&closeError{websocket.ClosePolicyViolation, "authentication failed"}, "auth failed")
		return
	}
	switch {
	case in.Resume != "":
		cerr = s.resume(c, in)
	case in.Watch != "":
		// An administrator (the admin token as a bearer) follows as many
		// sessions as it likes.
		if !id.admin {
			if !s.clients.addWatcher(client) {
				s.metrics.rejected.WithLabelValues("per-client watchers").Inc()
				cerr = &closeError{websocket.ClosePolicyViolation, fmt.Sprintf("too many watchers from your address (limit %d)", s.cfg.MaxWatchersPerClient)}
				break
			}
			defer s.clients.removeWatcher(client) // when the connection ends
		}
		cerr = s.watchSession(c, in, id)
	default:
		cerr = s.newSession(c, in)
	}
	if cerr != nil {
		c.violation(cerr, "refused")
		return
	}
	readErr = c.readLoop()
}

// newSession registers and starts a session with c as its owner.
func (s *Server) newSession(c *wsConn, in initMsg) *closeError {
	env, cerr := s.pickEnv(in.Env)
	if cerr != nil {
		s.metrics.rejected.WithLabelValues("env").Inc()
		return cerr
	}
	ss := newSession(s, c, in, env)
	c.setSession(ss, roleOwner)
	if cerr, why := s.register(ss); cerr != nil {
		c.setSession(nil, roleNone)
		s.metrics.rejected.WithLabelValues(why).Inc()
		return cerr
	}
	req := StartRequest{Cols: in.Cols, Rows: in.Rows}
	if env != s.defaultEnv() {
		req.Env = env
	}
	go ss.run(req) // joined by Shutdown through s.runs
	return nil
}

func (s *Server) defaultEnv() string {
	if len(s.envs) == 0 {
		return ""
	}
	return s.envs[0]
}

// pickEnv checks an init's env against Deps.Envs.
func (s *Server) pickEnv(name string) (string, *closeError) {
	if name == "" {
		return s.defaultEnv(), nil
	}
	if slices.Contains(s.envs, name) {
		return name, nil
	}
	offered := "only the default one"
	if len(s.envs) > 0 {
		offered = strings.Join(s.envs, ", ")
	}
	return "", &closeError{websocket.ClosePolicyViolation, fmt.Sprintf("unknown environment %q; offered: %s", name, offered)}
}

// resume attaches c to the session its key names.
func (s *Server) resume(c *wsConn, in initMsg) *closeError {
	ss, cerr := s.findByKey(c, in.Resume, "resume")
	if cerr != nil {
		return cerr
	}
	if !keyEqual(ss.resume, secretOf(in.Resume)) {
		if keyEqual(ss.watch, secretOf(in.Resume)) {
			c.log.Warn().Str("session", ss.id).Msg("resume refused: a watch key used as a resume key")
			s.metrics.rejected.WithLabelValues("watch key as resume key").Inc()
			return &closeError{websocket.ClosePolicyViolation, "a watch key cannot resume a session"}
		}
		c.log.Warn().Str("session", ss.id).Msg("resume refused: wrong key")
		s.metrics.rejected.WithLabelValues("wrong key").Inc()
		return &closeError{closeUnknownKey, "unknown or expired key"}
	}
	return ss.attachOwner(c, in.Cols, in.Rows)
}

// watchSession attaches c read-only to the session its watch key names.
func (s *Server) watchSession(c *wsConn, in initMsg, id identity) *closeError {
	ss, cerr := s.findByKey(c, in.Watch, "watch")
	if cerr != nil {
		return cerr
	}
	if !keyEqual(ss.watch, secretOf(in.Watch)) && !keyEqual(ss.resume, secretOf(in.Watch)) {
		c.log.Warn().Str("session", ss.id).Msg("watch refused: wrong key")
		s.metrics.rejected.WithLabelValues("wrong key").Inc()
		return &closeError{closeUnknownKey, "unknown or expired key"}
	}
	return ss.attachWatcher(c)
}

func (s *Server) findByKey(c *wsConn, key, what string) (*session, *closeError) {
	sid, _, ok := strings.Cut(key, ".")
	if !ok || sid == "" {
		c.log.Warn().Str("key_kind", what).Msg(what + " refused: malformed key")
		s.metrics.rejected.WithLabelValues("unknown key").Inc()
		return nil, &closeError{closeUnknownKey, "unknown or expired key"}
	}
	ss, expired := s.lookup(sid)
	if ss == nil {
		why := "unknown key"
		if expired {
			why = "expired key"
		}
		c.log.Warn().Str("session", sid).Msg(what + " refused: " + why)
		s.metrics.rejected.WithLabelValues(why).Inc()
		return nil, &closeError{closeUnknownKey, "unknown or expired key"}
	}
	return ss, nil
}

// readLoop reads the client's frames and acts on them until a read fails,
// which the writer's close grace guarantees once the connection is ending.
func (c *wsConn) readLoop() error {
	in := inputTurns{turns: c.srv.turns, conn: c.hookConn(), done: c.ctx.Done()}
	defer in.end()
	for {
		_, msg, err := c.ws.ReadMessage()
		if err != nil {
			c.readFailed(err, false)
			return err
		}
		c.heard.Store(time.Now().UnixNano())
		if c.isEnded() {
			continue // closing: read on, only for the client's close reply
		}
		in.next()
		cmd, payload, cerr := parseCommand(msg)
		if cerr != nil {
			c.violation(cerr, "protocol error")
			continue
		}
		ss, role := c.session()
		if cmd == cmdResize {
			// Checked for watchers too: bad input is bad input.
			cols, rows, cerr := parseResize(payload)
			if cerr != nil {
				c.violation(cerr, "protocol error")
				continue
			}
			if role == roleOwner && ss.isOwner(c) {
				ss.resize(cols, rows)
			}
			continue
		}
		if role != roleOwner || !ss.isOwner(c) {
			continue // a watcher's input, or a taken-over owner's last frames
		}
		switch cmd {
		case cmdInput:
			ss.typed(c, payload)
		case cmdPause:
			ss.setFlow(c, true)
		case cmdResume:
			ss.setFlow(c, false)
		}
	}
}
