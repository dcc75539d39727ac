//go:build linux

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	goruntime "runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/guntainer/playground/runtime"
	"github.com/guntainer/playground/server"
	"github.com/guntainer/playground/static"
)

// The servers this command measures run as its own children: the binary
// re-executed under the name childArg0. A child serves one target on
// 127.0.0.1, prints "listening ADDR" on stdout, logs to stderr, and on
// SIGTERM ends its sessions and exits, as the playground server does.

const childArg0 = "playground-load-server"

// statsPath is where a child server reports what only it can see:
// goroutines and open sessions. It is not part of the playground's API.
const statsPath = "/load/stats"

// serverStats is statsPath's answer. With ?gc=1 the server collects
// garbage first, so the heap figure is what is live; with ?free=1 it also
// gives the free pages back to the OS, so that its RSS is what it holds.
type serverStats struct {
	Goroutines int    `json:"goroutines"`
	Sessions   int    `json:"sessions"`
	Warm       int    `json:"warm"`        // warm containers waiting
	WarmSize   int    `json:"warm_size"`   // the pool's size; 0 without one
	HeapBytes  uint64 `json:"heap_bytes"`  // heap objects, bytes
	StackBytes uint64 `json:"stack_bytes"` // goroutine stacks, bytes
	// Sched is the Go scheduler's histogram of how long goroutines
	// waited to run once runnable (runtime/metrics /sched/latencies),
	// cumulative: bucket boundaries in seconds, and counts.
	SchedBuckets []float64 `json:"sched_buckets,omitempty"`
	SchedCounts  []uint64  `json:"sched_counts,omitempty"`
	// Phases are the containers' starts so far, phase by phase
	// (runtime's StartPhases), in the order of a start.
	Phases []phaseTimes `json:"phases,omitempty"`
	// HostMs is how long making the runtime's Host took at the server's
	// start: the sealed copy of the binary, the sessions' parent cgroup,
	// leftovers of crashed servers removed.
	HostMs float64 `json:"host_ms,omitempty"`
}

// phaseTimes is one phase of every container start so far, in ns.
type phaseTimes struct {
	Name string  `json:"name"`
	Ns   []int64 `json:"ns"`
}

// phaseLog gathers the phases of the starts of a child server's
// containers. Safe for concurrent use.
type phaseLog struct {
	mu     sync.Mutex
	order  []string
	byName map[string][]int64
}

// maxPhaseSamples bounds what a phase log keeps per phase.
const maxPhaseSamples = 100_000

func (l *phaseLog) add(ps []runtime.StartPhase) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byName == nil {
		l.byName = map[string][]int64{}
	}
	for _, p := range ps {
		v, ok := l.byName[p.Name]
		if !ok {
			l.order = append(l.order, p.Name)
		}
		if len(v) < maxPhaseSamples {
			l.byName[p.Name] = append(v, int64(p.Duration))
		}
	}
}

func (l *phaseLog) snapshot() []phaseTimes {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]phaseTimes, 0, len(l.order))
	for _, n := range l.order {
		out = append(out, phaseTimes{Name: n, Ns: slices.Clone(l.byName[n])})
	}
	return out
}

// recordPhases wraps start so that every container it starts has its
// phases logged.
func recordPhases(start server.StartFunc, l *phaseLog) server.StartFunc {
	return func(ctx context.Context, req server.StartRequest) (server.Terminal, error) {
		t, err := start(ctx, req)
		if c, ok := t.(*runtime.Container); ok && err == nil {
			l.add(c.StartPhases())
		}
		return t, err
	}
}

// maybeServe runs the child server and exits when this process is one.
func maybeServe() {
	if filepath.Base(os.Args[0]) != childArg0 {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := serveChild(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, childArg0+":", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// childOptions say which server a child runs.
type childOptions struct {
	Kind     string // self, plain or bwrap
	StateDir string // self: where containers' mount points go
	Rootfs   string // self: the containers' root file system
	Home     string // plain: the shells' HOME
	Bwrap    string // bwrap: the bubblewrap binary
	// NoCgroups: self's sessions get rlimits and a nice level even where
	// the server could give them cgroups (the rlimits target).
	NoCgroups bool
	// Grace is the reconnect grace; 0 (most measurements): a session ends
	// with its connection.
	Grace time.Duration
	// Sessions is the most sessions the measurement opens at once, what
	// an operator would serve it with (--max-sessions): self's Host, as
	// root, prepares that many id ranges, as playground serve does.
	Sessions int
}

func (o childOptions) args() []string {
	return []string{"--kind", o.Kind, "--state-dir", o.StateDir, "--rootfs", o.Rootfs, "--home", o.Home, "--bwrap", o.Bwrap,
		"--no-cgroups=" + strconv.FormatBool(o.NoCgroups), "--grace", o.Grace.String(), "--sessions", strconv.Itoa(o.Sessions)}
}

func serveChild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o childOptions
	fs := flag.NewFlagSet(childArg0, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.Kind, "kind", "", "self, plain or bwrap")
	fs.StringVar(&o.StateDir, "state-dir", "", "state dir of self's containers")
	fs.StringVar(&o.Rootfs, "rootfs", runtime.HostRootfs, "rootfs of self's containers")
	fs.StringVar(&o.Home, "home", os.TempDir(), "HOME of plain's shells")
	fs.StringVar(&o.Bwrap, "bwrap", "bwrap", "bubblewrap binary")
	fs.BoolVar(&o.NoCgroups, "no-cgroups", false, "self: rlimits and a nice level, no cgroups")
	fs.DurationVar(&o.Grace, "grace", 0, "reconnect grace; 0: sessions end with their connection")
	fs.IntVar(&o.Sessions, "sessions", 0, "self: the most sessions at once, as serve's --max-sessions (root's id ranges prepared)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	log := zerolog.New(stderr).Level(zerolog.InfoLevel).With().Timestamp().Logger()
	phases := &phaseLog{}
	t0 := time.Now()
	start, pool, host, err := starter(o, log, phases)
	if err != nil {
		return err
	}
	hostTime := time.Since(t0)
	if host != nil {
		// After the pool's: removes the sessions' parent cgroup, and the
		// state dir, this server's alone (the prepared host root owned by
		// the subordinate ids' root too, which the load command could not
		// remove with its work dir).
		defer host.RemoveStateDir()
	}
	if pool != nil {
		defer pool.Close() // after the server's Shutdown: ends the warm containers
	}
	// The playground server as cmd/playground's serve builds it: default
	// config, the embedded page, JSON logs at info; but with the limits
	// that would get in the way of measuring off (every client is this
	// one address, and thousands of sessions are opened), and sessions
	// that end with their connection (no reconnect grace), as most
	// measurements count on; resume and detached sessions need a grace.
	grace := o.Grace
	if grace <= 0 {
		grace = -1
	}
	srv, err := server.New(server.Config{
		MaxSessions:          1 << 20,
		MaxSessionsPerClient: -1,
		MaxWatchersPerClient: -1,
		ConnRate:             -1,
		ReconnectGrace:       grace,
	}, server.Deps{Log: log, Start: start, Static: static.FS(), Pool: pool})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/", srv)
	mux.HandleFunc("GET "+statsPath, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Query().Get("free") == "1":
			debug.FreeOSMemory() // a GC, and the free pages back to the OS
		case r.URL.Query().Get("gc") == "1":
			goruntime.GC()
		}
		var ms goruntime.MemStats
		goruntime.ReadMemStats(&ms)
		w.Header().Set("Content-Type", "application/json")
		st := serverStats{
			Goroutines: goruntime.NumGoroutine(),
			Sessions:   srv.Sessions(),
			HeapBytes:  ms.HeapAlloc,
			StackBytes: ms.StackInuse,
		}
		if pool != nil {
			st.Warm, st.WarmSize = pool.Warm(), warmPool
		}
		if host != nil {
			st.HostMs = float64(hostTime.Microseconds()) / 1000
		}
		if r.URL.Query().Get("phases") == "1" {
			st.Phases = phases.snapshot()
		}
		sample := []metrics.Sample{{Name: "/sched/latencies:seconds"}}
		metrics.Read(sample)
		if sample[0].Value.Kind() == metrics.KindFloat64Histogram {
			h := sample[0].Value.Float64Histogram()
			st.SchedCounts = h.Counts
			for _, b := range h.Buckets { // JSON has no infinities
				st.SchedBuckets = append(st.SchedBuckets, max(min(b, 1e9), -1e9))
			}
		}
		_ = json.NewEncoder(w).Encode(st) // the client left, if it fails
	})
	// For a closer look at a run: go tool pprof http://ADDR/debug/pprof/heap
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hs := srv.HTTPServer(mux)
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	fmt.Fprintln(stdout, "listening", ln.Addr())

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = hs.Shutdown(sctx) // its only error is the deadline, which srv.Shutdown reports too
	err = srv.Shutdown(sctx)
	<-served
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// warmPool is the warm target's pool size.
const warmPool = 4

// starter is the StartFunc of a child's kind, the warm target's pool, and
// for self and warm the Host, as cmd/playground's serve prepares it: the
// default limits, cgroups where this user has them (unless --no-cgroups),
// subordinate ids where /etc/subuid grants them.
func starter(o childOptions, log zerolog.Logger, phases *phaseLog) (server.StartFunc, *server.Pool, *runtime.Host, error) {
	switch o.Kind {
	case "self", "warm":
		if o.StateDir == "" {
			return nil, nil, nil, errors.New(o.Kind + " needs --state-dir")
		}
		if n, err := runtime.CleanStateDir(o.StateDir); err != nil {
			log.Warn().Err(err).Msg("clean state dir")
		} else if n > 0 {
			log.Info().Int("removed", n).Msg("removed what a previous server left")
		}
		host, err := runtime.NewHost(runtime.HostOptions{StateDir: o.StateDir, NoCgroups: o.NoCgroups, PrepareIDs: o.Sessions, Log: func(m string) { log.Warn().Msg(m) }})
		if err != nil {
			return nil, nil, nil, err
		}
		for _, l := range host.ModeLines() {
			log.Info().Msg(l)
		}
		spec := runtime.Spec{
			Rootfs:   o.Rootfs,
			Hostname: "playground",
			Host:     host,
			// The same shell and prompt as every baseline.
			Args: []string{shell},
			Env:  []string{"PS1=$ "},
			// As playground serve starts its sessions' shells.
			ProgramIsInit: true,
		}
		if err := runtime.Check(spec); err != nil {
			_ = host.Close()
			return nil, nil, nil, fmt.Errorf("cannot start containers with rootfs %q: %w", o.Rootfs, err)
		}
		start := recordPhases(server.ContainerStart(spec), phases)
		if o.Kind == "warm" {
			pool := server.NewPool(start, warmPool, log)
			return pool.Start, pool, host, nil
		}
		return start, nil, host, nil
	case "plain":
		return plainStarter(o.Home), nil, nil, nil
	case "bwrap":
		return bwrapStarter(o.Bwrap), nil, nil, nil
	}
	return nil, nil, nil, fmt.Errorf("unknown kind %q", o.Kind)
}
