package server

import (
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/guntainer/playground/server/vt"
)

// termState is what a session keeps of its terminal's screen, so that a
// client that attaches (a resume, a watcher) gets the screen as it is,
// rebuilt, rather than a replay of old output.
//
// The output pump only copies output into a bounded ring (append); the
// emulator (package vt) is fed from the ring off the pump's path, by a
// goroutine started when the output pauses (quietAfter), at most once a
// second while it floods, at detach, and at a snapshot. Output that
// floods past the ring between two feeds is dropped unseen, the oldest
// first, and the emulator goes on from what is left: a screen is mostly
// made of recent output, and a flood costs the emulator a ring's worth a
// second, not its every byte. A panic in the emulator
// resets it (logged), and a snapshot's catching up is bounded in time, so
// the screen can be wrong, but the session never stalls or crashes.
type termState struct {
	log   func() *zerolog.Logger
	spawn func(func()) bool // runs a goroutine the session owns; false when it is ending

	rmu     sync.Mutex
	ring    []byte // circular; len is its size, a power of two up to maxRing
	head    int    // index of the oldest unfed byte
	n       int    // unfed bytes
	total   uint64 // bytes ever appended
	events  []sizeEvent
	gap     bool // output was dropped before the unfed bytes
	feeding bool // a feeder goroutine runs

	lastAppend time.Time
	lastFeed   time.Time   // when a feeder last started
	quiet      *time.Timer // feeds once output pauses; nil when not armed

	vmu     sync.Mutex
	screen  *vt.Screen
	scratch []byte
}

// sizeEvent is a resize at a point of the output stream: what came before
// it was drawn at the old size.
type sizeEvent struct {
	at         uint64
	cols, rows int
}

const (
	minRing        = 4 << 10
	maxRing        = 512 << 10
	feedChunk      = 32 << 10
	floodFeed      = maxRing / 2 // unfed bytes that start a feeder, at most every floodFeedEvery
	floodFeedEvery = time.Second
	quietAfter     = 50 * time.Millisecond
	maxEvents      = 64
	snapshotBudget = time.Second
)

func newTermState(cols, rows int, log func() *zerolog.Logger, spawn func(func()) bool) *termState {
	return &termState{
		log:    log,
		spawn:  spawn,
		screen: vt.New(cols, rows, vt.DefaultScrollbackLines, vt.DefaultScrollbackBytes),
	}
}

// append records output. It never blocks on the emulator.
func (st *termState) append(p []byte) {
	st.rmu.Lock()
	if len(p) > maxRing {
		st.dropLocked(st.n) // all of it is older than what fits
		st.total += uint64(len(p) - maxRing)
		p = p[len(p)-maxRing:]
		st.gap = true
	}
	if need := st.n + len(p); need > len(st.ring) {
		if len(st.ring) < maxRing {
			st.growLocked(need)
		}
		if over := need - len(st.ring); over > 0 {
			st.dropLocked(over)
			st.gap = true
		}
	}
	size := len(st.ring)
	tail := (st.head + st.n) % size
	k := copy(st.ring[tail:], p)
	copy(st.ring, p[k:])
	st.n += len(p)
	st.total += uint64(len(p))
	now := time.Now()
	st.lastAppend = now
	start := false
	if !st.feeding {
		if st.n >= floodFeed && now.Sub(st.lastFeed) >= floodFeedEvery {
			start = true
			st.feeding, st.lastFeed = true, now
		} else if st.quiet == nil {
			st.quiet = time.AfterFunc(quietAfter, st.onQuiet)
		}
	}
	until := st.total
	st.rmu.Unlock()
	// A flood's feeder digests what is there now, not what comes while it
	// works: a ring's worth a second, whatever the program prints.
	if start && !st.spawn(func() { st.feeder(until, false) }) {
		st.rmu.Lock()
		st.feeding = false
		st.rmu.Unlock()
	}
}

// onQuiet starts a feeder once output has paused for quietAfter.
func (st *termState) onQuiet() {
	st.rmu.Lock()
	if st.quiet == nil {
		st.rmu.Unlock()
		return // stopped
	}
	if wait := quietAfter - time.Since(st.lastAppend); wait > 0 {
		st.quiet.Reset(wait)
		st.rmu.Unlock()
		return
	}
	st.quiet = nil
	start := !st.feeding && (st.n > 0 || len(st.events) > 0)
	if start {
		st.feeding, st.lastFeed = true, time.Now()
	}
	st.rmu.Unlock()
	if start && !st.spawn(func() { st.feeder(0, true) }) {
		st.rmu.Lock()
		st.feeding = false
		st.rmu.Unlock()
	}
}

// stop stops the quiet timer: the session has ended.
func (st *termState) stop() {
	st.rmu.Lock()
	if st.quiet != nil {
		st.quiet.Stop()
		st.quiet = nil
	}
	st.rmu.Unlock()
}

func (st *termState) growLocked(need int) {
	size := max(len(st.ring), minRing)
	for size < need && size < maxRing {
		size *= 2
	}
	if size == len(st.ring) {
		return
	}
	nr := make([]byte, size)
	if st.n > 0 {
		k := copy(nr, st.ring[st.head:min(st.head+st.n, len(st.ring))])
		copy(nr[k:], st.ring[:st.n-k])
	}
	st.ring, st.head = nr, 0
}

func (st *termState) dropLocked(k int) {
	k = min(k, st.n)
	if k > 0 {
		st.head = (st.head + k) % len(st.ring)
		st.n -= k
	}
}

// resize records a size change at this point of the output.
func (st *termState) resize(cols, rows int) {
	st.rmu.Lock()
	if len(st.events) == maxEvents {
		// Only the last size matters for what follows: merge the oldest two.
		st.events[1].at = st.events[0].at
		st.events = st.events[1:]
	}
	st.events = append(st.events, sizeEvent{at: st.total, cols: cols, rows: rows})
	st.rmu.Unlock()
}

// kick starts a feeder if there is anything to feed: at detach, so the
// ring's memory goes while the session waits.
func (st *termState) kick() {
	st.rmu.Lock()
	start := (st.n > 0 || len(st.events) > 0) && !st.feeding
	if start {
		st.feeding = true
	}
	st.rmu.Unlock()
	if start && !st.spawn(func() { st.feeder(0, true) }) {
		st.rmu.Lock()
		st.feeding = false
		st.rmu.Unlock()
	}
}

// feeder feeds the emulator up to the stream offset until (0: all there
// is), then ends its turn; release lets the ring go once it is empty.
func (st *termState) feeder(until uint64, release bool) {
	for {
		st.vmu.Lock()
		more := st.feedOnce(until, release)
		st.vmu.Unlock()
		if !more {
			return
		}
	}
}

// feedOnce feeds the emulator the next chunk of output (up to the offset
// until, unless 0) and what resizes come before it; vmu is held. It
// reports false, and ends the feeder's turn, when there was nothing left.
// With release, an emptied ring is let go: an idle session holds none.
func (st *termState) feedOnce(until uint64, release bool) bool {
	st.rmu.Lock()
	start := st.total - uint64(st.n)
	gap := st.gap
	st.gap = false
	var pre []sizeEvent
	for len(st.events) > 0 && st.events[0].at <= start {
		pre = append(pre, st.events[0])
		st.events = st.events[1:]
	}
	k := min(st.n, feedChunk)
	if len(st.events) > 0 {
		k = min(k, int(st.events[0].at-start))
	}
	if until > 0 {
		k = min(k, int(max(until, start)-start))
	}
	if cap(st.scratch) < k {
		st.scratch = make([]byte, feedChunk)
	}
	chunk := st.scratch[:k]
	if k > 0 {
		c := copy(chunk, st.ring[st.head:min(st.head+k, len(st.ring))])
		copy(chunk[c:], st.ring[:k-c])
		st.dropLocked(k)
	}
	if st.n == 0 && release {
		st.ring, st.head = nil, 0 // an idle session holds no ring
	}
	empty := k == 0 && len(pre) == 0
	if empty {
		st.feeding = false
		st.scratch = nil
	}
	st.rmu.Unlock()

	if gap {
		st.screen.ResetParser()
	}
	for _, e := range pre {
		st.screen.Resize(e.cols, e.rows)
	}
	if k > 0 {
		st.feed(chunk)
	}
	return !empty
}

// feed writes to the emulator, which must not take the session down.
func (st *termState) feed(p []byte) {
	defer func() {
		if r := recover(); r != nil {
			cols, rows := st.screen.Size()
			st.log().Error().Str("panic", fmt.Sprint(r)).Msg("terminal state: emulator failed; screen reset")
			st.screen = vt.New(cols, rows, vt.DefaultScrollbackLines, vt.DefaultScrollbackBytes)
		}
	}()
	_, _ = st.screen.Write(p)
}

// snapshot catches the emulator up with all output so far (within a time
// budget, skipping the rest) and renders the screen.
func (st *termState) snapshot() (out []byte) {
	st.vmu.Lock()
	defer st.vmu.Unlock()
	deadline := time.Now().Add(snapshotBudget)
	for st.feedOnce(0, true) {
		if time.Now().After(deadline) {
			st.rmu.Lock()
			st.dropLocked(st.n)
			st.gap = true
			st.rmu.Unlock()
			st.log().Warn().Float64("budget_ms", ms(snapshotBudget)).Msg("terminal state: catching up took too long; output skipped")
		}
	}
	defer func() {
		if r := recover(); r != nil {
			st.log().Error().Str("panic", fmt.Sprint(r)).Msg("terminal state: render failed; sending a blank screen")
			out = []byte("\x1bc")
		}
	}()
	return st.screen.Render()
}
