package vt

import "unicode"

// width is how many cells r takes, as xterm.js reckons by default (its
// Unicode 6 table, after Markus Kuhn's wcwidth): 0 for combining marks and
// format characters, 2 for East Asian wide and full-width ones, else 1.
// Matching the browser's count matters more than matching Unicode's newest:
// the screen is rebuilt in the browser from these positions.
func width(r rune) int {
	switch {
	case r < 0x300:
		if r == 0xad {
			return 1 // soft hyphen: Cf, yet shown
		}
		return 1
	case r >= 0x1160 && r <= 0x11ff, r == 0x200b:
		return 0
	case unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf):
		return 0
	case r >= 0x1100 && r <= 0x115f, r == 0x2329, r == 0x232a,
		r >= 0x2e80 && r <= 0xa4cf && r != 0x303f,
		r >= 0xac00 && r <= 0xd7a3, r >= 0xf900 && r <= 0xfaff,
		r >= 0xfe10 && r <= 0xfe19, r >= 0xfe30 && r <= 0xfe6f,
		r >= 0xff00 && r <= 0xff60, r >= 0xffe0 && r <= 0xffe6,
		r >= 0x20000 && r <= 0x2fffd, r >= 0x30000 && r <= 0x3fffd:
		return 2
	}
	return 1
}

// decSpecial maps the DEC special graphics set (ESC ( 0) to Unicode, as
// xterm.js does.
func decSpecial(r rune) rune {
	if r < 0x5f || r > 0x7e {
		return r
	}
	return decGraphics[r-0x5f]
}

var decGraphics = [...]rune{
	0x00a0,                                                         // _
	0x25c6, 0x2592, 0x2409, 0x240c, 0x240d, 0x240a, 0x00b0, 0x00b1, // ` a b c d e f g
	0x2424, 0x240b, 0x2518, 0x2510, 0x250c, 0x2514, 0x253c, 0x23ba, // h i j k l m n o
	0x23bb, 0x2500, 0x23bc, 0x23bd, 0x251c, 0x2524, 0x2534, 0x252c, // p q r s t u v w
	0x2502, 0x2264, 0x2265, 0x03c0, 0x2260, 0x00a3, 0x00b7, // x y z { | } ~
}
