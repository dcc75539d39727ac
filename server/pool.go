package server

import (
	"context"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Pool keeps terminals started ahead of demand, so that a session gets one
// at once instead of waiting for a container to be built. A warm terminal
// is started at the default size, 80x24, and resized when it is taken; its
// shell's first prompt waits in the pty until the session reads it.
//
// Pool.Start is a StartFunc: it hands out a warm terminal when there is
// one, else starts one cold, and refills in the background, one at a time
// so that refilling never takes more than one core from live sessions.
// Close ends every warm terminal; it is idempotent and waits for the
// refill to stop.
type Pool struct {
	start StartFunc
	size  int
	log   zerolog.Logger

	warm   chan Terminal
	refill chan struct{} // a token: someone took a terminal
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// Default size of a warm terminal.
const warmCols, warmRows = 80, 24

// NewPool starts filling a pool of size warm terminals from start.
func NewPool(start StartFunc, size int, log zerolog.Logger) *Pool {
	ctx, cancel := context.WithCancel(context.Background())
	p := &Pool{
		start:  start,
		size:   size,
		log:    log.With().Str("component", "pool").Logger(),
		warm:   make(chan Terminal, size),
		refill: make(chan struct{}, 1),
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
	}
	go p.fill()
	return p
}

// Start returns a warm terminal resized to cols x rows, or a cold one when
// none is warm.
func (p *Pool) Start(ctx context.Context, cols, rows uint16) (Terminal, error) {
	for {
		select {
		case t := <-p.warm:
			p.wake()
			if !alive(t) || t.Resize(cols, rows) != nil {
				_ = t.Close() // died while it waited: take the next
				continue
			}
			return t, nil
		default:
			return p.start(ctx, cols, rows)
		}
	}
}

// Warm is the number of terminals waiting now.
func (p *Pool) Warm() int { return len(p.warm) }

// Close stops refilling and ends every warm terminal.
func (p *Pool) Close() error {
	p.once.Do(func() {
		p.cancel()
		<-p.done
		for {
			select {
			case t := <-p.warm:
				_ = t.Close() // a warm terminal has nobody to report to
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

// fill keeps the pool full until Close. A failing start backs off, from a
// tenth of a second to half a minute, so a broken machine is not hammered.
func (p *Pool) fill() {
	defer close(p.done)
	backoff := 100 * time.Millisecond
	for {
		for len(p.warm) < p.size {
			t, err := p.start(p.ctx, warmCols, warmRows)
			if p.ctx.Err() != nil {
				if err == nil {
					_ = t.Close() // closing down
				}
				return
			}
			if err != nil {
				p.log.Warn().Err(err).Dur("retry_in", backoff).Msg("warm start failed")
				select {
				case <-time.After(backoff):
				case <-p.ctx.Done():
					return
				}
				backoff = min(2*backoff, 30*time.Second)
				continue
			}
			backoff = 100 * time.Millisecond
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
