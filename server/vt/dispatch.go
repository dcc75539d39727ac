package vt

import "strings"

func (s *Screen) escDispatch(b byte) {
	p := &s.p
	if p.ninter > 0 {
		switch p.inter[0] {
		case '(', ')', '*', '+': // designate G0..G3
			cs := byte('B')
			if b == '0' {
				cs = '0'
			}
			s.cur.charsets[p.inter[0]-'('] = cs
		}
		return // '#', '%', ' ' and the rest: nothing to keep
	}
	switch b {
	case '7':
		s.saveCursor()
	case '8':
		s.restoreCursor()
	case 'D':
		s.index()
	case 'E':
		s.nextLine()
	case 'H':
		s.setTab()
	case 'M':
		s.reverseIndex()
	case 'c':
		s.reset()
	case '=':
		s.modes.appKeypad = true
	case '>':
		s.modes.appKeypad = false
	case '[':
		s.startCSI()
	case ']':
		s.startString(stOSC)
	case 'P', 'X', '^', '_':
		s.startString(stString)
	}
}

func (s *Screen) csiDispatch(final byte) {
	p := &s.p
	if p.ninter > 0 {
		switch {
		case p.inter[0] == ' ' && final == 'q' && p.private == 0: // DECSCUSR
			s.modes.cursorStyle = min(p.param(0, 0), 6)
		case p.inter[0] == '!' && final == 'p': // DECSTR
			s.softReset()
		}
		return
	}
	switch p.private {
	case '?':
		switch final {
		case 'h':
			s.decModes(true)
		case 'l':
			s.decModes(false)
		}
		return
	case 0:
	default:
		return // '>' and '=' sequences are queries or keyboard settings
	}
	n := p.param(0, 1)
	switch final {
	case '@':
		s.insertChars(n)
	case 'A':
		s.cursorUp(n)
	case 'B', 'e':
		s.cursorDown(n)
	case 'C', 'a':
		s.moveX(s.cur.x + n)
	case 'D':
		s.moveX(s.cur.x - n)
	case 'E':
		s.cursorDown(n)
		s.cur.x = 0
	case 'F':
		s.cursorUp(n)
		s.cur.x = 0
	case 'G', '`':
		s.moveX(n - 1)
	case 'H', 'f':
		s.moveTo(p.param(1, 1)-1, n-1)
	case 'I':
		s.tab(n)
	case 'J':
		s.eraseDisplay(p.param(0, 0))
	case 'K':
		s.eraseLine(p.param(0, 0))
	case 'L':
		s.insertLines(n)
	case 'M':
		s.deleteLines(n)
	case 'P':
		s.deleteChars(n)
	case 'S':
		s.scrollUp(n, false)
	case 'T':
		if p.nparams <= 1 { // with more, it is xterm's mouse highlight
			s.scrollDown(n)
		}
	case 'X':
		s.eraseChars(n)
	case 'Z':
		s.tabBack(n)
	case 'b':
		s.repeat(n)
	case 'd':
		s.moveTo(s.cur.x, n-1)
	case 'g':
		switch p.param(0, 0) {
		case 0:
			s.tabs[s.cur.x] = false
		case 3:
			for i := range s.tabs {
				s.tabs[i] = false
			}
		}
	case 'h':
		s.ansiModes(true)
	case 'l':
		s.ansiModes(false)
	case 'm':
		s.sgr()
	case 'r':
		s.setRegion(p.param(0, 1)-1, p.param(1, s.rows)-1)
	case 's':
		s.saveCursor()
	case 'u':
		s.restoreCursor()
	}
	// c (DA), n (DSR), t (window ops), x and the rest ask for answers
	// or change nothing on the screen: a Screen never answers.
}

func (s *Screen) ansiModes(on bool) {
	for i := range max(s.p.nparams, 1) {
		switch s.p.params[i] {
		case 4:
			s.modes.insert = on
		case 20:
			s.modes.newline = on
		}
	}
}

func (s *Screen) decModes(on bool) {
	for i := range max(s.p.nparams, 1) {
		switch v := int(s.p.params[i]); v {
		case 1:
			s.modes.appCursor = on
		case 5:
			s.modes.reverse = on
		case 6:
			s.cur.origin = on
			s.moveTo(0, 0)
		case 7:
			s.modes.autowrapOff = !on
			if !on {
				s.cur.wrapNext = false
			}
		case 25:
			s.modes.cursorHidden = !on
		case 9, 1000, 1002, 1003:
			if on {
				s.modes.mouse = v
			} else if s.modes.mouse == v {
				s.modes.mouse = 0
			}
		case 1004:
			s.modes.focus = on
		case 1005, 1006, 1015:
			if on {
				s.modes.mouseEnc = v
			} else if s.modes.mouseEnc == v {
				s.modes.mouseEnc = 0
			}
		case 2004:
			s.modes.bracketedPaste = on
		case 47, 1047:
			if on {
				s.enterAlt(false)
			} else {
				s.leaveAlt(v == 1047, false)
			}
		case 1048:
			if on {
				s.saveCursor()
			} else {
				s.restoreCursor()
			}
		case 1049:
			if on {
				s.saveCursorIn(s.main)
				s.enterAlt(true)
			} else {
				s.leaveAlt(true, true)
			}
		}
	}
}

func (s *Screen) enterAlt(clear bool) {
	if s.buf == s.alt && s.alt != nil {
		return
	}
	if s.alt == nil {
		s.alt = newBuffer(s.rows)
	} else if clear {
		for _, l := range s.alt.lines {
			l.clear(attr{})
			s.Work++
		}
	}
	s.buf = s.alt
}

func (s *Screen) leaveAlt(clear, restore bool) {
	if s.buf != s.alt {
		return
	}
	if clear {
		for _, l := range s.alt.lines {
			l.clear(attr{})
			s.Work++
		}
	}
	s.buf = s.main
	if restore {
		s.restoreCursorFrom(s.main)
	}
}

func (s *Screen) oscDispatch() {
	p := &s.p
	if p.oscOver {
		return
	}
	num, text, ok := strings.Cut(string(p.osc), ";")
	if !ok {
		return
	}
	switch num {
	case "0", "2":
		s.title = sanitizeTitle(text)
	}
}

// sanitizeTitle keeps a title printable and short: it goes back to clients
// inside an OSC sequence, which a control character could end early.
func sanitizeTitle(t string) string {
	t = strings.ToValidUTF8(t, "?")
	t = strings.Map(func(r rune) rune {
		if r < 0x20 || (r >= 0x7f && r < 0xa0) {
			return -1
		}
		return r
	}, t)
	if len(t) > maxTitle {
		t = t[:maxTitle]
		t = strings.ToValidUTF8(t, "")
	}
	return t
}

// sgr applies Select Graphic Rendition.
func (s *Screen) sgr() {
	p := &s.p
	a := &s.cur.pen
	if p.nparams == 0 {
		*a = attr{}
		return
	}
	f := a.flags()
	for i := 0; i < p.nparams; i++ {
		v := int(p.params[i])
		switch {
		case v == 0:
			*a, f = attr{}, 0
		case v == 1:
			f |= flagBold
		case v == 2:
			f |= flagFaint
		case v == 3:
			f |= flagItalic
		case v == 4:
			f &^= flagUnderline | flagDoubleUnderline
			if !p.sub[i] || i+1 >= p.nparams || p.params[i+1] != 0 {
				f |= flagUnderline
			}
			if p.sub[i] {
				for i < p.nparams && p.sub[i] {
					i++ // 4:N, the underline style
				}
			}
		case v == 5 || v == 6:
			f |= flagBlink
		case v == 7:
			f |= flagInverse
		case v == 8:
			f |= flagInvisible
		case v == 9:
			f |= flagStrike
		case v == 21:
			f = f&^flagUnderline | flagDoubleUnderline
		case v == 22:
			f &^= flagBold | flagFaint
		case v == 23:
			f &^= flagItalic
		case v == 24:
			f &^= flagUnderline | flagDoubleUnderline
		case v == 25:
			f &^= flagBlink
		case v == 27:
			f &^= flagInverse
		case v == 28:
			f &^= flagInvisible
		case v == 29:
			f &^= flagStrike
		case v >= 30 && v <= 37:
			a.setFg(colorKindPal | uint32(v-30))
		case v == 38, v == 48, v == 58:
			c, next, ok := s.extColor(i)
			if ok && v == 38 {
				a.setFg(c)
			} else if ok && v == 48 {
				a.setBg(c)
			}
			i = next
		case v == 39:
			a.setFg(0)
		case v >= 40 && v <= 47:
			a.setBg(colorKindPal | uint32(v-40))
		case v == 49:
			a.setBg(0)
		case v == 53:
			f |= flagOverline
		case v == 55:
			f &^= flagOverline
		case v >= 90 && v <= 97:
			a.setFg(colorKindPal | uint32(v-90+8))
		case v >= 100 && v <= 107:
			a.setBg(colorKindPal | uint32(v-100+8))
		}
	}
	a.setFlags(f)
}

// extColor reads the colour after a 38, 48 or 58 at params[i], in either
// form: 38;5;N / 38;2;R;G;B, or 38:5:N / 38:2:CS:R:G:B / 38:2:R:G:B. It
// returns the colour, the index of the last parameter it used, and
// whether the colour was well formed.
func (s *Screen) extColor(i int) (uint32, int, bool) {
	p := &s.p
	if p.sub[i] {
		// Colon form: the group is the subparameters after i.
		j := i + 1
		for j < p.nparams && p.sub[j-1] {
			j++
		}
		g := p.params[i+1 : j]
		last := j - 1
		switch {
		case len(g) >= 2 && g[0] == 5:
			return colorKindPal | uint32(min(g[1], 255)), last, true
		case len(g) >= 5 && g[0] == 2:
			rgb := g[len(g)-3:]
			return rgbColor(rgb[0], rgb[1], rgb[2]), last, true
		case len(g) == 4 && g[0] == 2:
			return rgbColor(g[1], g[2], g[3]), last, true
		}
		return 0, last, false
	}
	if i+1 >= p.nparams {
		return 0, i, false
	}
	switch p.params[i+1] {
	case 5:
		if i+2 < p.nparams {
			return colorKindPal | uint32(min(p.params[i+2], 255)), i + 2, true
		}
		return 0, p.nparams - 1, false
	case 2:
		if i+4 < p.nparams {
			return rgbColor(p.params[i+2], p.params[i+3], p.params[i+4]), i + 4, true
		}
		return 0, p.nparams - 1, false
	}
	return 0, i + 1, false
}

func rgbColor(r, g, b int32) uint32 {
	return colorKindRGB | uint32(min(r, 255))<<16 | uint32(min(g, 255))<<8 | uint32(min(b, 255))
}
