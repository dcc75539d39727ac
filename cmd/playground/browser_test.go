package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/guntainer/playground/internal/testenv"
	"github.com/guntainer/playground/static"
)

// prompt is the host rootfs's bash prompt, as the terminal shows it.
const prompt = "root@playground:~#"

// adminToken opens TestBrowser's server's /api.
const adminToken = "admin-s3cret"

// TestBrowser drives Debian's chromium against the real `playground serve`: one
// server and one browser for most subtests, each subtest in a tab of its own. Every
// tab records Content-Security-Policy violations from its first script on, and fails
// its subtest if there was any.
func TestBrowser(t *testing.T) {
	exe := chromium(t)
	// A closed tab's session waits out the reconnect grace (a refresh must find it):
	// the subtests' sessions add up beyond the default per-client cap of 10.
	_, srvURL, _ := startServer(t, "--max-sessions-per-client", "0", "--admin-token", adminToken)
	b := newBrowser(t, exe)

	t.Run("type a command and read the answer", func(t *testing.T) {
		tab := b.open(t, srvURL)
		tab.waitPrompt()
		tab.do(typeLine("echo answer=$((6*7))"))
		text := tab.waitText("answer=42\n")
		// Each key once: one command line, one answer, then one fresh prompt.
		if strings.Count(text, "echo answer=$((6*7))") != 1 || strings.Count(text, prompt) != 2 {
			t.Errorf("the terminal does not show the line typed once and a new prompt:\n%s", text)
		}
		tab.do(typeLine(`printf '\033[1;32mgreen\033[0m \033[38;2;255;100;0mtruecolor\033[0m done\n'`))
		tab.waitText("truecolor done")
		tab.screenshot("browser-desktop.png")
		// Wide characters take two cells (unicode11): the bar after them is in column 6.
		tab.do(typeLine(`printf '漢字😀|\n'`))
		tab.waitText("\n漢字😀|")
		col := eval[int](tab, `(() => {
			const buf = window.playground.term.buffer.active;
			for (let y = buf.length - 1; y >= 0; y--) {
				const line = buf.getLine(y);
				if (!line.translateToString(true).startsWith('漢')) continue;
				for (let x = 0; x < line.length; x++) if (line.getCell(x).getChars() === '|') return x;
			}
			return -1;
		})()`)
		if col != 6 {
			t.Errorf("after 漢字😀 the next character is in column %d, want 6 (two cells each)", col)
		}
	})

	t.Run("resize reaches the pty, clamped to the server's limit", func(t *testing.T) {
		tab := b.open(t, srvURL)
		tab.waitPrompt()
		size := func() string {
			return eval[string](tab, `window.playground.term.rows + " " + window.playground.term.cols`)
		}
		before := size()
		tab.do(chromedp.EmulateViewport(640, 360))
		after := tab.waitChange(size, before)
		tab.do(typeLine("echo size=$(stty size)"))
		tab.waitText("size=" + after + "\n")

		// A window wider than the server's 1000 columns: the page asks for 1000, and
		// the session goes on (the server would close it with 1002 otherwise).
		tab.do(chromedp.EmulateViewport(9000, 360))
		wide := tab.waitChange(size, after)
		var rows, cols int
		if _, err := fmt.Sscanf(wide, "%d %d", &rows, &cols); err != nil || cols <= 1000 {
			t.Fatalf("terminal %q after widening, want over 1000 columns", wide)
		}
		tab.do(typeLine("clear; echo wide=$(stty size)"))
		tab.waitText(fmt.Sprintf("wide=%d 1000\n", rows))
		if !eval[bool](tab, `window.playground.state.connected`) {
			t.Error("the connection closed after the wide resize")
		}
	})

	t.Run("paste 1 MB into wc -c", func(t *testing.T) {
		tab := b.open(t, srvURL)
		tab.waitPrompt()
		// The count is marked: under output pressure the pty may echo the last
		// pasted lines after wc has printed it, on the same line.
		tab.do(typeLine(`echo READY; wc -c | sed s/^/cou""nt=/`))
		tab.waitText("\nREADY")
		// A real paste event on xterm's textarea, as the browser fires for Ctrl+V:
		// xterm hands the page all of it in one onData.
		n := eval[int](tab, `(() => {
			const text = ('x'.repeat(63) + '\n').repeat(16384);
			const dt = new DataTransfer();
			dt.setData('text/plain', text);
			document.querySelector('.xterm-helper-textarea').dispatchEvent(
				new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
			window.playground.term.input('\x04', true); // EOF for wc, after the paste
			return text.length;
		})()`)
		if n != 1<<20 {
			t.Fatalf("pasted %d bytes, want 1 MiB", n)
		}
		text := tab.waitTextTimeout("count=", 90*time.Second)
		if m := regexp.MustCompile(`count=(\d+)`).FindStringSubmatch(text); m == nil || m[1] != "1048576" {
			t.Errorf("wc -c counted %v, want 1048576", m)
		}
		if !eval[bool](tab, `window.playground.state.connected`) {
			t.Errorf("connection closed (code %v)", eval[any](tab, `window.playground.state.closeCode`))
		}
	})

	t.Run("Ctrl+C copies a selection, else interrupts; Ctrl+V pastes", func(t *testing.T) {
		tab := b.open(t, srvURL)
		b.grantClipboard(t, srvURL)
		tab.waitPrompt()
		tab.do(typeLine("echo copy-$((3*4))-me"))
		tab.waitText("\ncopy-12-me\n")
		selected := eval[string](tab, `(() => {
			const p = window.playground, buf = p.term.buffer.active;
			for (let y = 0; y < buf.length; y++) {
				if (buf.getLine(y).translateToString(true) === 'copy-12-me') { p.term.select(0, y, 10); break; }
			}
			return p.term.getSelection();
		})()`)
		if selected != "copy-12-me" {
			t.Fatalf("selected %q", selected)
		}
		tab.do(ctrlKey("c", "KeyC", 67, nil))
		if got := eval[string](tab, `navigator.clipboard.readText()`, chromedp.EvalAwaitPromise); got != "copy-12-me" {
			t.Errorf("clipboard after Ctrl+C: %q, want copy-12-me", got)
		}
		if eval[bool](tab, `window.playground.term.hasSelection()`) {
			t.Error("the selection is still there after copying")
		}
		// Without a selection, Ctrl+C interrupts.
		tab.do(typeLine(foregroundSleep))
		tab.waitText("\nstarted")
		tab.do(ctrlKey("c", "KeyC", 67, nil))
		tab.do(typeLine("echo rc=$?"))
		tab.waitText("rc=130\n")
		if strings.Contains(tab.text(), "copy-12-me^C") {
			t.Error("the copying Ctrl+C was sent to the shell as well")
		}
		// Ctrl+V pastes the clipboard (the browser's own paste), not ^V.
		eval[any](tab, `navigator.clipboard.writeText('echo pasted=$((5*5))')`, chromedp.EvalAwaitPromise)
		tab.do(ctrlKey("v", "KeyV", 86, []string{"paste"}), typeLine(""))
		tab.waitText("\npasted=25\n")
	})

	t.Run("output flood: the tab stays responsive", func(t *testing.T) {
		tab := b.open(t, srvURL)
		tab.waitPrompt()
		t0 := time.Now()
		tab.do(typeLine("yes | head -c 50000000; echo flood-$((9*9))"))
		tab.waitTextTimeout("\nflood-81\n", 3*time.Minute)
		elapsed := time.Since(t0)
		ms := eval[float64](tab, `window.playground.echoProbe('Z', 20000)`, chromedp.EvalAwaitPromise)
		got := eval[float64](tab, `window.playground.state.bytesOut`)
		t.Logf("50 MB of output drawn in %v (%.1f MB/s received); a keystroke's echo right after: %.1f ms", elapsed.Round(time.Millisecond), got/elapsed.Seconds()/1e6, ms)
	})

	t.Run("exit, the ended state, start again", func(t *testing.T) {
		tab := b.open(t, srvURL)
		tab.waitPrompt()
		tab.do(typeLine("exit 5"), voidOf(chromedp.Poll[bool](`window.playground.state.ended`)))
		status := tab.run(chromedp.Text(chromedp.ID(`status-text`)))
		if code := eval[int](tab, `window.playground.state.exit.code`); code != 5 || !strings.Contains(status, "exit code 5") {
			t.Errorf("after exit 5: exit code %v, status %q", code, status)
		}
		tab.screenshot("browser-ended.png")
		// A key down in the terminal whose keyup it never gets, as the Enter of the
		// exit above when the page moves the focus to "Start again" in between (seen
		// in CI under load): xterm.js then dropped the next inserted text, the new
		// session's first line.
		tab.do(chromedp.Focus(chromedp.CSS(`.xterm-helper-textarea`)), keyDownOnly("Shift", "ShiftLeft", 16))
		tab.do(chromedp.WaitVisible(chromedp.ID(`restart`)), chromedp.Click(chromedp.ID(`restart`)))
		tab.do(voidOf(chromedp.Poll[bool](`window.playground.state.connected && !window.playground.state.ended`)))
		tab.waitPrompt()
		tab.do(typeLine("echo again=$((1+2))"))
		tab.waitText("again=3\n")
	})

	t.Run("phone: the key bar's Ctrl+C interrupts", func(t *testing.T) {
		tab := b.openWith(t, srvURL, chromedp.EmulateViewport(390, 700, chromedp.EmulatePortrait, chromedp.EmulateMobile, chromedp.EmulateTouch))
		tab.waitPrompt()
		tab.do(chromedp.WaitVisible(chromedp.ID(`keybar`)))
		tab.do(typeLine(foregroundSleep))
		tab.waitText("\nstarted")
		tab.do(chromedp.Tap(chromedp.ID(`key-ctrl`)))
		if p := eval[string](tab, `document.getElementById('key-ctrl').getAttribute('aria-pressed')`); p != "true" {
			t.Errorf("Ctrl after a tap: aria-pressed %q", p)
		}
		tab.do(insertText("c"))
		tab.do(typeLine("echo rc=$?"))
		tab.waitText("rc=130\n")
		if p := eval[string](tab, `document.getElementById('key-ctrl').getAttribute('aria-pressed')`); p != "false" {
			t.Errorf("Ctrl stays pressed after one key: aria-pressed %q", p)
		}
		tab.do(chromedp.Tap(chromedp.ID(`key-up`)))
		tab.waitText("# echo rc=$?") // the up arrow recalls the last command
		tab.screenshot("browser-phone.png")
	})

	t.Run("CSP header, compressed assets, token removed from the address bar", func(t *testing.T) {
		tab := b.open(t, srvURL+"?token=s3cret&fontSize=15")
		tab.waitPrompt()
		csp := eval[string](tab, `fetch(location.href, {cache: 'no-store'}).then(r => r.headers.get('content-security-policy'))`, chromedp.EvalAwaitPromise)
		if csp != static.ContentSecurityPolicy {
			t.Errorf("Content-Security-Policy: %q, want %q", csp, static.ContentSecurityPolicy)
		}
		// The browser asked for, and got, compressed assets.
		enc := eval[[]map[string]any](tab, `performance.getEntriesByType('resource').filter(e => e.name.includes('/assets/')).map(e => ({name: e.name, encoded: e.encodedBodySize, decoded: e.decodedBodySize}))`)
		if len(enc) == 0 {
			t.Error("no asset requests seen")
		}
		for _, e := range enc {
			if e["encoded"].(float64) >= e["decoded"].(float64) {
				t.Errorf("%v came uncompressed: %v of %v bytes", e["name"], e["encoded"], e["decoded"])
			}
		}
		loc := eval[string](tab, `location.search`)
		if strings.Contains(loc, "token") || !strings.Contains(loc, "fontSize=15") {
			t.Errorf("address after load: %q, want the token gone and the rest kept", loc)
		}
		if fs := eval[int](tab, `window.playground.term.options.fontSize`); fs != 15 {
			t.Errorf("?fontSize=15: font size %d", fs)
		}
	})

	t.Run("WebGL renderer, and the DOM renderer after a lost context", func(t *testing.T) {
		// Forced: on a machine without a GPU the page picks the DOM renderer itself.
		tab := b.open(t, srvURL+"?renderer=webgl")
		tab.waitPrompt()
		tab.do(voidOf(chromedp.Poll[bool](`window.playground.state.rendererReady`)))
		if !eval[bool](tab, `!!document.createElement('canvas').getContext('webgl2')`) {
			testenv.Skipf(t, "this chromium has no WebGL2")
		}
		if r := eval[string](tab, `window.playground.state.renderer`); r != "webgl" {
			t.Fatalf("renderer %q with WebGL2 available, want webgl", r)
		}
		lost := eval[bool](tab, `(() => {
			for (const c of document.querySelectorAll('.xterm-screen canvas')) {
				const gl = c.getContext('webgl2');
				if (gl) { gl.getExtension('WEBGL_lose_context').loseContext(); return true; }
			}
			return false;
		})()`)
		if !lost {
			t.Fatal("no WebGL2 canvas in the terminal")
		}
		tab.do(voidOf(chromedp.Poll[bool](`window.playground.state.renderer === 'dom'`)))
		tab.do(typeLine("echo after-loss=$((8*8))"))
		tab.waitText("after-loss=64\n")
		tab.do(voidOf(chromedp.Poll[bool](`[...document.querySelectorAll('.xterm-rows > div')].some(d => d.textContent.trim() === 'after-loss=64')`)))
	})

	t.Run("the connection drops: the page reattaches to the same shell", func(t *testing.T) {
		proxy := newCutProxy(t, srvURL)
		tab := b.open(t, proxy.url)
		tab.waitPrompt()
		// SESSION's resume key and route are the tab's.
		session := eval[map[string]any](tab, `window.playground.state.session`)
		stored := eval[[]string](tab, `[sessionStorage.getItem('playground.resume') ?? '', sessionStorage.getItem('playground.route') ?? '']`)
		resume, _ := session["resume"].(string)
		route, _ := session["route"].(string)
		if resume == "" || route == "" {
			t.Fatalf("SESSION %v: want a resume key and a route (the server's route id defaults to its host name)", session)
		}
		if stored[0] != resume || stored[1] != route {
			t.Errorf("sessionStorage holds resume %q route %q, want %q and %q", stored[0], stored[1], resume, route)
		}
		tab.do(typeLine("export MARK=kept-$((7*6))"))
		tab.waitText("# export MARK=kept-$((7*6))\n")
		before := tab.text()

		// The server's side drops (no close frame, as when a network fails): the page
		// comes back with the key, to the route, and gets the screen as it was.
		proxy.cut()
		tab.do(voidOf(chromedp.Poll[bool](`window.playground.state.resumes >= 1 && window.playground.state.phase === 'connected' && window.playground.state.session !== null`)))
		if got := tab.waitScreen(before); got != before {
			t.Errorf("the screen after the reattach differs from before the drop:\n--- before\n%s\n--- after\n%s", before, got)
		}
		if id := eval[string](tab, `window.playground.state.session.id`); id != session["id"] {
			t.Errorf("reattached to session %q, want %v", id, session["id"])
		}
		if reqs := proxy.requests(); len(reqs) < 2 || !strings.Contains(reqs[len(reqs)-1], "/ws?route="+url.QueryEscape(route)+" ") {
			t.Errorf("the reconnect's request does not name the route %q: %q", route, reqs)
		}
		tab.do(typeLine("echo mark=$MARK"))
		text := tab.waitText("mark=kept-42\n")
		for _, line := range []string{"export MARK=kept-$((7*6))", "echo mark=$MARK"} {
			if n := strings.Count(text, line); n != 1 {
				t.Errorf("%q shows %d times after the reattach, want once:\n%s", line, n, text)
			}
		}

		// A refresh reattaches too: the resume key lives in the tab's sessionStorage.
		tab.do(chromedp.Reload())
		tab.waitPrompt()
		tab.waitText("mark=kept-42\n")
		tab.do(typeLine("echo again=$MARK"))
		text = tab.waitText("again=kept-42\n")
		if n := strings.Count(text, "export MARK=kept-$((7*6))"); n != 1 {
			t.Errorf("after the refresh the line typed first shows %d times, want once:\n%s", n, text)
		}
		if id := eval[string](tab, `window.playground.state.session.id`); id != session["id"] {
			t.Errorf("the refreshed tab is in session %q, want %v", id, session["id"])
		}

		// A new tab starts a session of its own.
		other := b.open(t, proxy.url)
		other.waitPrompt()
		if id := eval[string](other, `window.playground.state.session.id`); id == session["id"] {
			t.Errorf("a new tab joined session %q, want a new one", id)
		}
		other.do(typeLine("echo fresh=[$MARK]"))
		other.waitText("fresh=[]\n")
	})

	t.Run("a watcher follows the owner's terminal, read-only, at its size", func(t *testing.T) {
		owner := b.open(t, srvURL)
		owner.waitPrompt()
		owner.do(typeLine("echo before-watch-$((3*5))"))
		owner.waitText("\nbefore-watch-15\n")
		key := eval[string](owner, `window.playground.state.session?.watch ?? ''`)
		if key == "" {
			t.Fatal("SESSION carries no watch key")
		}
		// The owner's bar offers the read-only link.
		owner.do(chromedp.WaitVisible(chromedp.ID(`share`)))

		w := b.open(t, srvURL+"?watch="+url.QueryEscape(key))
		w.do(voidOf(chromedp.Poll[bool](`window.playground.state.connected && window.playground.state.session !== null`)))
		w.waitText("\nbefore-watch-15\n") // the screen as it is
		w.do(chromedp.WaitVisible(chromedp.ID(`mode`)))
		if s := w.run(chromedp.Text(chromedp.ID(`status-text`))); !strings.Contains(s, "read-only") {
			t.Errorf("the watcher's status %q does not say read-only", s)
		}
		if eval[bool](w, `!document.getElementById('share').hidden`) {
			t.Error("a watcher is offered a link to share")
		}
		size := func(tb *tab) string {
			return eval[string](tb, `window.playground.term.rows + " " + window.playground.term.cols`)
		}
		if got, want := size(w), size(owner); got != want {
			t.Errorf("watcher's terminal %s, owner's %s: want the owner's size", got, want)
		}

		owner.do(typeLine("echo live-$((6*7))"))
		w.waitText("\nlive-42\n")
		w.screenshot("browser-watch.png")

		// What the watcher types goes nowhere.
		w.do(chromedp.Focus(chromedp.CSS(`.xterm-helper-textarea`)), typeLine("echo intruder"))
		owner.do(typeLine("echo owner-after"))
		owner.waitText("\nowner-after\n")
		w.waitText("\nowner-after\n")
		if strings.Contains(owner.text(), "intruder") || strings.Contains(w.text(), "intruder") {
			t.Errorf("the watcher's typing reached the terminal:\n%s", owner.text())
		}

		// The owner resizes: the watcher follows. The watcher's window changes nothing.
		before := size(owner)
		owner.do(chromedp.EmulateViewport(700, 400))
		after := owner.waitChange(func() string { return size(owner) }, before)
		w.waitFor(func() bool { return size(w) == after }, "the watcher's terminal to follow the owner's "+after)
		w.do(chromedp.EmulateViewport(500, 300))
		owner.do(typeLine("echo size=$(stty size)"))
		owner.waitText("size=" + after + "\n")
		if got := size(w); got != after {
			t.Errorf("watcher's terminal %s after its own window shrank, want the owner's %s", got, after)
		}
		// Nothing went from the watcher but its init: no INPUT, RESIZE, PAUSE or RESUME.
		if sent := eval[[]string](w, `window.__sent.map(f => f[0])`); len(sent) != 1 || sent[0] != "{" {
			t.Errorf("the watcher sent %q, want its init alone", sent)
		}

		// A teacher watches any session through the admin API's link.
		id := eval[string](owner, `window.playground.state.session.id`)
		var api struct{ Watch, Path string }
		adminGet(t, srvURL+"api/sessions/"+id+"/watch", &api)
		if !strings.HasPrefix(api.Path, "/?watch=") {
			t.Fatalf("admin watch path %q", api.Path)
		}
		teacher := b.open(t, srvURL+strings.TrimPrefix(api.Path, "/"))
		teacher.waitText("size=" + after + "\n")
		teacher.do(chromedp.WaitVisible(chromedp.ID(`mode`)))

		// The session ends: the watchers say how, and offer a session of their own.
		owner.do(typeLine("exit 3"))
		for _, tb := range []*tab{w, teacher} {
			tb.do(voidOf(chromedp.Poll[bool](`window.playground.state.ended`)), chromedp.WaitVisible(chromedp.ID(`restart`)))
			if s := tb.run(chromedp.Text(chromedp.ID(`status-text`))); !strings.Contains(s, "exit code 3") {
				t.Errorf("watcher's status after the owner's exit 3: %q", s)
			}
			if label := tb.run(chromedp.Text(chromedp.ID(`restart`))); label != "Start your own session" {
				t.Errorf("watcher's button after the end: %q", label)
			}
		}
		// The button navigates: wait for the new page (evaluations fail while it loads).
		w.do(chromedp.Click(chromedp.ID(`restart`)))
		w.waitFor(func() bool {
			ctx, cancel := context.WithTimeout(w.ctx, 5*time.Second)
			defer cancel()
			own, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`!!window.playground && !window.playground.state.watching`))
			return err == nil && own
		}, "the page of a session of one's own")
		w.waitPrompt()
		if eval[bool](w, `window.playground.state.watching || location.search.includes('watch')`) {
			t.Errorf("after 'Start your own session' the page still watches: %s", eval[string](w, `location.href`))
		}
	})
}

// foregroundSleep starts a program that an interrupt ends, and prints "started" once
// that program runs in the terminal's foreground: sh prints it after bash has made it
// the foreground process group and restored the default SIGINT (a job control shell
// does both in the child, before exec), and sh then becomes sleep in place. So a ^C
// after "started" ends sh or sleep, whichever it is by then, by SIGINT, and $? is 130.
// (After `echo started; sleep 100` a ^C could come between the echo and sleep's exec,
// reach bash, or a child that had not reset bash's handlers yet, and sleep ran on.)
const foregroundSleep = `sh -c 'echo started; exec sleep 100'`

// TestBrowserNoWebGL: without WebGL the DOM renderer draws the terminal, colours and
// all, with no CSP violation (xterm's DOM renderer writes dynamic styles).
func TestBrowserNoWebGL(t *testing.T) {
	exe := chromium(t)
	_, srvURL, _ := startServer(t)
	b := newBrowser(t, exe, chromedp.Flag("disable-webgl", true))
	tab := b.open(t, srvURL)
	tab.waitPrompt()
	tab.do(voidOf(chromedp.Poll[bool](`window.playground.state.rendererReady`)))
	if r := eval[string](tab, `window.playground.state.renderer`); r != "dom" {
		t.Fatalf("renderer %q with WebGL disabled, want dom", r)
	}
	tab.do(typeLine(`printf '\033[38;2;255;0;0mRED\033[0m\n'`))
	tab.waitText("\nRED\n")
	// The DOM renderer draws on the next animation frame: wait for the span.
	color, err := chromedp.Run(tab.ctx, chromedp.Poll[string](`(() => {
		for (const s of document.querySelectorAll('.xterm-rows span')) if (s.textContent === 'RED') return getComputedStyle(s).color;
		return '';
	})()`, chromedp.WithPollingTimeout(20*time.Second)))
	if err != nil {
		t.Fatalf("RED not drawn in the DOM: %v", err)
	}
	if color != "rgb(255, 0, 0)" {
		t.Errorf("RED drawn in %q, want rgb(255, 0, 0)", color)
	}
	tab.screenshot("browser-dom-renderer.png")
}

// TestBrowserTypeahead: with no warm container, a command typed before the prompt is
// there runs once and shows once (the pty used to echo it, then readline again).
func TestBrowserTypeahead(t *testing.T) {
	exe := chromium(t)
	_, srvURL, _ := startServer(t, "--warm", "0")
	b := newBrowser(t, exe)
	tab := b.open(t, srvURL)
	// As soon as the page has a terminal: the socket may not even be open yet.
	tab.do(voidOf(chromedp.Poll[bool](`!!window.playground`)), chromedp.Focus(chromedp.CSS(`.xterm-helper-textarea`)))
	early := eval[bool](tab, `window.playground.state.firstOutputAt === null`)
	tab.do(typeLine("echo early=$((2+3))"))
	text := tab.waitText("early=5\n")
	if !early {
		t.Log("the prompt was there before the test typed: this run did not race the shell's start")
	}
	if n := strings.Count(text, "echo early=$((2+3))"); n != 1 {
		t.Errorf("the command shows %d times, want once:\n%s", n, text)
	}
}

func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := lookPath(name); err == nil {
			return p
		}
	}
	testenv.Skipf(t, "no chromium installed (apt-get install chromium)")
	return ""
}

// testBrowser is one chromium for a test and its subtests.
type testBrowser struct {
	ctx context.Context
}

func newBrowser(t testing.TB, exe string, extra ...chromedp.ExecAllocatorOption) *testBrowser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1000, 600),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		// WebGL on a machine without a GPU: chromium's software rasterizer.
		chromedp.Flag("enable-unsafe-swiftshader", true),
	)
	opts = append(opts, extra...)
	if os.Getuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // chromium refuses its sandbox as root
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first Run starts the browser: no timeout on that context (it would end
	// the browser), a watchdog on each tab's.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return &testBrowser{ctx: ctx}
}

func (b *testBrowser) grantClipboard(t testing.TB, origin string) {
	t.Helper()
	u, err := url.Parse(origin)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"clipboard-read", "clipboard-write"} {
		_, err := chromedp.CallBrowser(b.ctx, browser.SetPermission, browser.SetPermissionParams{
			Permission: &browser.PermissionDescriptor{Name: name, AllowWithoutSanitization: true},
			Setting:    "granted",
			Origin:     u.Scheme + "://" + u.Host,
		})
		if err != nil {
			t.Fatalf("grant %s: %v", name, err)
		}
	}
}

// cspRecorder runs before the page's own scripts and records every CSP violation, and
// every WebSocket frame the page sends (window.__sent: the init frame whole, others as
// their command byte and length).
const cspRecorder = `window.__csp = [];
document.addEventListener('securitypolicyviolation', e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI + ' ' + (e.sample || '')));
window.__sent = [];
(() => {
	const send = WebSocket.prototype.send;
	WebSocket.prototype.send = function (data) {
		try {
			const b = data instanceof Uint8Array ? data : new Uint8Array(data instanceof ArrayBuffer ? data : new TextEncoder().encode(String(data)));
			window.__sent.push(b[0] === 0x7b ? new TextDecoder().decode(b) : String.fromCharCode(b[0]) + ':' + (b.length - 1));
		} catch (e) {
			window.__sent.push('?');
		}
		return send.call(this, data);
	};
})();`

// open opens url in a new tab of b, for the life of the subtest t.
func (b *testBrowser) open(t testing.TB, url string) *tab {
	return b.openWith(t, url)
}

func (b *testBrowser) openWith(t testing.TB, url string, setup ...chromedp.Action[chromedp.Void]) *tab {
	t.Helper()
	ctx, cancelTab := chromedp.NewContext(b.ctx)
	tctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	tb := &tab{t: t, ctx: tctx, name: strings.NewReplacer(" ", "-", "/", "-").Replace(t.Name())}
	tb.close = sync.OnceFunc(func() {
		if v, err := chromedp.Run(tctx, chromedp.Evaluate[[]string](`window.__csp || []`)); err == nil && len(v) > 0 {
			t.Errorf("Content-Security-Policy violations: %q", v)
		}
		cancel()
		cancelTab()
	})
	t.Cleanup(tb.close)
	addRecorder := chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: cspRecorder})
		return err
	})
	tb.do(append(setup, addRecorder, chromedp.Navigate(url))...)
	return tb
}

// tab is one page under test.
type tab struct {
	t     testing.TB
	ctx   context.Context
	name  string
	close func() // checks for CSP violations and closes the tab; idempotent
}

func (tb *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	if err := chromedp.Do(tb.ctx, actions...); err != nil {
		tb.screenshot(tb.name + "-failed.png")
		tb.t.Fatalf("browser: %v; state %s; terminal text:\n%s", err, tb.state(), tb.text())
	}
}

func (tb *tab) run(a chromedp.Action[string]) string {
	tb.t.Helper()
	v, err := chromedp.Run(tb.ctx, a)
	if err != nil {
		tb.t.Fatalf("browser: %v", err)
	}
	return v
}

func eval[T any](tb *tab, expr string, opts ...chromedp.EvaluateOption) T {
	tb.t.Helper()
	v, err := chromedp.Run(tb.ctx, chromedp.Evaluate[T](expr, opts...))
	if err != nil {
		tb.t.Fatalf("evaluate %.80q: %v", expr, err)
	}
	return v
}

// text is the terminal's buffer, or "" before the page is up.
func (tb *tab) text() string {
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	v, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`window.playground ? window.playground.text() : ''`))
	return v
}

func (tb *tab) waitText(want string) string {
	tb.t.Helper()
	return tb.waitTextTimeout(want, 60*time.Second)
}

func (tb *tab) waitTextTimeout(want string, d time.Duration) string {
	tb.t.Helper()
	deadline := time.Now().Add(d)
	for {
		text := tb.text()
		if strings.Contains(text, want) {
			return text
		}
		if time.Now().After(deadline) || tb.ctx.Err() != nil {
			tb.screenshot(tb.name + "-failed.png")
			tb.t.Fatalf("%q not in the terminal after %v; state %v; terminal text:\n%s", want, d, tb.state(), tail(text, 3000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (tb *tab) state() string {
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	v, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify(window.playground && window.playground.state)`))
	return v
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// waitPrompt waits for the shell's prompt and puts the focus in the terminal. Type
// at the prompt, not ahead of it, unless that is the test.
func (tb *tab) waitPrompt() {
	tb.t.Helper()
	tb.do(
		voidOf(chromedp.Poll[bool](`!!(window.playground && window.playground.state.connected)`)),
		chromedp.WaitVisible(chromedp.CSS(`.xterm-helper-textarea`)),
		chromedp.Focus(chromedp.CSS(`.xterm-helper-textarea`)),
	)
	tb.waitText(prompt)
}

// waitScreen waits for the terminal's text to be want (a screen redrawn after a
// reattach arrives in a few frames) and returns what it was last.
func (tb *tab) waitScreen(want string) string {
	tb.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := tb.text()
		if got == want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitFor polls cond until it holds, or fails the test saying what it waited for.
func (tb *tab) waitFor(cond func() bool, what string) {
	tb.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.t.Fatalf("timed out waiting for %s; state %s", what, tb.state())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitChange polls f until it returns something other than old.
func (tb *tab) waitChange(f func() string, old string) string {
	tb.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if v := f(); v != old {
			return v
		}
		time.Sleep(20 * time.Millisecond)
	}
	tb.t.Fatalf("still %q after 10 s", old)
	return ""
}

func (tb *tab) screenshot(name string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		tb.t.Logf("screenshot %s: %v", name, err)
		return
	}
	saveArtifact(tb.t, name, shot)
}

// typeLine types a line into the focused terminal: the text as the browser
// inserts typed text into xterm.js's textarea, then a real Enter key press.
// (chromedp's SendKeys sends keydown and char for each key, which xterm.js
// takes as two key presses.)
func typeLine(line string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		if line != "" {
			if _, err := cdp.Call(ctx, t, input.InsertText, input.InsertTextParams{Text: line}); err != nil {
				return chromedp.Void{}, err
			}
		}
		// One keydown that carries its text, as a real keyboard's does:
		// chromedp's KeyEvent adds a separate char event, which xterm.js
		// would take as a second Enter.
		enter := input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeKeyDown, Key: "Enter", Code: "Enter", WindowsVirtualKeyCode: 13, NativeVirtualKeyCode: 13, Text: "\r"}
		if _, err := cdp.Call(ctx, t, input.DispatchKeyEvent, enter); err != nil {
			return chromedp.Void{}, err
		}
		enter.Type, enter.Text = input.DispatchKeyEventTypeKeyUp, ""
		_, err := cdp.Call(ctx, t, input.DispatchKeyEvent, enter)
		return chromedp.Void{}, err
	}
}

// keyDownOnly presses a key and never lets it go.
func keyDownOnly(key, code string, keyCode int64) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, input.DispatchKeyEvent, input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeRawKeyDown, Key: key, Code: code, WindowsVirtualKeyCode: keyCode, NativeVirtualKeyCode: keyCode})
		return err
	})
}

// insertText types text as an on-screen keyboard does: an input event, no key codes.
func insertText(text string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, input.InsertText, input.InsertTextParams{Text: text})
		return err
	})
}

// ctrlKey presses Ctrl+key as a keyboard does: keydown with the modifier, and the
// control character as its text; commands are the editing commands the browser
// runs for it natively (CDP runs none by itself), such as "paste" for Ctrl+V.
func ctrlKey(key, code string, vk int64, commands []string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		ctrlChar := string(rune(strings.ToUpper(key)[0] - 0x40))
		down := input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeRawKeyDown, Modifiers: 2, Key: key, Code: code, WindowsVirtualKeyCode: vk, NativeVirtualKeyCode: vk, Commands: commands}
		if _, err := cdp.Call(ctx, t, input.DispatchKeyEvent, down); err != nil {
			return err
		}
		char := input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeChar, Modifiers: 2, Key: key, Code: code, Text: ctrlChar, UnmodifiedText: key}
		if _, err := cdp.Call(ctx, t, input.DispatchKeyEvent, char); err != nil {
			return err
		}
		up := input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeKeyUp, Modifiers: 2, Key: key, Code: code, WindowsVirtualKeyCode: vk, NativeVirtualKeyCode: vk}
		_, err := cdp.Call(ctx, t, input.DispatchKeyEvent, up)
		return err
	})
}

// voidOf drops an action's value, to run it among others with Do.
func voidOf[T any](a chromedp.Action[T]) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := a(ctx, t)
		return chromedp.Void{}, err
	}
}

// cutProxy forwards TCP to the server and can cut every connection at once: to the
// page, the server dropped its WebSocket (no close frame, as when a network fails).
type cutProxy struct {
	url   string
	mu    sync.Mutex
	conns []net.Conn
	reqs  []string // the first line of each request that came through, for /ws
}

// requests returns the request lines of the /ws requests so far.
func (p *cutProxy) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.reqs)
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{url: "http://" + ln.Addr().String() + "/"}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		_ = ln.Close()
		p.cut()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", u.Host)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			wg.Go(func() {
				// Each connection's first line, when it is /ws (a WebSocket's connection
				// carries one request); the bytes go on unchanged.
				br := bufio.NewReader(c)
				if line, err := br.ReadString('\n'); err == nil {
					if strings.HasPrefix(line, "GET /ws") {
						p.mu.Lock()
						p.reqs = append(p.reqs, strings.TrimSpace(line))
						p.mu.Unlock()
					}
					_, _ = io.WriteString(s, line)
				}
				_, _ = io.Copy(s, br)
				_ = s.Close()
			})
			wg.Go(func() { _, _ = io.Copy(c, s); _ = c.Close() })
		}
	})
	return p
}

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // a reset, not a goodbye
		}
		_ = c.Close()
	}
	p.conns = nil
}

// saveArtifact keeps a file for people to look at: in
// $PLAYGROUND_TEST_ARTIFACTS, or a directory of this user's in the
// system's temp dir.
func saveArtifact(t testing.TB, name string, b []byte) {
	t.Helper()
	dir := os.Getenv("PLAYGROUND_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), fmt.Sprintf("playground-test-artifacts-%d", os.Getuid()))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("saved %s", p)
}

// adminGet GETs an admin API URL with adminToken and decodes its JSON into v.
func adminGet(t *testing.T, u string, v any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(res.Body)
		t.Fatalf("GET %s: %s %s", u, res.Status, body)
	}
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}
