package vt

import (
	"testing"
)

// FuzzScreen feeds the screen anything: it must not panic, its work must
// stay within a bound per byte, its render must hold no query, and the
// render must rebuild the same screen.
func FuzzScreen(f *testing.F) {
	for _, s := range []string{
		"hello\r\nworld", "\x1b[1;99r\x1b[999B\n", "x\x1b[999999999b", "\x1b[?1049h\x1b[2Jalt\x1b[?1049l",
		"\x1b[38;2;1;2;3;48;5;200;1;4:3mX\x1b[0m", "\x1b[2;5r\x1b[?6h\x1b[3;3H\x1b[L\x1b[M\x1b[S\x1b[T",
		"世界\u0301\x1b[2@\x1b[P", "\x1b(0lqqk\x1b(B", "\x1b]2;title\a\x1bP1$r\x1b\\", "\x1b7\x1b[5;5H\x1b8",
		"\t\t\x1b[3g\x1bH\x1b[Z\x1b[2I", "\x1b[41m\x1b[2J\x1b[K\x1b[1K", "\x1b[4h\x1b[20habc\n", "\u009b31m\u009d0;t\a",
	} {
		f.Add([]byte{80, 24}, []byte(s))
		f.Add([]byte{3, 2}, []byte(s))
	}
	f.Fuzz(func(t *testing.T, size, in []byte) {
		cols, rows := 80, 24
		if len(size) >= 2 {
			cols, rows = int(size[0])%100+1, int(size[1])%40+1
		}
		s := New(cols, rows, 50, 4<<10)
		// Fed in two parts, so that sequences split across writes are
		// exercised too.
		half := len(in) / 2
		_, _ = s.Write(in[:half])
		if len(size) > 2 && size[2]&1 == 1 {
			s.Resize(int(size[2])%100+1, rows)
		}
		_, _ = s.Write(in[half:])
		// Every operation touches at most a row or a column's worth of
		// cells (scrolling to the scrollback, a row per line it scrolls).
		if limit := int64(8*(cols+rows)+64) * int64(len(in)+1); s.Work > limit {
			t.Errorf("%d work units for %d bytes on %dx%d: over %d", s.Work, len(in), cols, rows, limit)
		}
		r := s.Render()
		if q := findQuery(r); q != "" {
			t.Errorf("Render holds the query %q", q)
		}
		c2, r2 := s.Size()
		out := New(c2, r2, s.sb.maxLines, s.sb.maxBytes)
		_, _ = out.Write(r)
		if d := diff(s, out); d != "" {
			t.Errorf("Render does not rebuild the screen: %s\nrender %q", d, r)
		}
	})
}
