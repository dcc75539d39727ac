package vt

import (
	"strconv"
	"strings"
)

// MaxRender bounds what Render returns: beyond it the screen is rendered
// again without colours and styles, which keeps it to a few bytes a cell.
const MaxRender = 8 << 20

// Render returns the escape sequences that bring a terminal of the
// screen's size from any state to this one: a full reset, the scrollback
// and the main screen as lines (so the scrollback lands in the terminal's
// own), the alternate screen if it is shown, then the scroll region, tab
// stops, modes, title, saved cursor, character sets, pen and cursor.
//
// It contains no query and nothing a terminal answers, so a client that
// draws it sends nothing back to the program.
func (s *Screen) Render() []byte {
	b := s.render(nil, true)
	if len(b) > MaxRender {
		b = s.render(b[:0], false)
	}
	return b
}

func (s *Screen) render(b []byte, styled bool) []byte {
	b = append(b, "\x1bc"...) // RIS: from whatever the terminal showed
	// The main screen, its scrollback first. A row that wrapped is not
	// ended with CR LF when the next starts with a character: the
	// terminal wraps it itself and knows the two rows are one line.
	var prevWrapped bool
	s.sb.each(func(l sbLine) {
		if prevWrapped && !l.hasCells {
			b = append(b, "\r\n"...)
		}
		b = append(b, l.b...)
		if !l.wrapped {
			b = append(b, "\r\n"...)
		}
		prevWrapped = l.wrapped
	})
	for y, l := range s.main.lines {
		if prevWrapped && len(l.cells) == 0 {
			b = append(b, "\r\n"...)
		}
		b = renderLineStyled(b, l, s.cols, styled)
		wrapped := l.wrapped && len(l.cells) >= s.cols
		if y < s.rows-1 && !wrapped {
			b = append(b, "\r\n"...)
		}
		prevWrapped = wrapped
	}
	if s.buf == s.alt {
		b = s.renderSaved(b, s.main.saved, styled)
		b = append(b, "\x1b[?1049h"...)
		for y, l := range s.alt.lines {
			if len(l.cells) == 0 && l.fill == (attr{}) {
				continue
			}
			b = cup(b, y, 0)
			b = renderLineStyled(b, l, s.cols, styled)
		}
		b = s.renderSaved(b, s.alt.saved, styled)
	} else {
		b = s.renderSaved(b, s.main.saved, styled)
	}

	if top, bot := s.top(), s.bottom(); top != 0 || bot != s.rows-1 {
		b = append(b, "\x1b["...)
		b = strconv.AppendInt(b, int64(top+1), 10)
		b = append(b, ';')
		b = strconv.AppendInt(b, int64(bot+1), 10)
		b = append(b, 'r')
	}
	if !s.defaultTabs() {
		b = append(b, "\x1b[3g"...)
		for x, on := range s.tabs {
			if on {
				b = cup(b, 0, x)
				b = append(b, "\x1bH"...)
			}
		}
	}
	m := s.modes
	b = appendIf(b, m.appCursor, "\x1b[?1h")
	b = appendIf(b, m.appKeypad, "\x1b=")
	b = appendIf(b, m.reverse, "\x1b[?5h")
	b = appendIf(b, m.autowrapOff, "\x1b[?7l")
	b = appendIf(b, m.cursorHidden, "\x1b[?25l")
	b = appendIf(b, m.focus, "\x1b[?1004h")
	b = appendIf(b, m.bracketedPaste, "\x1b[?2004h")
	if m.mouse != 0 {
		b = append(b, "\x1b[?"...)
		b = strconv.AppendInt(b, int64(m.mouse), 10)
		b = append(b, 'h')
	}
	if m.mouseEnc != 0 {
		b = append(b, "\x1b[?"...)
		b = strconv.AppendInt(b, int64(m.mouseEnc), 10)
		b = append(b, 'h')
	}
	if m.cursorStyle != 0 {
		b = append(b, "\x1b["...)
		b = strconv.AppendInt(b, int64(m.cursorStyle), 10)
		b = append(b, " q"...)
	}
	if s.title != "" {
		b = append(b, "\x1b]2;"...)
		b = append(b, s.title...)
		b = append(b, '\a')
	}

	// The cursor last, as the program left it.
	c := s.cur
	if c.origin {
		b = append(b, "\x1b[?6h"...)
	}
	y := c.y
	if c.origin {
		y -= s.top()
	}
	if c.wrapNext {
		// Write the last column again, which leaves the terminal waiting
		// to wrap, as this screen is.
		b = cup(b, y, s.cols-1)
		l := s.buf.lines[c.y]
		last := l.at(s.cols - 1)
		if last.r == wideCont && s.cols >= 2 {
			b = cup(b, y, s.cols-2)
			last = l.at(s.cols - 2)
		}
		if styled {
			b = sgr(b, last.a)
		}
		b = appendCell(b, l, last, s.cols-1)
	} else {
		b = cup(b, y, c.x)
	}
	b = renderCharsets(b, c)
	b = appendIf(b, m.insert, "\x1b[4h")
	b = appendIf(b, m.newline, "\x1b[20h")
	if styled {
		b = sgr(b, c.pen)
	} else {
		b = append(b, "\x1b[0m"...)
	}
	return b
}

// renderSaved makes the terminal's saved cursor (DECSC) sc.
func (s *Screen) renderSaved(b []byte, sc cursor, styled bool) []byte {
	if styled {
		b = sgr(b, sc.pen)
	}
	b = cup(b, min(sc.y, s.rows-1), min(sc.x, s.cols-1))
	b = renderCharsets(b, sc)
	b = append(b, "\x1b7"...)
	b = append(b, "\x1b(B\x1b)B\x1b*B\x1b+B\x0f\x1b[0m"...)
	return b
}

func renderCharsets(b []byte, c cursor) []byte {
	for i, cs := range c.charsets {
		if cs == '0' {
			b = append(b, '\x1b', "()*+"[i], '0')
		}
	}
	if c.gl == 1 {
		b = append(b, '\x0e')
	}
	return b
}

func (s *Screen) defaultTabs() bool {
	for x, on := range s.tabs {
		if on != (x > 0 && x%8 == 0) {
			return false
		}
	}
	return true
}

func appendIf(b []byte, cond bool, seq string) []byte {
	if cond {
		b = append(b, seq...)
	}
	return b
}

func cup(b []byte, y, x int) []byte {
	b = append(b, "\x1b["...)
	b = strconv.AppendInt(b, int64(y+1), 10)
	b = append(b, ';')
	b = strconv.AppendInt(b, int64(x+1), 10)
	return append(b, 'H')
}

// renderLine renders one row's cells with their attributes, starting and
// ending with default attributes.
func renderLine(b []byte, l *line, cols int, _ bool) []byte {
	return renderLineStyled(b, l, cols, true)
}

func renderLineStyled(b []byte, l *line, cols int, styled bool) []byte {
	pen := attr{}
	n := min(len(l.cells), cols)
	for x := 0; x < n; x++ {
		c := l.cells[x]
		if c.r == wideCont {
			continue
		}
		if styled && c.a != pen {
			b = sgr(b, c.a)
			pen = c.a
		}
		b = appendCell(b, l, c, x)
		if c.r >= 0x300 {
			// Where this screen and the terminal could count a
			// character's width differently, put the cursor where this
			// screen has it, so the rest of the row lines up.
			w := width(c.r)
			if x+w < cols {
				b = append(b, "\x1b["...)
				b = strconv.AppendInt(b, int64(x+w+1), 10)
				b = append(b, 'G')
			}
		}
	}
	if styled && l.fill != (attr{}) && n < cols {
		if l.fill != pen {
			b = sgr(b, l.fill)
			pen = l.fill
		}
		b = append(b, "\x1b[K"...)
	}
	if pen != (attr{}) {
		b = append(b, "\x1b[0m"...)
	}
	return b
}

func appendCell(b []byte, l *line, c cell, x int) []byte {
	if c.r == wideCont {
		c.r = ' '
	}
	b = appendRune(b, c.r)
	if m := l.comb[x]; m != "" {
		b = append(b, m...)
	}
	return b
}

func appendRune(b []byte, r rune) []byte {
	if r < 0x80 {
		return append(b, byte(r))
	}
	return append(b, string(r)...)
}

// sgr sets the attributes to a, from whatever they were.
func sgr(b []byte, a attr) []byte {
	b = append(b, "\x1b[0"...)
	f := a.flags()
	for _, fl := range [...]struct {
		bit  uint32
		code string
	}{
		{flagBold, ";1"}, {flagFaint, ";2"}, {flagItalic, ";3"}, {flagUnderline, ";4"},
		{flagDoubleUnderline, ";21"}, {flagBlink, ";5"}, {flagInverse, ";7"},
		{flagInvisible, ";8"}, {flagStrike, ";9"}, {flagOverline, ";53"},
	} {
		if f&fl.bit != 0 {
			b = append(b, fl.code...)
		}
	}
	b = appendColor(b, a.fgColor(), 30, 90, "38")
	b = appendColor(b, a.bgColor(), 40, 100, "48")
	return append(b, 'm')
}

func appendColor(b []byte, c uint32, base, bright int, ext string) []byte {
	v := c & (1<<24 - 1)
	switch c &^ (1<<24 - 1) {
	case colorKindPal:
		switch {
		case v < 8:
			b = append(b, ';')
			b = strconv.AppendInt(b, int64(base+int(v)), 10)
		case v < 16:
			b = append(b, ';')
			b = strconv.AppendInt(b, int64(bright+int(v)-8), 10)
		default:
			b = append(b, ';')
			b = append(b, ext...)
			b = append(b, ";5;"...)
			b = strconv.AppendInt(b, int64(v), 10)
		}
	case colorKindRGB:
		b = append(b, ';')
		b = append(b, ext...)
		b = append(b, ";2;"...)
		b = strconv.AppendInt(b, int64(v>>16), 10)
		b = append(b, ';')
		b = strconv.AppendInt(b, int64(v>>8&0xff), 10)
		b = append(b, ';')
		b = strconv.AppendInt(b, int64(v&0xff), 10)
	}
	return b
}

// Lines returns the shown screen's rows as text, trailing blanks cut: for
// tests and logs.
func (s *Screen) Lines() []string {
	out := make([]string, len(s.buf.lines))
	for y, l := range s.buf.lines {
		var sb strings.Builder
		for x, c := range l.cells {
			if c.r == wideCont {
				continue
			}
			sb.WriteRune(c.r)
			sb.WriteString(l.comb[x])
		}
		out[y] = strings.TrimRight(sb.String(), " ")
	}
	return out
}

// ScrollbackLines returns the scrollback as text, oldest first, with its
// escape sequences removed.
func (s *Screen) ScrollbackLines() []string {
	var out []string
	s.sb.each(func(l sbLine) {
		t := New(MaxCols, 1, 0, 0)
		_, _ = t.Write(l.b)
		out = append(out, t.Lines()[0])
	})
	return out
}
