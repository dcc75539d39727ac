package vt

import "slices"

// width is how many cells r takes, as the page's xterm.js counts with its
// Unicode 11 addon (the tables in width_table.go are that addon's): 0 for
// combining marks and format characters, 2 for East Asian wide and
// full-width characters and emoji, else 1. Matching the browser matters
// more than matching Unicode's newest: the screen is rebuilt in the
// browser from these positions.
func width(r rune) int {
	switch {
	case r < 0x7f:
		return 1 // printable ASCII; controls never reach here
	case r < 0xa0:
		return 0
	case r < 0x10000:
		if inTable(r, bmpWide[:]) {
			return 2
		}
		if inTable(r, bmpCombining[:]) {
			return 0
		}
		return 1
	case inTable(r, highCombining[:]):
		return 0
	case inTable(r, highWide[:]):
		return 2
	}
	return 1
}

func inTable(r rune, t [][2]rune) bool {
	_, ok := slices.BinarySearchFunc(t, r, func(e [2]rune, r rune) int {
		switch {
		case e[1] < r:
			return -1
		case e[0] > r:
			return 1
		}
		return 0
	})
	return ok
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
