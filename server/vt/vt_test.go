package vt

import (
	"bytes"
	"fmt"
	goruntime "runtime"
	"slices"
	"strings"
	"testing"
)

func feed(s *Screen, in string) *Screen {
	_, _ = s.Write([]byte(in))
	return s
}

func trimmed(lines []string) []string {
	n := len(lines)
	for n > 0 && lines[n-1] == "" {
		n--
	}
	return lines[:n]
}

func TestScreen(t *testing.T) {
	tests := []struct {
		name       string
		cols, rows int
		in         string
		want       []string // the shown screen, trailing empty rows cut
		wantX      int
		wantY      int
		wantSB     []string
	}{
		{"text", 10, 3, "hello\r\nworld", []string{"hello", "world"}, 5, 1, nil},
		{"wrap", 5, 3, "abcdefg", []string{"abcde", "fg"}, 2, 1, nil},
		{"pending wrap", 5, 3, "abcde", []string{"abcde"}, 4, 0, nil},
		{"scroll", 5, 2, "1\r\n2\r\n3\r\n4", []string{"3", "4"}, 1, 1, []string{"1", "2"}},
		{"cup", 10, 3, "\x1b[2;3Hx", []string{"", "  x"}, 3, 1, nil},
		{"cup clamped", 10, 3, "\x1b[99;99Hx", []string{"", "", "         x"}, 9, 2, nil},
		{"erase line", 10, 2, "abcdef\x1b[3G\x1b[K", []string{"ab"}, 2, 0, nil},
		{"erase left", 10, 2, "abcdef\x1b[3G\x1b[1K", []string{"   def"}, 2, 0, nil},
		{"erase display", 10, 2, "ab\r\ncd\x1b[2J", nil, 2, 1, nil},
		{"clear scrollback", 5, 1, "a\r\nb\x1b[3J", []string{"b"}, 1, 0, nil},
		{"insert chars", 10, 1, "abcd\x1b[2G\x1b[2@", []string{"a  bcd"}, 1, 0, nil},
		{"delete chars", 10, 1, "abcdef\x1b[2G\x1b[2P", []string{"adef"}, 1, 0, nil},
		{"erase chars", 10, 1, "abcdef\x1b[2G\x1b[2X", []string{"a  def"}, 1, 0, nil},
		{"insert line", 5, 3, "a\r\nb\r\nc\x1b[2H\x1b[L", []string{"a", "", "b"}, 0, 1, nil},
		{"delete line", 5, 3, "a\r\nb\r\nc\x1b[1H\x1b[M", []string{"b", "c"}, 0, 0, nil},
		{"region scroll", 5, 4, "top\x1b[2;3r\x1b[3H1\n2\n3", []string{"top", " 2", "  3"}, 3, 2, nil},
		{"reverse index", 5, 3, "a\x1bMb", []string{" b", "a"}, 2, 0, nil},
		{"tab", 20, 1, "a\tb", []string{"a       b"}, 9, 0, nil},
		{"backspace", 10, 1, "ab\bc", []string{"ac"}, 2, 0, nil},
		{"wide", 6, 2, "a世b", []string{"a世b"}, 4, 0, nil},
		{"wide wraps", 4, 2, "abc世", []string{"abc", "世"}, 2, 1, nil},
		{"combining", 6, 1, "e\u0301x", []string{"e\u0301x"}, 2, 0, nil},
		{"line drawing", 6, 1, "\x1b(0lqk\x1b(Bq", []string{"┌─┐q"}, 4, 0, nil},
		{"shift out", 6, 1, "\x1b)0a\x0eq\x0fq", []string{"a─q"}, 3, 0, nil},
		{"repeat", 10, 1, "-\x1b[4b", []string{"-----"}, 5, 0, nil},
		{"repeat clamped", 4, 2, "-\x1b[999999999b", []string{"----", "-"}, 1, 1, nil},
		{"save restore", 10, 2, "ab\x1b7cd\x1b8X", []string{"abXd"}, 3, 0, nil},
		{"alt screen", 10, 2, "main\x1b[?1049h\x1b[2Jalt", []string{"    alt"}, 7, 0, nil},
		{"alt screen left", 10, 2, "main\x1b[?1049halt\x1b[?1049l", []string{"main"}, 4, 0, nil},
		{"origin mode", 10, 4, "\x1b[2;3r\x1b[?6h\x1b[1;1Hx", []string{"", "x"}, 1, 1, nil},
		{"bad region ignored", 10, 3, "\x1b[3;2r\x1b[3Hx\n", []string{"", "x"}, 1, 2, []string{""}},
		{"query answered by nobody", 10, 1, "\x1b[c\x1b[6n\x1b]11;?\a\x1bP$q\"p\x1b\\ok", []string{"ok"}, 2, 0, nil},
		{"title", 10, 1, "\x1b]0;my title\aok", []string{"ok"}, 2, 0, nil},
		{"osc with ST", 10, 1, "\x1b]2;t\x1b\\ok", []string{"ok"}, 2, 0, nil},
		{"can aborts", 10, 1, "\x1b[3\x18ok", []string{"ok"}, 2, 0, nil},
		{"utf8 split", 10, 1, "\xe4\xb8", nil, 0, 0, nil},
		{"bad utf8", 10, 1, "a\xffb", []string{"a\ufffdb"}, 3, 0, nil},
		{"c1 csi", 10, 1, "\u009b5Gx", []string{"    x"}, 5, 0, nil},
		// From the issue: charmbracelet/x/vt panicked on this one.
		{"region past the screen", 10, 3, "\x1b[1;99r\x1b[999B\n", nil, 0, 2, []string{""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := feed(New(tt.cols, tt.rows, 100, 1<<20), tt.in)
			if got := trimmed(s.Lines()); !slices.Equal(got, tt.want) {
				t.Errorf("screen:\n got %q\nwant %q", got, tt.want)
			}
			if x, y := s.Cursor(); x != tt.wantX || y != tt.wantY {
				t.Errorf("cursor %d,%d, want %d,%d", x, y, tt.wantX, tt.wantY)
			}
			if got := s.ScrollbackLines(); !slices.Equal(got, tt.wantSB) {
				t.Errorf("scrollback %q, want %q", got, tt.wantSB)
			}
			checkRoundTrip(t, s)
		})
	}
}

func TestTitle(t *testing.T) {
	s := feed(New(10, 1, 0, 0), "\x1b]2;a\x01b\x7fc\u0085d\a")
	if got := s.Title(); got != "abcd" {
		t.Errorf("title %q: control characters must go", got)
	}
	s = feed(New(10, 1, 0, 0), "\x1b]2;"+strings.Repeat("x", 10000)+"\a")
	if s.Title() != "" {
		t.Errorf("an OSC longer than %d bytes set the title", maxOSC)
	}
}

func TestScrollbackBounded(t *testing.T) {
	s := New(20, 5, 10, 1<<20)
	for i := range 100 {
		feed(s, fmt.Sprintf("line %d\r\n", i))
	}
	sb := s.ScrollbackLines()
	if len(sb) != 10 || sb[0] != "line 86" || sb[9] != "line 95" {
		t.Errorf("scrollback %q: want lines 86 to 95", sb)
	}
	s = New(20, 5, 1000, 64)
	for i := range 100 {
		feed(s, fmt.Sprintf("\x1b[31mline %d\r\n", i))
	}
	if s.sb.bytes > 64 {
		t.Errorf("scrollback holds %d bytes, want at most 64", s.sb.bytes)
	}
}

func TestResize(t *testing.T) {
	s := feed(New(10, 4, 100, 1<<20), "1\r\n2\r\n3\r\n4")
	s.Resize(5, 2)
	if got := s.Lines(); !slices.Equal(got, []string{"3", "4"}) {
		t.Errorf("after shrinking: %q, want the rows by the cursor", got)
	}
	if got := s.ScrollbackLines(); !slices.Equal(got, []string{"1", "2"}) {
		t.Errorf("scrollback %q", got)
	}
	feed(s, "\x1b[1;1H")
	s.Resize(5, 4)
	if got := trimmed(s.Lines()); !slices.Equal(got, []string{"3", "4"}) {
		t.Errorf("after growing: %q", got)
	}
	s = feed(New(10, 2, 0, 0), "ab世cd")
	s.Resize(3, 2)
	if got := s.Lines(); got[0] != "ab" {
		t.Errorf("a wide character cut by a resize: %q", got[0])
	}
	checkRoundTrip(t, s)
}

func TestRenderRestoresModes(t *testing.T) {
	s := feed(New(20, 5, 10, 1<<20), "\x1b[?1h\x1b=\x1b[?2004h\x1b[?1002h\x1b[?1006h\x1b[?25l\x1b[4 q\x1b[2;4r\x1b[4h\x1b(0\x1b]2;vim\a")
	out := New(20, 5, 10, 1<<20)
	feed(out, "garbage\x1b[?1049h")
	feed(out, string(s.Render()))
	if d := diff(s, out); d != "" {
		t.Errorf("after Render: %s", d)
	}
}

func TestRenderHasNoQuery(t *testing.T) {
	s := feed(New(20, 3, 10, 1<<20), "before\x1b[c\x1b[5n\x1b[>c\x1b]11;?\a\x1bP+q544e\x1b\\after")
	r := s.Render()
	if q := findQuery(r); q != "" {
		t.Errorf("Render holds the query %q: %q", q, r)
	}
	if !bytes.Contains(r, []byte("beforeafter")) {
		t.Errorf("Render %q lost the text", r)
	}
}

// findQuery returns the first sequence in b that a terminal answers.
func findQuery(b []byte) string {
	for i := 0; i < len(b); i++ {
		if b[i] != 0x1b || i+1 >= len(b) {
			continue
		}
		switch b[i+1] {
		case '[':
			j := i + 2
			for j < len(b) && (b[j] < 0x40 || b[j] > 0x7e) {
				j++
			}
			if j < len(b) {
				switch b[j] {
				case 'c', 'n', 't', 'x', 'p', 'q':
					seq := string(b[i : j+1])
					if b[j] == 'q' && strings.HasSuffix(seq, " q") {
						continue // DECSCUSR sets the cursor's style
					}
					return seq
				}
			}
		case 'P', 'X', '^', '_', 'Z':
			return string(b[i : i+2])
		case ']':
			if !bytes.HasPrefix(b[i:], []byte("\x1b]2;")) {
				return string(b[i : i+2])
			}
		}
	}
	return ""
}

// checkRoundTrip checks that rendering s into a fresh screen of its size
// gives the same screen.
func checkRoundTrip(t *testing.T, s *Screen) {
	t.Helper()
	r := s.Render()
	out := New(s.cols, s.rows, s.sb.maxLines, s.sb.maxBytes)
	feed(out, string(r))
	if d := diff(s, out); d != "" {
		t.Errorf("Render does not rebuild the screen: %s\nrender %q", d, r)
	}
}

// diff compares what a user sees of two screens and what the program
// relies on: cells, cursor, pen, modes, title, scrollback text.
func diff(a, b *Screen) string {
	var d []string
	if a.AltScreen() != b.AltScreen() {
		d = append(d, fmt.Sprintf("alt screen %v, %v", a.AltScreen(), b.AltScreen()))
	}
	bufs := [][2]*buffer{{a.main, b.main}}
	if a.AltScreen() && b.AltScreen() {
		bufs = append(bufs, [2]*buffer{a.alt, b.alt})
	}
	for i, p := range bufs {
		for y := range a.rows {
			la, lb := p[0].lines[y], p[1].lines[y]
			for x := range a.cols {
				ca, cb := la.at(x), lb.at(x)
				if ca != cb || la.comb[x] != lb.comb[x] {
					d = append(d, fmt.Sprintf("buffer %d cell %d,%d: %+v%q, %+v%q", i, x, y, ca, la.comb[x], cb, lb.comb[x]))
					break
				}
			}
		}
	}
	ca, cb := a.cur, b.cur
	if ca.x != cb.x || ca.y != cb.y || ca.wrapNext != cb.wrapNext {
		d = append(d, fmt.Sprintf("cursor %d,%d wrap %v; %d,%d wrap %v", ca.x, ca.y, ca.wrapNext, cb.x, cb.y, cb.wrapNext))
	}
	if ca.pen != cb.pen || ca.charsets != cb.charsets || ca.gl != cb.gl || ca.origin != cb.origin {
		d = append(d, fmt.Sprintf("pen/charsets %+v; %+v", ca, cb))
	}
	if a.modes != b.modes {
		d = append(d, fmt.Sprintf("modes %+v; %+v", a.modes, b.modes))
	}
	if a.title != b.title {
		d = append(d, fmt.Sprintf("title %q, %q", a.title, b.title))
	}
	if !slices.Equal(a.tabs, b.tabs) {
		d = append(d, "tab stops differ")
	}
	if sa, sb := a.ScrollbackLines(), b.ScrollbackLines(); !slices.Equal(sa, sb) {
		d = append(d, fmt.Sprintf("scrollback %q, %q", sa, sb))
	}
	return strings.Join(d, "; ")
}

func TestWidth(t *testing.T) {
	for _, tt := range []struct {
		r    rune
		want int
	}{
		{'a', 1}, {'é', 1}, {'\u0301', 0}, {'世', 2}, {'가', 2}, {'ｱ', 1}, {'Ａ', 2},
		{'😀', 2}, {'\u200b', 0}, {'\u00ad', 1}, {'─', 1}, {0x1f1e6, 1}, {0x20000, 2}, {0xe0100, 0},
	} {
		if got := width(tt.r); got != tt.want {
			t.Errorf("width(%U) = %d, want %d", tt.r, got, tt.want)
		}
	}
}

// TestHostileScreenMemory: a program that marks every cell of the largest
// screen, and of its alternate, with combining characters held 174 MB of
// the server's memory (1000x1000, four marks a cell); the marked cells a
// screen keeps are bounded, and a screen of the usual size keeps them all.
func TestHostileScreenMemory(t *testing.T) {
	marked := func(s *Screen) (n int) {
		for _, b := range []*buffer{s.main, s.alt} {
			if b == nil {
				continue
			}
			for _, l := range b.lines {
				n += len(l.comb)
			}
		}
		return n
	}
	fill := func(s *Screen) {
		cols, rows := s.Size()
		row := bytes.Repeat([]byte("x\u0301\u0302\u0303\u0304"), cols)
		for _, screen := range []string{"\x1b[H", "\x1b[?1049h\x1b[H"} {
			feed(s, screen)
			for range rows {
				_, _ = s.Write(row)
			}
		}
	}

	s := New(80, 24, DefaultScrollbackLines, DefaultScrollbackBytes)
	fill(s)
	if got, want := marked(s), 2*80*24; got != want {
		t.Errorf("80x24: %d marked cells kept, want all %d", got, want)
	}
	checkRoundTrip(t, s)

	var before, after goruntime.MemStats
	goruntime.GC()
	goruntime.ReadMemStats(&before)
	s = New(MaxCols, MaxRows, DefaultScrollbackLines, DefaultScrollbackBytes)
	fill(s)
	goruntime.GC()
	goruntime.ReadMemStats(&after)
	if got, most := marked(s), 2*maxMarkedCells; got > most {
		t.Errorf("%dx%d: %d marked cells kept, want at most %d", MaxCols, MaxRows, got, most)
	}
	// The cells alone are 12 bytes each: 24.6 MB for both screens' rows
	// of 1,024 (line.grow), and 32,768 marked cells about 2.4 MB more.
	const most = 30 << 20
	held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%dx%d, every cell marked: the screen holds %.1f MB", MaxCols, MaxRows, float64(held)/1e6)
	if held > most {
		t.Errorf("the screen holds %.1f MB, want at most %d MiB", float64(held)/1e6, most>>20)
	}
	goruntime.KeepAlive(s)
}
