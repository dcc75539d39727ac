package main

import (
	"encoding/json"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The page against what the real server does to whole sessions: a drain (SIGTERM),
// and a handshake refused at the session limit. Each test has a server of its own.

// TestBrowserDrain: on SIGTERM the server drains. A person in a session sees the
// server's NOTICE in the bar and works on; a dropped connection still gets back in
// (its reconnect names the route, which a draining server lets in); a new tab is
// refused and says the server is shutting down, and retries. At the second signal the
// server ends every session with 1001: the page says the session ended because the
// server shut down, keeps the screen (to copy from) and offers to start again; it does
// not start a new session by itself, since the shell and its state are gone and the
// person should know. Started again while no server answers, it says it cannot reach
// the server and retries.
func TestBrowserDrain(t *testing.T) {
	exe := chromium(t)
	cmd, srvURL, logs := startServer(t)
	b := newBrowser(t, exe)
	proxy := newCutProxy(t, srvURL)
	page := b.open(t, proxy.url)
	page.waitPrompt()
	page.do(typeLine("export MARK=drained-$((4*4))"))
	page.waitText("# export MARK=drained-$((4*4))\n")

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	page.waitFor(func() bool {
		return strings.Contains(eval[string](page, `document.getElementById('notice').textContent`), "maintenance")
	}, "the drain's NOTICE in the bar")
	if strings.Contains(page.text(), "maintenance") {
		t.Errorf("the NOTICE is in the terminal grid:\n%s", page.text())
	}
	if !eval[bool](page, `window.playground.state.connected`) {
		t.Error("the session's connection closed at the drain's NOTICE")
	}
	page.screenshot("browser-drain-notice.png")

	// A new session is refused at the handshake (HTTP 503): the page says why, retries.
	other := b.open(t, srvURL)
	other.waitFor(func() bool {
		s := other.run(chromedp.Text(chromedp.ID(`status-text`)))
		return strings.Contains(s, "Server shutting down") && strings.Contains(s, "retrying in")
	}, "a new tab to say the server is shutting down")
	if eval[int](other, `window.playground.state.refusals`) < 1 || eval[bool](other, `window.playground.state.session !== null`) {
		t.Errorf("a new tab got in while the server drains: %s", other.state())
	}

	// A dropped connection comes back: to the route, which a draining server lets in.
	proxy.cut()
	page.do(voidOf(chromedp.Poll[bool](`window.playground.state.resumes >= 1 && window.playground.state.phase === 'connected' && window.playground.state.session !== null`)))
	if reqs := proxy.requests(); len(reqs) < 2 || !strings.Contains(reqs[len(reqs)-1], "/ws?route=") {
		t.Errorf("the reconnect does not name the route: %q", reqs)
	}
	page.do(typeLine("echo mark=$MARK"))
	page.waitText("mark=drained-16\n")

	// The second signal: every session ends with 1001.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	page.do(voidOf(chromedp.Poll[bool](`window.playground.state.ended`)), chromedp.WaitVisible(chromedp.ID(`restart`)))
	status := page.run(chromedp.Text(chromedp.ID(`status-text`)))
	if !strings.Contains(status, "the server shut down") || eval[int](page, `window.playground.state.closeCode`) != 1001 {
		t.Errorf("after the shutdown: status %q, state %s", status, page.state())
	}
	if k := eval[string](page, `sessionStorage.getItem('playground.resume') ?? ''`); k != "" {
		t.Errorf("the resume key of a session that ended is kept: %q", k)
	}
	if !strings.Contains(page.text(), "mark=drained-16") {
		t.Errorf("the screen was cleared at the end:\n%s", page.text())
	}
	conns := eval[int](page, `window.playground.state.connections`)
	page.screenshot("browser-drain-ended.png")
	waitStopped(t, logs)
	if eval[string](page, `window.playground.state.phase`) != "ended" || eval[int](page, `window.playground.state.connections`) != conns {
		t.Errorf("the page connected again by itself after the shutdown: %s", page.state())
	}

	// No server now: starting again says so, and retries.
	page.do(chromedp.Click(chromedp.ID(`restart`)))
	for _, tb := range []*tab{page, other} {
		tb.waitFor(func() bool {
			s := tb.run(chromedp.Text(chromedp.ID(`status-text`)))
			return strings.Contains(s, "Cannot reach the server") && strings.Contains(s, "retrying in")
		}, "the page to say it cannot reach the server")
	}
}

// waitStopped waits for the server's last log line.
func waitStopped(t *testing.T, logs chan map[string]any) {
	t.Helper()
	timeout := time.After(2 * time.Minute)
	for {
		select {
		case m, ok := <-logs:
			if !ok {
				t.Fatal("the server's log ended without \"stopped\"")
			}
			if m["message"] == "stopped" {
				return
			}
		case <-timeout:
			t.Fatal("the server did not stop after the second signal")
		}
	}
}

// TestBrowserCapacity: at --max-sessions the server refuses a new session's handshake
// with 503; the page shows "Server full", retries with backoff, and gets in once a
// session ends. With a token: the page carries it in a cookie (the first tab's
// ?token= set it), its init's AuthToken is "" (the token is not ttyd's basic auth),
// and the address bar loses the token.
func TestBrowserCapacity(t *testing.T) {
	exe := chromium(t)
	const token = "cap-s3cret"
	_, withToken, _ := startServer(t, "--max-sessions", "1", "--token", token)
	u, err := url.Parse(withToken) // the URL the server logs carries the token
	if err != nil || u.Query().Get("token") != token {
		t.Fatalf("server URL %q: want ?token=%s", withToken, token)
	}
	srvURL := u.Scheme + "://" + u.Host + "/"
	b := newBrowser(t, exe)
	first := b.open(t, withToken)
	first.waitPrompt()
	if loc := eval[string](first, `location.href`); strings.Contains(loc, token) {
		t.Errorf("the token is still in the address bar: %s", loc)
	}
	var init struct {
		AuthToken *string
	}
	if err := json.Unmarshal([]byte(eval[string](first, `window.__sent[0]`)), &init); err != nil || init.AuthToken == nil || *init.AuthToken != "" {
		t.Errorf("init %q: want AuthToken \"\" (the cookie carries the token)", eval[string](first, `window.__sent[0]`))
	}

	second := b.open(t, srvURL)
	second.waitFor(func() bool {
		s := second.run(chromedp.Text(chromedp.ID(`status-text`)))
		return strings.Contains(s, "Server full") && strings.Contains(s, "retrying in")
	}, `"Server full, retrying" in the second tab`)
	second.screenshot("browser-full.png")
	if eval[bool](second, `window.playground.state.session !== null`) {
		t.Fatalf("the second tab has a session beyond --max-sessions 1: %s", second.state())
	}

	first.do(typeLine("exit"), voidOf(chromedp.Poll[bool](`window.playground.state.ended`)))
	second.waitPrompt()
	second.do(typeLine("echo in=$((1+1))"))
	second.waitText("in=2\n")
	if n := eval[int](second, `window.playground.state.refusals`); n != 0 {
		t.Errorf("refusals %d after getting in, want 0", n)
	}
}
