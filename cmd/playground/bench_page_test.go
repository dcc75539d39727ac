package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"

	"github.com/guntainer/playground/internal/testenv"
)

// The page's figures, each beside its baseline from the same run, in headless chromium
// against the real `playground serve` (warm pool of 2). Run with
//
//	go test -run '^$' -bench 'Page' -benchtime 10x ./cmd/playground
//
// They are benchmarks, not tests: nothing here asserts a speed.

// BenchmarkPagePrompt: from navigation to the prompt drawn in the terminal (xterm has
// parsed the shell's first output: the prompt of a warm container), median of b.N page
// loads, beside a bare Go WebSocket client's dial-to-prompt in the same run.
func BenchmarkPagePrompt(b *testing.B) {
	exe := chromiumB(b)
	// No per-client cap: every tab's session waits out the reconnect grace.
	_, srvURL, _ := startServer(b, "--warm", "2", "--max-sessions-per-client", "0")
	br := newBrowser(b, exe)
	wsURL := "ws" + strings.TrimPrefix(srvURL, "http") + "ws"
	var page, wall, bare []float64
	for b.Loop() {
		time.Sleep(300 * time.Millisecond) // let the pool refill: both measure a warm start
		t0 := time.Now()
		tab := br.open(b, srvURL)
		tab.do(voidOf(chromedp.Poll[bool](`!!(window.playground && window.playground.state.firstOutputAt !== null && window.playground.text().includes('`+prompt+`'))`, chromedp.WithPollingInterval(5*time.Millisecond))))
		wall = append(wall, ms(time.Since(t0)))
		page = append(page, eval[float64](tab, `window.playground.state.firstOutputAt`))
		tab.close()

		time.Sleep(300 * time.Millisecond)
		bare = append(bare, wsPrompt(b, wsURL))
	}
	b.ReportMetric(median(page), "page-ms")
	b.ReportMetric(median(wall), "page-wall-ms")
	b.ReportMetric(median(bare), "ws-ms")
	b.Logf("navigation to prompt: page %.1f ms (performance.now at first output drawn), %.1f ms wall; bare WebSocket client %.1f ms; medians of %d", median(page), median(wall), median(bare), len(page))
}

// wsPrompt dials /ws as a ttyd client does and times dial to the prompt's bytes.
func wsPrompt(b *testing.B, wsURL string) float64 {
	t0 := time.Now()
	conn, _, err := (&websocket.Dialer{Subprotocols: []string{"tty"}}).Dial(wsURL, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	_ = conn.WriteMessage(websocket.TextMessage, []byte(`{"AuthToken":"","columns":80,"rows":24}`))
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	var out strings.Builder
	for !strings.Contains(out.String(), "~\x1b[0m# ") && !strings.Contains(out.String(), "~# ") {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			b.Fatalf("read: %v; got %q", err, out.String())
		}
		if len(msg) > 0 && msg[0] == '0' {
			out.Write(msg[1:])
		}
	}
	return ms(time.Since(t0))
}

// BenchmarkPageEchoUnderOutput: a program prints 80-column lines at a set rate while
// a keystroke's echo is timed (to the echo parsed by xterm), at rising rates; reported
// are the rate the page drew and the median echo at each, and the highest drawn rate
// whose median echo stayed within 50 ms. The baseline is the echo with no output.
func BenchmarkPageEchoUnderOutput(b *testing.B) {
	exe := chromiumB(b)
	// No per-client cap: every tab's session waits out the reconnect grace.
	_, srvURL, _ := startServer(b, "--warm", "2", "--max-sessions-per-client", "0")
	rates := []float64{0.25, 0.5, 1, 2, 4, 8} // MB/s asked of the program
	browsers := map[string]*testBrowser{"webgl": newBrowser(b, exe), "dom": newBrowser(b, exe, chromedp.Flag("disable-webgl", true))}
	for b.Loop() {
		for _, name := range []string{"webgl", "dom"} {
			tab := browsers[name].open(b, srvURL+"?renderer="+name)
			tab.waitPrompt()
			tab.do(voidOf(chromedp.Poll[bool](`window.playground.state.rendererReady`)))
			if r := eval[string](tab, `window.playground.state.renderer`); r != name {
				b.Fatalf("renderer %s, want %s", r, name)
			}
			idle := probeEchoes(tab, 5)
			eval[any](tab, `window.playground.term.input('\x15', true)`) // ^U: the probes' keys off the command line
			best := 0.0
			b.Logf("%s renderer, no output: echo median %.1f ms", name, idle)
			for _, r := range rates {
				// 205 lines of 80 bytes per write, then a pause that makes the rate.
				cmd := fmt.Sprintf(`perl -e '$|=1; $c = (("y" x 79) . "\n") x 205; $s = length($c) / %g; while (1) { print $c; select(undef, undef, undef, $s) }'`, r*1e6)
				tab.do(typeLine(cmd))
				time.Sleep(time.Second) // past the start
				n0, t0 := eval[float64](tab, `window.playground.state.bytesOut`), time.Now()
				echo := probeEchoes(tab, 7)
				drawn := (eval[float64](tab, `window.playground.state.bytesOut`) - n0) / time.Since(t0).Seconds() / 1e6
				tab.do(ctrlKey("c", "KeyC", 67, nil))
				tab.waitPrompt()
				b.Logf("%s renderer, asked %5.2f MB/s: drawn %5.2f MB/s, echo median %6.1f ms", name, r, drawn, echo)
				if echo <= 50 && drawn > best {
					best = drawn
				}
			}
			b.ReportMetric(idle, name+"-idle-echo-ms")
			b.ReportMetric(best, name+"-MB/s-with-echo<=50ms")
			tab.close()
		}
	}
}

// probeEchoes types n keys one after another and returns the median time to each echo.
func probeEchoes(tab *tab, n int) float64 {
	var d []float64
	for i := range n {
		d = append(d, eval[float64](tab, fmt.Sprintf(`window.playground.echoProbe('%c', 30000)`, 'A'+i), chromedp.EvalAwaitPromise))
		time.Sleep(50 * time.Millisecond)
	}
	return median(d)
}

func chromiumB(b *testing.B) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := lookPath(name); err == nil {
			return p
		}
	}
	testenv.Skipf(b, "no chromium installed")
	return ""
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
