package vt

// The screen operations. Each touches at most a row's cells or a screen's
// rows, whatever its parameters say: counts are clamped to the screen.

func (s *Screen) line() *line { return s.buf.lines[s.cur.y] }

func (s *Screen) saveCursor() { s.saveCursorIn(s.buf) }

func (s *Screen) saveCursorIn(b *buffer) {
	b.saved = s.cur
}

func (s *Screen) restoreCursor() { s.restoreCursorFrom(s.buf) }

func (s *Screen) restoreCursorFrom(b *buffer) {
	s.cur = b.saved
	s.cur.x = min(s.cur.x, s.cols-1)
	s.cur.y = min(s.cur.y, s.rows-1)
	if s.modes.autowrapOff {
		s.cur.wrapNext = false
	}
}

func (s *Screen) softReset() {
	s.modes.insert = false
	s.modes.autowrapOff = false
	s.modes.appCursor, s.modes.appKeypad = false, false
	s.modes.cursorHidden = false
	s.modes.top, s.modes.bottom = 0, 0
	s.cur.origin = false
	s.cur.pen = attr{}
	s.cur.charsets = [4]byte{'B', 'B', 'B', 'B'}
	s.cur.gl = 0
	s.cur.wrapNext = false
	s.buf.saved = cursor{charsets: s.cur.charsets}
}

// printASCII prints a run of printable ASCII.
func (s *Screen) printASCII(p []byte) {
	if s.cur.charsets[s.cur.gl] != 'B' || s.modes.insert {
		for _, b := range p {
			s.print(rune(b))
		}
		return
	}
	l := s.line()
	last := s.cols - 1
	for _, b := range p {
		if s.cur.wrapNext {
			s.wrap()
			l = s.line()
		}
		x := s.cur.x
		if x < len(l.cells) {
			l.fixWide(x)
		} else {
			l.grow(x)
			if x == cap(l.cells) {
				l.reserve(x + 1)
			}
			l.cells = append(l.cells, cell{})
		}
		l.cells[x] = cell{r: rune(b), a: s.cur.pen}
		if x == last {
			s.cur.wrapNext = !s.modes.autowrapOff
		} else {
			s.cur.x++
		}
	}
	s.Work += int64(len(p))
	s.lastChar = rune(p[len(p)-1])
}

// print prints one character at the cursor.
func (s *Screen) print(r rune) {
	if s.cur.charsets[s.cur.gl] == '0' {
		r = decSpecial(r)
	}
	w := width(r)
	s.Work++
	if w == 0 {
		s.combine(r)
		return
	}
	s.lastChar = r
	s.put(r, w)
}

func (s *Screen) put(r rune, w int) {
	if w > s.cols {
		return // a wide character on a one-column screen
	}
	if s.cur.wrapNext {
		s.wrap()
	}
	if s.cur.x+w > s.cols {
		if s.modes.autowrapOff {
			s.cur.x = s.cols - w
		} else {
			s.line().erase(s.cur.x, s.cols, s.cols, s.cur.pen.eraseAttr())
			s.wrap()
		}
	}
	if s.modes.insert {
		s.insertChars(w)
	}
	l := s.line()
	x := s.cur.x
	l.fixWide(x)
	if w == 2 {
		l.fixWide(x + 1)
	}
	l.grow(x + w)
	l.cells[x] = cell{r: r, a: s.cur.pen}
	if w == 2 {
		l.cells[x+1] = cell{r: wideCont, a: s.cur.pen}
	}
	if x+w == s.cols {
		s.cur.x = s.cols - 1
		s.cur.wrapNext = !s.modes.autowrapOff
	} else {
		s.cur.x += w
	}
}

// combine adds a zero-width character to the cell before the cursor.
func (s *Screen) combine(r rune) {
	x := s.cur.x
	if !s.cur.wrapNext {
		x--
	}
	l := s.line()
	if x >= 0 && x < len(l.cells) && l.cells[x].r == wideCont {
		x--
	}
	if x < 0 || x >= len(l.cells) {
		return
	}
	c, ok := l.comb[x]
	if !ok && len(l.comb) >= s.combCap() {
		return
	}
	if l.comb == nil {
		l.comb = make(map[int]string)
	}
	if len(c)+4 <= maxCombining {
		l.comb[x] = c + string(r)
	}
}

func (s *Screen) repeat(n int) {
	if s.lastChar == 0 {
		return
	}
	// A repeat longer than a row is cut to one: programs repeat to draw
	// a rule; only a hostile one asks for millions.
	w := width(s.lastChar)
	if w == 0 {
		return
	}
	for range min(n, s.cols) {
		s.Work++
		s.put(s.lastChar, w)
	}
}

// wrap moves to the start of the next row, marking this one as going on.
func (s *Screen) wrap() {
	s.line().wrapped = true
	s.cur.wrapNext = false
	s.index()
	s.cur.x = 0
}

// index is LF: down a row, scrolling the region at its bottom.
func (s *Screen) index() {
	s.cur.wrapNext = false
	switch {
	case s.cur.y == s.bottom():
		s.scrollUp(1, true)
	case s.cur.y < s.rows-1:
		s.cur.y++
	}
}

func (s *Screen) nextLine() {
	s.index()
	s.cur.x = 0
}

func (s *Screen) reverseIndex() {
	s.cur.wrapNext = false
	switch {
	case s.cur.y == s.top():
		s.scrollDown(1)
	case s.cur.y > 0:
		s.cur.y--
	}
}

// scrollUp scrolls the region up n rows. Rows that leave the top of the
// main screen go to the scrollback when toScrollback.
func (s *Screen) scrollUp(n int, toScrollback bool) {
	top, bot := s.top(), s.bottom()
	n = min(max(n, 1), bot-top+1)
	lines := s.buf.lines
	gone := append(s.tmp[:0], lines[top:top+n]...)
	copy(lines[top:], lines[top+n:bot+1])
	e := s.cur.pen.eraseAttr()
	for i, l := range gone {
		if toScrollback && top == 0 && s.buf == s.main {
			s.sb.push(l, s.cols)
			s.Work += int64(len(l.cells))
		}
		l.clear(e)
		lines[bot+1-n+i] = l
	}
	clear(gone)
	s.tmp = gone[:0]
	s.Work += int64(bot - top + 1)
}

// scrollDown scrolls the region down n rows.
func (s *Screen) scrollDown(n int) {
	top, bot := s.top(), s.bottom()
	n = min(max(n, 1), bot-top+1)
	lines := s.buf.lines
	gone := append(s.tmp[:0], lines[bot+1-n:bot+1]...)
	copy(lines[top+n:bot+1], lines[top:bot+1-n])
	e := s.cur.pen.eraseAttr()
	for i, l := range gone {
		l.clear(e)
		lines[top+i] = l
	}
	clear(gone)
	s.tmp = gone[:0]
	s.Work += int64(bot - top + 1)
}

func (s *Screen) insertLines(n int) {
	if s.cur.y < s.top() || s.cur.y > s.bottom() {
		return
	}
	top := s.modes.top
	s.modes.top = s.cur.y
	if s.modes.top >= s.bottom() {
		// A one-row region: just blank the row.
		s.line().clear(s.cur.pen.eraseAttr())
	} else {
		s.scrollDown(n)
	}
	s.modes.top = top
	s.cur.x = 0
	s.cur.wrapNext = false
}

func (s *Screen) deleteLines(n int) {
	if s.cur.y < s.top() || s.cur.y > s.bottom() {
		return
	}
	top := s.modes.top
	s.modes.top = s.cur.y
	if s.modes.top >= s.bottom() {
		s.line().clear(s.cur.pen.eraseAttr())
	} else {
		s.scrollUp(n, false)
	}
	s.modes.top = top
	s.cur.x = 0
	s.cur.wrapNext = false
}

func (s *Screen) insertChars(n int) {
	l := s.line()
	x := s.cur.x
	n = min(n, s.cols-x)
	s.cur.wrapNext = false
	if x >= len(l.cells) && l.fill == s.cur.pen.eraseAttr() {
		return
	}
	l.fixWide(x)
	l.grow(s.cols)
	copy(l.cells[x+n:], l.cells[x:s.cols-n])
	e := cell{r: ' ', a: s.cur.pen.eraseAttr()}
	for i := x; i < x+n; i++ {
		l.cells[i] = e
	}
	// A wide character pushed to the last column lost its right half.
	if last := l.cells[s.cols-1]; last.r != wideCont && width(last.r) == 2 {
		l.cells[s.cols-1] = l.blankCell()
	}
	l.comb = shiftComb(l.comb, x, n, s.cols)
	l.trim()
	s.Work += int64(s.cols)
}

func (s *Screen) deleteChars(n int) {
	l := s.line()
	x := s.cur.x
	n = min(n, s.cols-x)
	s.cur.wrapNext = false
	l.fixWide(x)
	if x+n < s.cols {
		l.fixWide(x + n)
	}
	l.grow(s.cols)
	copy(l.cells[x:], l.cells[x+n:])
	e := cell{r: ' ', a: s.cur.pen.eraseAttr()}
	for i := s.cols - n; i < s.cols; i++ {
		l.cells[i] = e
	}
	l.comb = shiftComb(l.comb, x, -n, s.cols)
	l.trim()
	s.Work += int64(s.cols)
}

// shiftComb moves the combining marks at or after x by d columns.
func shiftComb(m map[int]string, x, d, cols int) map[int]string {
	if len(m) == 0 {
		return m
	}
	out := make(map[int]string, len(m))
	for k, v := range m {
		switch {
		case k < x:
			out[k] = v
		case d < 0 && k < x-d:
			// deleted
		case k+d >= 0 && k+d < cols:
			out[k+d] = v
		}
	}
	return out
}

func (s *Screen) eraseChars(n int) {
	n = min(n, s.cols-s.cur.x)
	s.cur.wrapNext = false
	s.line().erase(s.cur.x, s.cur.x+n, s.cols, s.cur.pen.eraseAttr())
	s.Work += int64(n)
}

func (s *Screen) eraseLine(mode int) {
	l, x, e := s.line(), s.cur.x, s.cur.pen.eraseAttr()
	s.cur.wrapNext = false
	switch mode {
	case 0:
		l.erase(x, s.cols, s.cols, e)
		l.wrapped = false
	case 1:
		l.erase(0, x+1, s.cols, e)
	case 2:
		l.clear(e)
	}
	s.Work += int64(s.cols)
}

func (s *Screen) eraseDisplay(mode int) {
	e := s.cur.pen.eraseAttr()
	lines := s.buf.lines
	s.cur.wrapNext = false
	switch mode {
	case 0:
		s.eraseLine(0)
		for _, l := range lines[s.cur.y+1:] {
			l.clear(e)
		}
	case 1:
		s.eraseLine(1)
		for _, l := range lines[:s.cur.y] {
			l.clear(e)
		}
	case 2:
		for _, l := range lines {
			l.clear(e)
		}
	case 3:
		s.sb.clear()
	}
	s.Work += int64(s.rows)
}

func (s *Screen) cursorUp(n int) {
	top := 0
	if s.cur.y >= s.top() {
		top = s.top()
	}
	s.cur.y = max(s.cur.y-n, top)
	s.cur.wrapNext = false
}

func (s *Screen) cursorDown(n int) {
	bot := s.rows - 1
	if s.cur.y <= s.bottom() {
		bot = s.bottom()
	}
	s.cur.y = min(s.cur.y+n, bot)
	s.cur.wrapNext = false
}

func (s *Screen) moveX(x int) {
	s.cur.x = min(max(x, 0), s.cols-1)
	s.cur.wrapNext = false
}

// moveTo is CUP: origin mode makes y relative to the scroll region.
func (s *Screen) moveTo(x, y int) {
	top, bot := 0, s.rows-1
	if s.cur.origin {
		top, bot = s.top(), s.bottom()
	}
	s.cur.y = min(max(top+y, top), bot)
	s.moveX(x)
}

func (s *Screen) setRegion(top, bot int) {
	bot = min(bot, s.rows-1)
	if top < 0 || top >= bot {
		return
	}
	s.modes.top, s.modes.bottom = top, bot
	if bot == s.rows-1 {
		s.modes.bottom = 0
	}
	s.moveTo(0, 0)
}

func (s *Screen) setTab() { s.tabs[s.cur.x] = true }

func (s *Screen) tab(n int) {
	s.cur.wrapNext = false
	x := s.cur.x
	for x < s.cols-1 && n > 0 {
		x++
		if s.tabs[x] {
			n--
		}
	}
	s.Work += int64(x - s.cur.x)
	s.cur.x = x
}

func (s *Screen) tabBack(n int) {
	s.cur.wrapNext = false
	x := s.cur.x
	for x > 0 && n > 0 {
		x--
		if s.tabs[x] {
			n--
		}
	}
	s.Work += int64(s.cur.x - x)
	s.cur.x = x
}
