package server

import (
	"sync"
	"sync/atomic"
	"time"
)

// Typeahead: what a client types before a new session's program has set
// up its terminal. A pty starts in the line discipline's cooked echo mode
// (ICANON and ECHO on): input written to it then is echoed by the kernel
// at once, and when the shell's line editor (bash's readline, zsh's zle)
// starts, turns both off and reads that input, it echoes it again. A
// command typed before the prompt (--warm 0, or a pool that ran dry) was
// shown twice. So the input writer holds a new session's input, which
// queues meanwhile within maxInputQueue, until the terminal is out of
// cooked echo mode; or until the program, still in cooked mode, blocks
// reading it (see cookedReader); or until the program, in cooked mode, has
// printed something and then nothing for typeaheadQuiet (a shell without
// a line editor, such as dash, waiting at its prompt: the kernel's echo
// is the only one it gets); or until typeaheadHold has passed since the
// program started; or until a signal key comes (^C, or the key stty made
// the interrupt, quit or suspend: signalKeyIn). After
// that first release input is never held again: a program that goes back
// to cooked mode later (cat, read) gets what is typed at once.
//
// The terminal says whether it echoes through an optional method,
// runtime.Container's: TCGETS on the pty master, which reports the
// slave's settings. A Terminal without it is never held.

// Variables, not constants, so that a test can take a fallback away and
// see the path it means to test.
var (
	typeaheadHold  = 2 * time.Second
	typeaheadQuiet = 150 * time.Millisecond
	typeaheadPoll  = 2 * time.Millisecond
	typeaheadQuick = 100 * time.Microsecond
	// typeaheadPollMax: the looks back off, doubling from typeaheadPoll,
	// while the program is silent. A program waiting for the CPU in a
	// burst of starts is silent for a long while, and a look every 2 ms
	// (an ioctl, a read of /proc and a stat for a container) cost each
	// start about half a millisecond of the server's CPU; its print starts
	// quick looks again.
	typeaheadPollMax = 25 * time.Millisecond
)

type echoer interface {
	EchoesInput() (bool, error)
}

// cookedReader is an echoer that can also tell that its program is
// blocked reading the cooked terminal (runtime.Container: the foreground
// process in read(2)). Then the kernel's echo is the only one input will
// get, and the hold ends at once: a shell without a line editor (dash)
// gets its typeahead as soon as it waits at its prompt, not
// typeaheadQuiet after it (which cost every such session's first
// command 150 ms).
type cookedReader interface {
	ReadsCookedInput() (bool, error)
}

// typeahead is a session's hold on its first input.
type typeahead struct {
	done     atomic.Bool // released: input flows
	once     sync.Once
	released chan struct{} // closed by release
	mu       sync.Mutex
	// printed has a token when the program's output came while a hold may
	// be under way or before it began (notePrinted); made with released,
	// when the session is.
	printed atomic.Pointer[chan struct{}]
}

// release lets input through at once (a Ctrl-C: the user wants the
// program interrupted, not the terminal's setup waited for).
func (h *typeahead) release() {
	h.init()
	h.once.Do(func() { close(h.released) })
}

func (h *typeahead) init() {
	h.mu.Lock()
	if h.released == nil {
		h.released = make(chan struct{})
		printed := make(chan struct{}, 1)
		h.printed.Store(&printed)
	}
	h.mu.Unlock()
}

// notePrinted tells a hold that the program wrote output. A shell prints
// its prompt just before it sets up its terminal (a line editor) or reads
// it (dash), so the hold looks again at once, and soon after, rather than
// at its next poll: that poll's wait, up to typeaheadPoll, was on the way
// to the first answer of every session whose client typed before the
// prompt. Cheap when nothing holds: a load, and a send that does not
// wait.
func (h *typeahead) notePrinted() {
	if h.done.Load() {
		return
	}
	if c := h.printed.Load(); c != nil {
		select {
		case *c <- struct{}{}:
		default:
		}
	}
}

// waitTypeahead is the input writer's wait before its first write to
// term: until term leaves cooked echo mode, typeaheadHold after the
// program started, a signal key (^C, ^\, ^Z, or the keys stty made them),
// or the session's end. It returns at once after the first time.
func (ss *session) waitTypeahead(term Terminal) {
	h := &ss.ahead
	if h.done.Load() {
		return
	}
	defer h.done.Store(true)
	e, ok := term.(echoer)
	if !ok {
		return
	}
	h.init()
	ss.mu.Lock()
	started := ss.started
	ss.mu.Unlock()
	wait := time.Until(started.Add(typeaheadHold))
	if wait <= 0 {
		return
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	// A look after typeaheadPoll, twice that, and so on up to
	// typeaheadPollMax; and when the program prints, one at once and more
	// after typeaheadQuick, twice that, and so on (output while those are
	// under way, below typeaheadPoll, starts no more).
	delay := typeaheadPoll
	most := max(typeaheadPoll, typeaheadPollMax) // a test's typeaheadPoll may be out of reach
	next := time.NewTimer(delay)
	defer next.Stop()
	printed := *h.printed.Load()
	var out int64   // the program's output so far
	var quiet int64 // since when it has not grown, unix nanos; 0 before any
	cr, _ := term.(cookedReader)
	look := true
	for {
		if look {
			cooked, err := e.EchoesInput()
			if err != nil || !cooked {
				return
			}
			if cr != nil {
				if reading, err := cr.ReadsCookedInput(); err == nil && reading {
					return
				}
			}
			now := time.Now()
			if n := ss.bytesOut.Load(); n != out {
				out, quiet = n, now.UnixNano()
			} else if quiet != 0 && now.Sub(time.Unix(0, quiet)) >= typeaheadQuiet {
				return // a prompt printed in cooked mode: no line editor to echo again
			}
		}
		look = true
		select {
		case <-next.C:
			delay = min(2*delay, most)
			next.Reset(delay)
		case <-printed:
			if delay < typeaheadPoll {
				look = false // quick looks are under way
			} else {
				delay = typeaheadQuick
				next.Reset(delay)
			}
		case <-deadline.C:
			ss.l().Debug().Float64("hold_ms", ms(typeaheadHold)).Msg("typeahead: the terminal is still in cooked echo mode; input goes on")
			return
		case <-h.released:
			return
		case <-ss.ctx.Done():
			return
		}
	}
}
