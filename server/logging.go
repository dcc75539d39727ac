package server

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/rs/zerolog"
)

// logRequests logs one line per request when it ends. A WebSocket request
// ends at its upgrade (status 101); its connection and session log their
// own end ("session end").
func logRequests(log zerolog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		status := rec.status
		if status == 0 {
			status = http.StatusOK // the handler wrote nothing: net/http sends 200
		}
		// Probes and Prometheus ask every few seconds; their lines would
		// drown the rest at info.
		level := zerolog.InfoLevel
		if isProbe(r.URL.Path) && status == http.StatusOK {
			level = zerolog.DebugLevel
		}
		log.WithLevel(level).
			Str("method", r.Method).
			Str("path", r.URL.Path).
			Int("status", status).
			Int64("bytes", rec.bytes).
			Float64("duration_ms", ms(time.Since(start))).
			Str("remote", r.RemoteAddr).
			Msg("http request")
	})
}

// statusRecorder remembers the status a handler sends. It still hijacks, so
// that WebSocket upgrades work through it.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

// Hijack hands the connection to the WebSocket library, which writes the
// 101 response itself.
func (r *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := r.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("response writer cannot hijack")
	}
	c, rw, err := h.Hijack()
	if err == nil {
		r.status = http.StatusSwitchingProtocols
	}
	return c, rw, err
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the original writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
