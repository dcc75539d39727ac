package server

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the server's Prometheus metrics, in a registry of its own
// (so that servers in one process, as in tests, do not collide), served
// on /metrics with the Go runtime's and the process's.
type metrics struct {
	reg           *prometheus.Registry
	started       prometheus.Counter
	ended         *prometheus.CounterVec
	startSeconds  *prometheus.HistogramVec
	startFailures prometheus.Counter
	bytesIn       prometheus.Counter
	bytesOut      prometheus.Counter
	rejected      *prometheus.CounterVec
	resumes       prometheus.Counter
	takeovers     prometheus.Counter
	limitEnds     *prometheus.CounterVec
	limitsReached *prometheus.CounterVec
	inputDropped  prometheus.Counter
}

func newMetrics(s *Server) *metrics {
	reg := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	m := &metrics{reg: reg}

	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "playground_sessions_active", Help: "Sessions open now, detached ones included.",
	}, func() float64 { return float64(s.Sessions()) }))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "playground_sessions_detached", Help: "Open sessions whose client is gone, waiting for a resume.",
	}, func() float64 { d, _ := s.attachCounts(); return float64(d) }))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "playground_watchers", Help: "Read-only connections following a session.",
	}, func() float64 { _, w := s.attachCounts(); return float64(w) }))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "playground_sessions_max", Help: "The session limit (--max-sessions).",
	}, func() float64 { return float64(s.cfg.MaxSessions) }))
	m.started = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "playground_sessions_started_total", Help: "Sessions started.",
	})
	m.ended = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "playground_sessions_ended_total", Help: "Sessions ended, by reason (exit, idle timeout, max lifetime, admin, reconnect grace expired, shutdown, start failed, ...).",
	}, []string{"reason"})
	m.startSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "playground_session_start_seconds",
		Help:    "Time to get a session's terminal: warm (from the pool) or cold (started for it).",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	}, []string{"start"})
	m.startFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "playground_session_start_failures_total", Help: "Starts that failed or timed out.",
	})
	bytes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "playground_bytes_total", Help: "Terminal bytes: in (typed, written to the programs) and out (the programs' output).",
	}, []string{"direction"})
	m.bytesIn, m.bytesOut = bytes.WithLabelValues("in"), bytes.WithLabelValues("out")
	m.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "playground_rejections_total", Help: "Requests and connections refused, by reason (host, origin, auth, rate, capacity, per-client sessions, per-client watchers, idle connections, draining, unknown key, ...).",
	}, []string{"reason"})
	m.resumes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "playground_resumes_total", Help: "Sessions resumed with their resume key.",
	})
	m.takeovers = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "playground_takeovers_total", Help: "Resumes that took a session over from a connection still attached (closed with 4409).",
	})
	m.limitEnds = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "playground_limit_ends_total", Help: "Sessions ended by a time limit, by limit.",
	}, []string{"limit"})
	m.limitsReached = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "playground_resource_limits_reached_total", Help: "Sessions that reached their cgroup's memory or process limit, or that the kernel killed in when the host's memory ran out, by limit (memory, pids, host_memory), counted as they end.",
	}, []string{"limit"})
	m.inputDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "playground_input_dropped_bytes_total", Help: "Input refused because the program was not reading and its queue was full.",
	})
	for _, c := range []prometheus.Collector{m.started, m.ended, m.startSeconds, m.startFailures, bytes, m.rejected, m.resumes, m.takeovers, m.limitEnds, m.limitsReached, m.inputDropped} {
		f(c)
	}
	if s.pool != nil {
		f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "playground_pool_warm", Help: "Warm terminals waiting in the pool.",
		}, func() float64 { return float64(s.pool.Warm()) }))
		f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "playground_pool_size", Help: "Warm terminals the pool keeps when there is room (--warm).",
		}, func() float64 { return float64(s.pool.Size()) }))
	}
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// attachCounts counts detached sessions and watchers.
func (s *Server) attachCounts() (detached, watchers int) {
	s.mu.Lock()
	open := s.openLocked()
	s.mu.Unlock()
	for _, ss := range open {
		ss.mu.Lock()
		if !ss.detached.IsZero() {
			detached++
		}
		watchers += len(ss.watchers)
		ss.mu.Unlock()
	}
	return detached, watchers
}
