package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// The admin API, under /api, JSON in and out; every error is
// {"error": "...", "status": N}. It needs the admin token
// ("Authorization: Bearer TOKEN"), except /api/envs, which the page may
// read with an ordinary credential.
//
//	GET    /api/sessions               the open sessions
//	GET    /api/sessions/{id}          one
//	DELETE /api/sessions/{id}          end it; {"reason": "..."} is shown to its user
//	POST   /api/sessions/{id}/end      the same, for clients without DELETE
//	GET    /api/sessions/{id}/watch    its watch key, and the page's path to watch it
//	GET    /api/envs                   the environments offered, the first the default, and where each is (ready, preparing, failed)
func (s *Server) adminRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/sessions", s.admin(s.apiList))
	mux.HandleFunc("GET /api/sessions/{id}", s.admin(s.apiGet))
	mux.HandleFunc("DELETE /api/sessions/{id}", s.admin(s.apiEnd))
	mux.HandleFunc("POST /api/sessions/{id}/end", s.admin(s.apiEnd))
	mux.HandleFunc("GET /api/sessions/{id}/watch", s.admin(s.apiWatch))
	mux.HandleFunc("GET /api/envs", s.apiEnvs)
	for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
		mux.HandleFunc(m+" /api/", func(w http.ResponseWriter, r *http.Request) {
			apiError(w, http.StatusNotFound, fmt.Sprintf("no such API: %s %s", r.Method, r.URL.Path))
		})
	}
}

// SessionInfo is a session as the admin API shows it.
type SessionInfo struct {
	ID        string    `json:"id"`
	User      string    `json:"user"`
	Client    string    `json:"client"`
	Env       string    `json:"env"`
	Container string    `json:"container"`
	Started   time.Time `json:"started"`
	// Idle is the seconds since the owner last typed.
	Idle float64 `json:"idle"`
	// Attached is whether the owner is connected (else the session waits
	// for a resume).
	Attached bool   `json:"attached"`
	Watchers int    `json:"watchers"`
	Columns  uint16 `json:"columns"`
	Rows     uint16 `json:"rows"`
	BytesIn  int64  `json:"bytesIn"`
	BytesOut int64  `json:"bytesOut"`
	// Processes and Memory (bytes) are the container's, when its
	// Terminal can tell (runtime Stats); null when not.
	Processes *int   `json:"processes"`
	Memory    *int64 `json:"memory"`
}

func (s *Server) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.auth.admin == "" {
			apiError(w, http.StatusForbidden, "the admin API is off: start the server with --admin-token")
			return
		}
		if !identityOf(r).admin {
			s.metrics.rejected.WithLabelValues("admin auth").Inc()
			w.Header().Set("WWW-Authenticate", `Bearer realm="playground admin"`)
			apiError(w, http.StatusUnauthorized, "the admin API needs the admin token: Authorization: Bearer TOKEN")
			return
		}
		h(w, r)
	}
}

func (s *Server) apiList(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	open := s.openLocked()
	s.mu.Unlock()
	list := make([]SessionInfo, 0, len(open))
	for _, ss := range open {
		list = append(list, ss.info())
	}
	slices.SortFunc(list, func(a, b SessionInfo) int { return a.Started.Compare(b.Started) })
	apiJSON(w, http.StatusOK, struct {
		Sessions []SessionInfo `json:"sessions"`
	}{list})
}

func (s *Server) apiSession(w http.ResponseWriter, r *http.Request) *session {
	ss, _ := s.lookup(r.PathValue("id"))
	if ss == nil {
		apiError(w, http.StatusNotFound, fmt.Sprintf("no session %q", r.PathValue("id")))
	}
	return ss
}

func (s *Server) apiGet(w http.ResponseWriter, r *http.Request) {
	if ss := s.apiSession(w, r); ss != nil {
		apiJSON(w, http.StatusOK, ss.info())
	}
}

// maxReason bounds the reason an admin gives, which goes to the user.
const maxReason = 200

func (s *Server) apiEnd(w http.ResponseWriter, r *http.Request) {
	ss := s.apiSession(w, r)
	if ss == nil {
		return
	}
	var body struct {
		Reason string `json:"reason"`
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, 4<<10))
	if err != nil {
		apiError(w, http.StatusBadRequest, "read body: "+err.Error())
		return
	}
	if len(strings.TrimSpace(string(b))) > 0 {
		if err := json.Unmarshal(b, &body); err != nil {
			apiError(w, http.StatusBadRequest, `body: want {"reason": "..."}`)
			return
		}
	}
	if body.Reason == "" {
		body.Reason = r.URL.Query().Get("reason")
	}
	reason := strings.Join(strings.Fields(strings.ToValidUTF8(body.Reason, "?")), " ")
	if len(reason) > maxReason {
		reason = strings.ToValidUTF8(reason[:maxReason], "")
	}
	notice, exitReason := "session ended by an administrator", "ended by an administrator"
	if reason != "" {
		notice += ": " + reason
		exitReason += ": " + reason
	}
	ss.l().Info().Str("admin_reason", reason).Str("remote", r.RemoteAddr).Msg("ended by an administrator")
	if !ss.endWith(&endCause{reason: "admin", notice: notice, exitReason: exitReason, code: websocket.CloseNormalClosure, text: "ended by an administrator"}) {
		apiError(w, http.StatusConflict, "the session is ending already")
		return
	}
	apiJSON(w, http.StatusOK, struct {
		Ended  string `json:"ended"`
		Reason string `json:"reason"`
	}{ss.id, reason})
}

func (s *Server) apiWatch(w http.ResponseWriter, r *http.Request) {
	ss := s.apiSession(w, r)
	if ss == nil {
		return
	}
	key := ss.id + "." + ss.watch
	ss.l().Info().Str("remote", r.RemoteAddr).Msg("watch key handed to an administrator")
	// Behind a proxy that routes by route id (docs/DEPLOY.md), the page's
	// watch connection must reach this server: the link carries its id.
	path := "/?watch=" + url.QueryEscape(key)
	if s.cfg.RouteID != "" {
		path += "&route=" + url.QueryEscape(s.cfg.RouteID)
	}
	apiJSON(w, http.StatusOK, struct {
		Watch string `json:"watch"`
		Path  string `json:"path"`
	}{key, path})
}

func (s *Server) apiEnvs(w http.ResponseWriter, r *http.Request) {
	if !identityOf(r).ok {
		apiError(w, http.StatusUnauthorized, "authentication required")
		return
	}
	envs := s.envs
	if envs == nil {
		envs = []string{}
	}
	var states []EnvStatus
	if s.envState != nil {
		states = s.envState()
	}
	apiJSON(w, http.StatusOK, struct {
		Envs         []string    `json:"envs"`
		Default      string      `json:"default"`
		Environments []EnvStatus `json:"environments,omitempty"`
	}{envs, s.defaultEnv(), states})
}

// EnvStatus is an environment as /api/envs shows it.
type EnvStatus struct {
	Name   string `json:"name"`
	Source string `json:"source,omitempty"` // what it is prepared from: "ubuntu:24.04", "host"
	State  string `json:"state"`            // "ready", "preparing" or "failed"
	// Detail is the progress while preparing ("downloading 12.0 MiB of
	// 29.6 MiB (40%)"), what it stands in for when ready, or that it
	// failed (why is in the server's log).
	Detail string `json:"detail,omitempty"`
}

// info is the session as the admin API shows it.
func (ss *session) info() SessionInfo {
	ss.mu.Lock()
	in := SessionInfo{
		ID:        ss.id,
		User:      ss.user,
		Client:    ss.client,
		Env:       ss.env,
		Container: ss.termID,
		Started:   ss.opened.UTC(),
		Attached:  ss.owner != nil,
		Watchers:  len(ss.watchers),
		Columns:   ss.cols,
		Rows:      ss.rows,
	}
	term := ss.term
	ss.mu.Unlock()
	in.Idle = time.Since(time.Unix(0, ss.lastInput.Load())).Round(time.Millisecond).Seconds()
	in.BytesIn, in.BytesOut = ss.bytesIn.Load(), ss.bytesOut.Load()
	if p, m, ok := terminalStats(term); ok {
		in.Processes, in.Memory = &p, &m
	}
	return in
}

func apiJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // a write error means the client left
}

func apiError(w http.ResponseWriter, status int, msg string) {
	apiJSON(w, status, struct {
		Error  string `json:"error"`
		Status int    `json:"status"`
	}{msg, status})
}
