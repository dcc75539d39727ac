package vt

import (
	"bytes"
	"fmt"
	"testing"
)

// BenchmarkWrite measures how fast a Screen takes output: plain lines
// (what `yes` prints), coloured lines (ls --color, compilers), and a
// full-screen program redrawing (cursor moves, erases, colours).
func BenchmarkWrite(b *testing.B) {
	var colored, tui bytes.Buffer
	for i := range 200 {
		fmt.Fprintf(&colored, "\x1b[01;34mdir%d\x1b[0m  \x1b[01;32mrun%d\x1b[0m  file%d.go  \x1b[38;5;208mx\x1b[0m\r\n", i, i, i)
		fmt.Fprintf(&tui, "\x1b[%d;1H\x1b[K\x1b[7m%3d\x1b[27m func f%d() { return \x1b[31m\"%d\"\x1b[39m }", i%24+1, i, i, i)
	}
	for _, tt := range []struct {
		name string
		in   []byte
	}{
		{"yes", bytes.Repeat([]byte("y\r\n"), 16<<10)},
		{"colored", colored.Bytes()},
		{"tui", tui.Bytes()},
		{"cjk", bytes.Repeat([]byte("世界你好こんにちは\r\n"), 2000)},
	} {
		b.Run(tt.name, func(b *testing.B) {
			s := New(120, 40, DefaultScrollbackLines, DefaultScrollbackBytes)
			b.SetBytes(int64(len(tt.in)))
			for b.Loop() {
				_, _ = s.Write(tt.in)
			}
		})
	}
}

func BenchmarkRender(b *testing.B) {
	s := New(120, 40, DefaultScrollbackLines, DefaultScrollbackBytes)
	for i := range 2000 {
		fmt.Fprintf(s, "\x1b[01;34mdir%d\x1b[0m  \x1b[01;32mrun%d\x1b[0m  file%d.go\r\n", i, i, i)
	}
	var n int
	for b.Loop() {
		n = len(s.Render())
	}
	b.ReportMetric(float64(n), "bytes")
}
