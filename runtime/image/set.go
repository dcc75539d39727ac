package image

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Set is a server's environments, named, the first the default. Start
// prepares them all in the background, each on its own; one that fails
// does not stop the others. Safe for concurrent use.
type Set struct {
	// Check, when set before Start, runs on each environment once it is
	// prepared and before it is ready (a server starts a container on it):
	// an error fails the environment, as a failed preparation does.
	Check func(*Image) error

	cache  *Cache
	report ProgressFunc
	envs   []*env
	byName map[string]*env

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// RetryAfter is how long a failed environment stays failed before a
// request for it (Get, or Ready for the default) tries it again.
var RetryAfter = 30 * time.Second

type env struct {
	src Source

	mu       sync.Mutex
	progress Progress
	img      *Image
	err      error
	failedAt time.Time
	running  bool
	changed  chan struct{} // closed and replaced at every change
}

// Status is where one environment is.
type Status struct {
	Name     string
	Source   string
	Progress Progress // Phase is PhaseReady or PhaseFailed at the end
	Image    *Image   // when ready
	Err      error    // when failed
}

// NewSet parses the sources ("SOURCE" or "NAME=SOURCE", as --rootfs takes
// them; the first is the default) and checks that their names differ.
// report, which may be nil, gets every environment's progress (a
// Reporter's Report).
func NewSet(cache *Cache, sources []string, report ProgressFunc) (*Set, error) {
	if len(sources) == 0 {
		return nil, errors.New("no environment given")
	}
	s := &Set{cache: cache, report: report, byName: map[string]*env{}}
	for _, text := range sources {
		src, err := ParseSource(text)
		if err != nil {
			return nil, err
		}
		if prev, ok := s.byName[src.Name]; ok {
			return nil, fmt.Errorf("two environments named %q (%s and %s): name them with NAME=SOURCE", src.Name, prev.src, src)
		}
		e := &env{src: src, changed: make(chan struct{})}
		e.progress = Progress{Env: src.Name, Source: src.String(), Phase: PhaseQueued}
		s.envs = append(s.envs, e)
		s.byName[src.Name] = e
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Names are the environments' names, the default first.
func (s *Set) Names() []string {
	n := make([]string, len(s.envs))
	for i, e := range s.envs {
		n[i] = e.src.Name
	}
	return n
}

// Default is the default environment's name.
func (s *Set) Default() string { return s.envs[0].src.Name }

// Start prepares every environment in the background. It returns at once.
func (s *Set) Start() {
	for _, e := range s.envs {
		s.run(e)
	}
}

// run starts preparing e unless it is being prepared or ready.
func (s *Set) run(e *env) {
	e.mu.Lock()
	if e.running || e.img != nil || s.ctx.Err() != nil {
		e.mu.Unlock()
		return
	}
	e.running, e.err = true, nil
	e.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		img, err := s.cache.Prepare(s.ctx, e.src, func(p Progress) {
			if p.Phase == PhaseReady && s.Check != nil {
				return // ready once checked
			}
			s.update(e, p)
		})
		if err == nil && s.Check != nil {
			if cerr := s.Check(img); cerr != nil {
				_ = img.Close() // of no use
				img, err = nil, fmt.Errorf("environment %s (%s): %w", e.src.Name, e.src, cerr)
				s.update(e, Progress{Env: e.src.Name, Source: e.src.String(), Phase: PhaseFailed, Err: err})
			} else {
				s.update(e, Progress{Env: e.src.Name, Source: e.src.String(), Phase: PhaseReady})
			}
		}
		e.mu.Lock()
		e.running = false
		if err != nil {
			e.err, e.failedAt = err, time.Now()
			if e.progress.Phase != PhaseFailed {
				e.progress = Progress{Env: e.src.Name, Source: e.src.String(), Phase: PhaseFailed, Err: err}
			}
		} else {
			e.img = img
			e.progress = Progress{Env: e.src.Name, Source: e.src.String(), Phase: PhaseReady}
		}
		e.notify()
		e.mu.Unlock()
	}()
}

func (s *Set) update(e *env, p Progress) {
	e.mu.Lock()
	e.progress = p
	e.notify()
	e.mu.Unlock()
	if s.report != nil {
		s.report(p)
	}
}

// notify wakes the waiters; e.mu is held.
func (e *env) notify() {
	close(e.changed)
	e.changed = make(chan struct{})
}

// Get returns the environment name ("" for the default), waiting while it
// is prepared; notify, which may be nil, is told the progress meanwhile
// (for NOTICEs to a waiting session: at each change of phase and at most
// once a second). An unknown name is an error that lists the names. A
// failed environment is tried again when it failed more than RetryAfter
// ago.
func (s *Set) Get(ctx context.Context, name string, notify ProgressFunc) (*Image, error) {
	if name == "" {
		name = s.Default()
	}
	e, ok := s.byName[name]
	if !ok {
		return nil, fmt.Errorf("unknown environment %q (there are: %s)", name, strings.Join(s.Names(), ", "))
	}
	var last Progress
	var lastAt time.Time
	for {
		e.mu.Lock()
		if e.img == nil && !e.running && e.err != nil && time.Since(e.failedAt) > RetryAfter {
			e.mu.Unlock()
			s.run(e)
			e.mu.Lock()
		}
		img, err, p, ch, running := e.img, e.err, e.progress, e.changed, e.running
		e.mu.Unlock()
		switch {
		case img != nil:
			return img, nil
		case err != nil && !running:
			return nil, err
		}
		if notify != nil && (p.Phase != last.Phase || time.Since(lastAt) >= time.Second) {
			notify(p)
			last, lastAt = p, time.Now()
		}
		if !running && err == nil {
			s.run(e) // Start was not called, or not yet for this one
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.ctx.Done():
			return nil, errors.New("environments closed")
		case <-ch:
		}
	}
}

// Ready is nil once the default environment is ready, else why not, for
// /readyz: "environment ubuntu: downloading 12.0 MiB of 29.6 MiB (40%)".
// A default environment that failed is tried again after RetryAfter.
func (s *Set) Ready() error {
	e := s.envs[0]
	e.mu.Lock()
	img, err, p, running := e.img, e.err, e.progress, e.running
	retry := img == nil && !running && err != nil && time.Since(e.failedAt) > RetryAfter
	e.mu.Unlock()
	if retry {
		s.run(e)
	}
	switch {
	case img != nil:
		return nil
	case err != nil:
		return fmt.Errorf("environment %s failed: %w", e.src.Name, err)
	}
	return fmt.Errorf("environment %s", p)
}

// Status is every environment's state, in order.
func (s *Set) Status() []Status {
	out := make([]Status, len(s.envs))
	for i, e := range s.envs {
		e.mu.Lock()
		out[i] = Status{Name: e.src.Name, Source: e.src.String(), Progress: e.progress, Image: e.img, Err: e.err}
		e.mu.Unlock()
	}
	return out
}

// Close stops what is still being prepared, waits for it, and releases the
// environments' trees. The Images that Get returned must not be used to
// start containers after it. Idempotent.
func (s *Set) Close() error {
	s.cancel()
	s.wg.Wait()
	var errs []error
	for _, e := range s.envs {
		e.mu.Lock()
		if e.img != nil {
			errs = append(errs, e.img.Close())
		}
		e.mu.Unlock()
	}
	return errors.Join(errs...)
}
