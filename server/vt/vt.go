// Package vt keeps the state of a terminal from the output a program
// writes to it, and renders that state back as escape sequences: what a
// client that attaches later needs to see the screen as it is, without a
// raw replay of old output (a replay would re-send terminal queries, and
// the browser's answers would be typed into the shell).
//
// It is a small emulator of the xterm family as xterm.js implements it:
// a grid of cells with SGR attributes (16, 256 and 24-bit colours), the
// cursor and its saved state, scroll regions, the alternate screen, wide
// and combining characters, tab stops, the DEC line-drawing character set,
// the modes a client must be put back in (application cursor keys,
// bracketed paste, mouse reporting, ...), the window title, and a bounded
// scrollback of the main screen.
//
// It is built to be fed untrusted output: it never answers a query (it has
// no way to write to the program), every parameter is clamped, every
// buffer is bounded (MaxCols x MaxRows cells per screen, the scrollback by
// lines and bytes, OSC strings by length), and the work per byte written
// is bounded by a constant times the screen's width or height. What it
// does not know (sixel and other DCS strings, OSC 8 links, OSC 52, palette
// changes) it consumes and drops. A Screen is not safe for concurrent use.
package vt

// Bounds on what a Screen keeps.
const (
	MaxCols = 1000
	MaxRows = 1000

	DefaultScrollbackLines = 1000
	DefaultScrollbackBytes = 256 << 10

	maxParams    = 16
	maxParam     = 65535
	maxOSC       = 4096
	maxTitle     = 256
	maxCombining = 8 // bytes of combining marks kept per cell

	// maxMarkedCells bounds the cells with combining marks a screen keeps,
	// spread over its rows (combCap): each costs the server about 75
	// bytes, so a hostile program that marked every cell of a 1000x1000
	// screen and of its alternate held 174 MB of the server's memory. A
	// line keeps up to 682 marked cells at 24 rows and 163 at 100, more
	// than a line of real text (Thai, Devanagari) marks at those sizes;
	// a mark beyond the bound is dropped, which only a later client's
	// rebuilt screen shows.
	maxMarkedCells = 16 << 10
)

// combCap is how many cells of one line may carry combining marks.
func (s *Screen) combCap() int { return max(maxMarkedCells/s.rows, 16) }

// Screen is the state of one terminal.
type Screen struct {
	cols, rows int

	main, alt *buffer
	buf       *buffer // main or alt: the one shown

	cur   cursor
	modes modes
	tabs  []bool

	title string

	sb scrollback

	p parser

	lastChar rune // for REP; 0 when nothing printable came yet

	tmp []*line // scratch for scrolling

	// Work counts cell and line operations, so tests can check that the
	// work per byte is bounded.
	Work int64
}

// cursor is the cursor and what DECSC saves with it.
type cursor struct {
	x, y     int
	pen      attr
	wrapNext bool // the last column was written: the next printable wraps first
	charsets [4]byte
	gl       int // 0 or 1: which of G0, G1 is in use (SI/SO)
	origin   bool
}

type modes struct {
	insert, newline       bool // IRM, LNM
	autowrapOff           bool // DECAWM reset
	appCursor, appKeypad  bool // DECCKM, DECKPAM
	cursorHidden          bool // DECTCEM reset
	reverse               bool // DECSCNM
	bracketedPaste, focus bool // 2004, 1004
	mouse                 int  // 0, 9, 1000, 1002 or 1003
	mouseEnc              int  // 0, 1005, 1006 or 1015
	cursorStyle           int  // DECSCUSR, 0 = default
	top, bottom           int  // scroll region, inclusive; bottom 0 = rows-1
}

// New returns a blank screen of cols x rows (clamped to 1..MaxCols and
// 1..MaxRows) whose scrollback keeps at most sbLines lines and sbBytes
// bytes of rendered text.
func New(cols, rows, sbLines, sbBytes int) *Screen {
	cols, rows = clampSize(cols, rows)
	s := &Screen{cols: cols, rows: rows}
	s.sb = scrollback{maxLines: max(sbLines, 0), maxBytes: max(sbBytes, 0)}
	s.main = newBuffer(rows)
	s.buf = s.main
	s.reset()
	return s
}

func clampSize(cols, rows int) (int, int) {
	return min(max(cols, 1), MaxCols), min(max(rows, 1), MaxRows)
}

// Size returns the screen's size.
func (s *Screen) Size() (cols, rows int) { return s.cols, s.rows }

// Title is the window title the program last set (OSC 0 or 2).
func (s *Screen) Title() string { return s.title }

// Cursor returns the cursor's column and row, from 0.
func (s *Screen) Cursor() (x, y int) { return s.cur.x, s.cur.y }

// AltScreen reports whether the alternate screen is shown.
func (s *Screen) AltScreen() bool { return s.buf == s.alt }

// reset is RIS: everything back to power-on, the size kept.
func (s *Screen) reset() {
	s.main = newBuffer(s.rows)
	s.alt = nil
	s.buf = s.main
	s.cur = cursor{charsets: [4]byte{'B', 'B', 'B', 'B'}}
	s.main.saved = s.cur
	s.modes = modes{}
	s.resetTabs()
	s.title = ""
	s.sb.clear()
	s.lastChar = 0
}

func (s *Screen) resetTabs() {
	if cap(s.tabs) >= s.cols {
		s.tabs = s.tabs[:s.cols]
	} else {
		s.tabs = make([]bool, s.cols)
	}
	for i := range s.tabs {
		s.tabs[i] = i > 0 && i%8 == 0
	}
}

// bottom is the scroll region's last row.
func (s *Screen) bottom() int {
	if s.modes.bottom == 0 || s.modes.bottom >= s.rows {
		return s.rows - 1
	}
	return s.modes.bottom
}

func (s *Screen) top() int {
	if s.modes.top >= s.bottom() {
		return 0
	}
	return s.modes.top
}

// Resize changes the screen's size, as xterm.js does without reflow:
// lines are cut or padded at the right; when rows go, the ones above the
// cursor scroll into the scrollback first, then empty ones below it go.
func (s *Screen) Resize(cols, rows int) {
	cols, rows = clampSize(cols, rows)
	if cols == s.cols && rows == s.rows {
		return
	}
	for _, b := range []*buffer{s.main, s.alt} {
		if b == nil {
			continue
		}
		y := b.saved.y
		if b == s.buf {
			y = s.cur.y
		}
		shift := s.resizeBuffer(b, cols, rows, y, b == s.main)
		b.saved.y = max(b.saved.y-shift, 0)
		if b == s.buf {
			s.cur.y -= shift
		}
	}
	if cols != s.cols {
		// A scrollback row that wrapped at the old width does not at this one.
		for i := range s.sb.lines {
			s.sb.lines[i].wrapped = false
		}
	}
	s.cols, s.rows = cols, rows
	oldTabs := s.tabs
	s.tabs = make([]bool, cols)
	for i := range s.tabs {
		if i < len(oldTabs) {
			s.tabs[i] = oldTabs[i]
		} else {
			s.tabs[i] = i%8 == 0
		}
	}
	s.modes.top, s.modes.bottom = 0, 0
	s.cur.x = min(s.cur.x, cols-1)
	s.cur.y = min(max(s.cur.y, 0), rows-1)
	s.cur.wrapNext = false
	for _, b := range []*buffer{s.main, s.alt} {
		if b != nil {
			b.saved.x = min(b.saved.x, cols-1)
			b.saved.y = min(b.saved.y, rows-1)
		}
	}
}

// resizeBuffer resizes b and returns by how many rows its content moved
// up (lines that went off the top).
func (s *Screen) resizeBuffer(b *buffer, cols, rows, cursorY int, main bool) int {
	for _, l := range b.lines {
		l.truncate(cols)
		s.Work++
	}
	shift := 0
	for len(b.lines) > rows {
		// Drop an empty line below the cursor, else the top line.
		last := len(b.lines) - 1
		if last > cursorY && b.lines[last].empty() {
			b.lines = b.lines[:last]
			continue
		}
		if main {
			s.sb.push(b.lines[0], s.cols)
		}
		b.lines = b.lines[1:]
		cursorY--
		shift++
		s.Work++
	}
	for len(b.lines) < rows {
		b.lines = append(b.lines, &line{})
		s.Work++
	}
	return shift
}

// Write feeds output to the screen. It never fails and never blocks.
func (s *Screen) Write(p []byte) (int, error) {
	s.parse(p)
	return len(p), nil
}

// ResetParser forgets a half-read escape sequence or UTF-8 character: for
// a feeder that skipped output, so that what follows is not read as the
// rest of what came before.
func (s *Screen) ResetParser() { s.p = parser{} }
