package vt

import "unicode/utf8"

// The parser follows the DEC/ANSI state machine as xterm.js does (Paul
// Williams's diagram): C0 controls act in every state but the strings,
// CAN and SUB abort a sequence, ESC starts a new one from anywhere.

type pstate uint8

const (
	stGround pstate = iota
	stEsc
	stCSI
	stCSIIgnore
	stOSC
	stString // DCS, SOS, PM, APC: consumed until ST
)

type parser struct {
	state pstate

	inter   [2]byte
	ninter  int
	private byte // CSI's '?', '>', '=' or '<'; 0 for none

	params  [maxParams]int32
	sub     [maxParams]bool // params[i] is followed by a ':' subparameter
	nparams int             // params in use; the last one is being read
	bad     bool            // too many params or a misplaced byte: ignore at the final byte

	osc     []byte
	oscOver bool // longer than maxOSC: dropped
	strEsc  bool // ESC seen in a string: ST if '\\' follows

	u8     [utf8.UTFMax]byte
	u8n    int // bytes of u8 held
	u8need int // bytes the character needs in all
}

func (s *Screen) parse(p []byte) {
	for i := 0; i < len(p); i++ {
		b := p[i]
		switch s.p.state {
		case stGround:
			if s.p.u8n > 0 {
				s.utf8Byte(b)
				continue
			}
			if b >= 0x20 && b < 0x7f {
				j := i + 1
				for j < len(p) && p[j] >= 0x20 && p[j] < 0x7f {
					j++
				}
				s.printASCII(p[i:j])
				i = j - 1
				continue
			}
			if b < 0x80 {
				s.control(b)
				continue
			}
			s.utf8Byte(b)
		case stEsc:
			s.escByte(b)
		case stCSI, stCSIIgnore:
			s.csiByte(b)
		case stOSC, stString:
			s.stringByte(b)
		}
	}
}

// utf8Byte collects a UTF-8 character in the ground state.
func (s *Screen) utf8Byte(b byte) {
	p := &s.p
	if p.u8n > 0 {
		if b&0xc0 == 0x80 {
			p.u8[p.u8n] = b
			p.u8n++
			if p.u8n < p.u8need {
				return
			}
			r, _ := utf8.DecodeRune(p.u8[:p.u8n])
			p.u8n = 0
			s.char(r)
			return
		}
		// A character cut short: show that, then read b afresh.
		p.u8n = 0
		s.char(utf8.RuneError)
		s.parse([]byte{b})
		return
	}
	need := 0
	switch {
	case b >= 0xc2 && b <= 0xdf:
		need = 2
	case b >= 0xe0 && b <= 0xef:
		need = 3
	case b >= 0xf0 && b <= 0xf4:
		need = 4
	default:
		s.char(utf8.RuneError)
		return
	}
	p.u8[0], p.u8n, p.u8need = b, 1, need
}

// char handles a decoded non-ASCII character: C1 controls act, the rest
// is printed.
func (s *Screen) char(r rune) {
	if r >= 0x80 && r < 0xa0 {
		switch r {
		case 0x84:
			s.index()
		case 0x85:
			s.nextLine()
		case 0x88:
			s.setTab()
		case 0x8d:
			s.reverseIndex()
		case 0x90, 0x98, 0x9e, 0x9f:
			s.startString(stString)
		case 0x9b:
			s.startCSI()
		case 0x9d:
			s.startString(stOSC)
		}
		return
	}
	s.print(r)
}

// control acts on a C0 control character (or DEL, which does nothing).
func (s *Screen) control(b byte) {
	switch b {
	case 0x08: // BS
		s.cur.wrapNext = false
		if s.cur.x > 0 {
			s.cur.x--
		}
	case 0x09: // HT
		s.tab(1)
	case 0x0a, 0x0b, 0x0c: // LF, VT, FF
		s.index()
		if s.modes.newline {
			s.cur.x = 0
		}
	case 0x0d: // CR
		s.cur.x = 0
		s.cur.wrapNext = false
	case 0x0e: // SO
		s.cur.gl = 1
	case 0x0f: // SI
		s.cur.gl = 0
	case 0x18, 0x1a: // CAN, SUB
		s.p.state = stGround
	case 0x1b:
		s.p.state = stEsc
		s.p.ninter = 0
	}
}

func (s *Screen) escByte(b byte) {
	p := &s.p
	switch {
	case b == 0x1b:
		p.ninter = 0
	case b == 0x18 || b == 0x1a:
		p.state = stGround
	case b < 0x20:
		s.control(b)
	case b < 0x30: // intermediate
		if p.ninter < len(p.inter) {
			p.inter[p.ninter] = b
			p.ninter++
		}
	case b < 0x7f:
		p.state = stGround
		s.escDispatch(b)
	default:
		p.state = stGround
	}
}

func (s *Screen) startCSI() {
	p := &s.p
	p.state = stCSI
	p.ninter, p.private, p.nparams, p.bad = 0, 0, 0, false
	p.params[0], p.sub[0] = 0, false
}

func (s *Screen) csiByte(b byte) {
	p := &s.p
	switch {
	case b == 0x1b:
		p.state = stEsc
		p.ninter = 0
	case b == 0x18 || b == 0x1a:
		p.state = stGround
	case b < 0x20:
		s.control(b)
	case b >= '0' && b <= '9':
		if p.ninter > 0 {
			p.bad = true
			return
		}
		if p.nparams == 0 {
			p.nparams = 1
		}
		v := &p.params[p.nparams-1]
		*v = min(*v*10+int32(b-'0'), maxParam)
	case b == ';' || b == ':':
		if p.ninter > 0 {
			p.bad = true
			return
		}
		if p.nparams == 0 {
			p.nparams = 1
		}
		if p.nparams == maxParams {
			p.bad = true
			return
		}
		p.sub[p.nparams-1] = b == ':'
		p.params[p.nparams], p.sub[p.nparams] = 0, false
		p.nparams++
	case b >= '<' && b <= '?':
		if p.nparams > 0 || p.private != 0 || p.ninter > 0 {
			p.bad = true
			return
		}
		p.private = b
	case b < 0x30: // intermediate
		if p.ninter == len(p.inter) {
			p.bad = true
			return
		}
		p.inter[p.ninter] = b
		p.ninter++
	case b >= 0x40 && b < 0x7f:
		p.state = stGround
		if !p.bad && s.p.state == stGround {
			s.csiDispatch(b)
		}
	default: // DEL and bytes above: ignored inside a sequence
	}
}

func (s *Screen) startString(st pstate) {
	p := &s.p
	p.state = st
	p.osc = p.osc[:0]
	p.oscOver, p.strEsc = false, false
}

func (s *Screen) stringByte(b byte) {
	p := &s.p
	if p.strEsc {
		p.strEsc = false
		if p.state == stOSC {
			s.oscDispatch()
		}
		p.state = stGround
		if b == '\\' {
			return // ST
		}
		// ESC then something else: that is a new escape sequence.
		p.state = stEsc
		p.ninter = 0
		s.escByte(b)
		return
	}
	switch {
	case b == 0x1b:
		p.strEsc = true
	case b == 0x18 || b == 0x1a:
		p.state = stGround
	case b == 0x07 && p.state == stOSC:
		s.oscDispatch()
		p.state = stGround
	case p.state == stOSC && b >= 0x20:
		if len(p.osc) < maxOSC {
			p.osc = append(p.osc, b)
		} else {
			p.oscOver = true
		}
	}
}

// param returns parameter i, or def when it is absent or 0.
func (p *parser) param(i int, def int) int {
	if i >= p.nparams || p.params[i] == 0 {
		return def
	}
	return int(p.params[i])
}
