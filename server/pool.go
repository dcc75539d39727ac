package server

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Pool keeps terminals of the default environment started ahead of demand,
// so that a session gets one at once instead of waiting for a container
// to be built. A warm terminal is started at the default size, 80x24, and
// resized when it is taken; its shell's first prompt waits in the pty
// until the session reads it.
//
// Pool.Start is a StartFunc: it hands out a warm terminal when there is
// one, else starts one cold (honouring ctx), and refills in the
// background, one at a time so that refilling never takes more than one
// core from live sessions. A Server given the pool (Deps.Pool) keeps warm
// terminals and open sessions together within its session limit.
// Close ends every warm terminal and stops the refill; it is idempotent,
// and Start fails with ErrPoolClosed after it.
type Pool struct {
	start StartFunc
	size  int
	log   zerolog.Logger

	room atomic.Pointer[func() int] // how many terminals may be held now; nil: size

	warm      chan Terminal
	refill    chan struct{} // a token: wake the filler
	ctx       context.Context
	cancel    context.CancelFunc
	done      chan struct{}
	abandoned sync.WaitGroup // refill starts Close gave up on, still closing their terminal
	once      sync.Once
	closed    atomic.Bool
}

// ErrPoolClosed is Start's error after Close.
var ErrPoolClosed = errors.New("pool closed")

// Default size of a warm terminal.
const warmCols, warmRows = 80, 24

// NewPool starts filling a pool of size warm terminals from start.
func NewPool(start StartFunc, size int, log zerolog.Logger) *Pool {
	ctx, cancel := context.WithCancel(context.Background())
	p := &Pool{
		start:  start,
		size:   max(size, 0),
		log:    log.With().Str("component", "pool").Logger(),
		warm:   make(chan Terminal, max(size, 0)),
		refill: make(chan struct{}, 1),
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
	}
	p.ctx = withAbandonGroup(ctx, &p.abandoned)
	go p.fill()
	return p
}

// limit makes the pool hold at most room() warm terminals: the server's
// session limit minus its open sessions.
func (p *Pool) limit(room func() int) {
	p.room.Store(&room)
	p.wake()
}

func (p *Pool) target() int {
	if r := p.room.Load(); r != nil {
		return max(min(p.size, (*r)()), 0)
	}
	return p.size
}

// Start returns a warm terminal resized to the request's size, or a cold
// one when none is warm or the request is for another environment.
func (p *Pool) Start(ctx context.Context, req StartRequest) (Terminal, error) {
	for req.Env == "" {
		if p.closed.Load() {
			return nil, ErrPoolClosed
		}
		select {
		case t := <-p.warm:
			// Settled before the wake, so that the refill sees the room
			// the session now holds itself.
			req.settle()
			p.wake()
			if !alive(t) || t.Resize(req.Cols, req.Rows) != nil {
				_ = t.Close() // died while it waited: take the next
				_, _ = t.Wait()
				continue
			}
			if req.info != nil {
				req.info.warm = true
			}
			return t, nil
		default:
		}
		break
	}
	req.settle() // none warm: the session's place is its own cold start's
	if p.closed.Load() {
		return nil, ErrPoolClosed
	}
	return p.start(ctx, req)
}

// Warm is the number of terminals waiting now.
func (p *Pool) Warm() int { return len(p.warm) }

// Size is the number of terminals the pool tries to keep.
func (p *Pool) Size() int { return p.size }

// Close stops refilling and ends every warm terminal. A start the filler
// has running is abandoned, and Close waits until its terminal, when it
// comes, is closed too.
func (p *Pool) Close() error {
	p.once.Do(func() {
		p.closed.Store(true)
		p.cancel()
		<-p.done
		p.abandoned.Wait()
		for {
			select {
			case t := <-p.warm:
				_ = t.Close() // a warm terminal has nobody to report to
				_, _ = t.Wait()
			default:
				return
			}
		}
	})
	return nil
}

func (p *Pool) wake() {
	select {
	case p.refill <- struct{}{}:
	default: // already woken
	}
}

// fill keeps the pool at its target until Close. A failing start backs
// off, from a tenth of a second to half a minute, so a broken machine is
// not hammered.
func (p *Pool) fill() {
	defer close(p.done)
	backoff := 100 * time.Millisecond
	for {
		// Above the target (the server's sessions took the room): end the
		// extra ones.
		for len(p.warm) > p.target() {
			select {
			case t := <-p.warm:
				_ = t.Close()
				_, _ = t.Wait()
			default:
			}
		}
		for len(p.warm) < p.target() {
			t, err := p.start(p.ctx, StartRequest{Cols: warmCols, Rows: warmRows})
			if p.ctx.Err() != nil {
				if err == nil {
					_ = t.Close() // closing down
					_, _ = t.Wait()
				}
				return
			}
			if err != nil {
				p.log.Warn().Err(err).Float64("retry_in_ms", ms(backoff)).Msg("warm start failed")
				select {
				case <-time.After(backoff):
				case <-p.ctx.Done():
					return
				}
				backoff = min(2*backoff, 30*time.Second)
				continue
			}
			backoff = 100 * time.Millisecond
			if len(p.warm) >= p.target() {
				// The room went while it started.
				_ = t.Close()
				_, _ = t.Wait()
				break
			}
			p.warm <- t // never blocks: only fill adds, and it checked the room
		}
		select {
		case <-p.refill:
		case <-p.ctx.Done():
			return
		}
		// Building a container takes a core for several milliseconds: let
		// the session that just took one get its first answer before that,
		// unless the pool ran dry.
		if len(p.warm) > 0 {
			select {
			case <-time.After(refillDelay):
			case <-p.ctx.Done():
				return
			}
		}
	}
}

// refillDelay is how long a refill waits after a terminal was taken.
const refillDelay = 50 * time.Millisecond

// alive reports whether a terminal that can tell has not ended yet.
func alive(t Terminal) bool {
	d, ok := t.(interface{ Done() <-chan struct{} })
	if !ok {
		return true
	}
	select {
	case <-d.Done():
		return false
	default:
		return true
	}
}
