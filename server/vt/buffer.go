package vt

// attr is a cell's look: foreground and background colour, each packed as
// a kind (default, palette, RGB) and a value in the low 26 bits, with six
// of the style flags in the top six bits of each.
type attr struct{ fg, bg uint32 }

const (
	colorMask    = 1<<26 - 1
	colorKindPal = 1 << 24
	colorKindRGB = 2 << 24
)

// Style flags, as bit numbers 0..11: 0-5 live in fg's top bits, 6-11 in bg's.
const (
	flagBold = 1 << iota
	flagFaint
	flagItalic
	flagUnderline
	flagBlink
	flagInverse
	flagInvisible
	flagStrike
	flagOverline
	flagDoubleUnderline
)

func (a attr) flags() uint32 { return a.fg>>26 | (a.bg>>26)<<6 }
func (a *attr) setFlags(f uint32) {
	a.fg = a.fg&colorMask | (f&0x3f)<<26
	a.bg = a.bg&colorMask | (f>>6&0x3f)<<26
}
func (a attr) fgColor() uint32 { return a.fg & colorMask }
func (a attr) bgColor() uint32 { return a.bg & colorMask }
func (a *attr) setFg(c uint32) { a.fg = a.fg&^colorMask | c&colorMask }
func (a *attr) setBg(c uint32) { a.bg = a.bg&^colorMask | c&colorMask }

// eraseAttr is what erased cells get: the pen's background only (xterm's
// "background colour erase").
func (a attr) eraseAttr() attr { return attr{bg: a.bg & colorMask} }

// cell is one character cell. r is wideCont in the right half of a wide
// character.
type cell struct {
	r rune
	a attr
}

const wideCont rune = -1

var blank = cell{r: ' '}

// line is one row. Cells past len(cells) are blanks of attribute fill,
// so short lines and lines erased to their end cost little.
type line struct {
	cells   []cell
	fill    attr           // attribute of the blanks past cells
	wrapped bool           // the text continues on the next row (autowrap)
	comb    map[int]string // combining marks after the cell at a column
}

func (l *line) blankCell() cell { return cell{r: ' ', a: l.fill} }

func (l *line) empty() bool {
	if l.fill != (attr{}) || len(l.comb) > 0 {
		return false
	}
	for _, c := range l.cells {
		if c != blank {
			return false
		}
	}
	return true
}

// clear makes the line blank with attribute fill.
func (l *line) clear(fill attr) {
	l.cells = l.cells[:0]
	l.fill = fill
	l.wrapped = false
	l.comb = nil
}

func (l *line) at(x int) cell {
	if x < len(l.cells) {
		return l.cells[x]
	}
	return l.blankCell()
}

// grow makes cells [0, n) addressable.
func (l *line) grow(n int) {
	if n > cap(l.cells) {
		l.reserve(n)
	}
	b := l.blankCell()
	for len(l.cells) < n {
		l.cells = append(l.cells, b)
	}
}

// reserve gives the line room for n cells. A line's capacity is a power
// of two from 8: a full row of the widest screen holds 1,024 cells, where
// append's growth left 1,365 (a hostile program's two full 1000x1000
// screens, 31 MB of cells, are 25 MB so).
func (l *line) reserve(n int) {
	c := 8
	for c < n {
		c *= 2
	}
	cells := make([]cell, len(l.cells), c)
	copy(cells, l.cells)
	l.cells = cells
}

func (l *line) truncate(cols int) {
	if len(l.cells) > cols {
		// A wide character cut in half is no character.
		if cols > 0 && l.cells[cols].r == wideCont {
			l.cells[cols-1] = l.blankCell()
		}
		l.cells = l.cells[:cols]
	}
	for x := range l.comb {
		if x >= cols {
			delete(l.comb, x)
		}
	}
	l.trim()
}

// trim drops trailing cells that are the same as the fill.
func (l *line) trim() {
	b := l.blankCell()
	n := len(l.cells)
	for n > 0 && l.cells[n-1] == b && l.comb[n-1] == "" {
		n--
	}
	l.cells = l.cells[:n]
}

// fixWide blanks the other half of a wide character at x, and the
// combining marks at x, before x is overwritten.
func (l *line) fixWide(x int) {
	if x < len(l.cells) {
		if l.cells[x].r == wideCont {
			l.cells[x].r = ' '
			if x > 0 {
				l.cells[x-1] = cell{r: ' ', a: l.cells[x-1].a}
			}
		}
		if x+1 < len(l.cells) && l.cells[x+1].r == wideCont {
			l.cells[x+1] = cell{r: ' ', a: l.cells[x+1].a}
		}
	}
	if l.comb != nil {
		delete(l.comb, x)
	}
}

// erase blanks [x0, x1) with attribute a; x1 >= cols erases to the end.
func (l *line) erase(x0, x1, cols int, a attr) {
	if x0 >= x1 {
		return
	}
	l.fixWide(x0)
	if x1 < cols {
		l.fixWide(x1 - 1)
	}
	for x := range l.comb {
		if x >= x0 && x < x1 {
			delete(l.comb, x)
		}
	}
	if x1 >= cols {
		if a != l.fill {
			l.grow(x0) // the blanks before x0 keep the old fill
		}
		l.cells = l.cells[:min(x0, len(l.cells))]
		l.fill = a
		l.trim()
		return
	}
	c := cell{r: ' ', a: a}
	if x0 >= len(l.cells) && c == l.blankCell() {
		return
	}
	l.grow(x1)
	for x := x0; x < x1; x++ {
		l.cells[x] = c
	}
}

// buffer is a screen's rows: the main one or the alternate one, each with
// its own saved cursor.
type buffer struct {
	lines []*line
	saved cursor
}

func newBuffer(rows int) *buffer {
	b := &buffer{lines: make([]*line, rows)}
	b.saved.charsets = [4]byte{'B', 'B', 'B', 'B'}
	for i := range b.lines {
		b.lines[i] = &line{}
	}
	return b
}

// scrollback keeps the lines that scrolled off the main screen, rendered,
// within maxLines and maxBytes, dropping the oldest first.
type scrollback struct {
	lines    []sbLine // oldest first; a ring from head
	head     int
	n        int
	bytes    int
	maxLines int
	maxBytes int
	scratch  []byte
}

type sbLine struct {
	b        []byte // the line's cells as UTF-8 with SGR, ending in SGR 0
	wrapped  bool   // it filled its row and continues on the next
	hasCells bool   // it starts with a character (so a pending wrap resolves)
}

func (sb *scrollback) clear() {
	sb.lines, sb.head, sb.n, sb.bytes, sb.scratch = nil, 0, 0, 0, nil
}

func (sb *scrollback) push(l *line, cols int) {
	if sb.maxLines == 0 || sb.maxBytes == 0 {
		return
	}
	sb.scratch = renderLine(sb.scratch[:0], l, cols, false)
	if len(sb.scratch) > sb.maxBytes {
		return
	}
	var reuse []byte
	for sb.n > 0 && (sb.n == sb.maxLines || sb.bytes+len(sb.scratch) > sb.maxBytes) {
		reuse = sb.lines[sb.head].b
		sb.bytes -= len(reuse)
		sb.lines[sb.head] = sbLine{}
		sb.head = (sb.head + 1) % len(sb.lines)
		sb.n--
	}
	if len(sb.lines) < sb.maxLines && sb.n == len(sb.lines) {
		// Grow the ring, keeping order.
		nl := make([]sbLine, min(max(2*len(sb.lines), 16), sb.maxLines))
		for i := range sb.n {
			nl[i] = sb.lines[(sb.head+i)%len(sb.lines)]
		}
		sb.lines = nl
		sb.head = 0
	}
	if cap(reuse) > 2*len(sb.scratch)+64 {
		reuse = nil // do not let a long line's buffer hold memory the count does not see
	}
	b := append(reuse[:0], sb.scratch...)
	sb.lines[(sb.head+sb.n)%len(sb.lines)] = sbLine{b: b, wrapped: l.wrapped && len(l.cells) >= cols, hasCells: len(l.cells) > 0}
	sb.n++
	sb.bytes += len(b)
}

func (sb *scrollback) each(f func(sbLine)) {
	for i := range sb.n {
		f(sb.lines[(sb.head+i)%len(sb.lines)])
	}
}

// Scrollback returns the number of lines in the scrollback.
func (s *Screen) Scrollback() int { return s.sb.n }
