package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"

	"github.com/guntainer/playground/internal/testenv"
)

// TestBrowser drives Debian's chromium against the real server: the page
// loads, a command typed into xterm.js runs in a container, its answer is
// read back from the terminal buffer, a screenshot is saved, a smaller
// window resizes the pty, and the end of the session is shown.
func TestBrowser(t *testing.T) {
	exe := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := lookPath(name); err == nil {
			exe = p
			break
		}
	}
	if exe == "" {
		testenv.Skipf(t, "no chromium installed (apt-get install chromium)")
	}
	_, url, _ := startServer(t)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1000, 600),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
	)
	if os.Getuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // chromium refuses its sandbox as root
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()

	// The first Run starts the browser: no timeout on that context (it
	// would end the browser), a watchdog on the ones derived from it.
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("browser: open %s: %v", url, err)
	}
	tctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()

	const textarea = chromedp.CSS(`.xterm-helper-textarea`)
	waitText := func(want string) (string, error) {
		for {
			text, err := chromedp.Run(tctx, chromedp.Evaluate[string](`window.playground.text()`))
			if err != nil || strings.Contains(text, want) {
				return text, err
			}
			select {
			case <-tctx.Done():
				return text, tctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	err := chromedp.Do(tctx,
		voidOf(chromedp.Poll[bool](`!!(window.playground && window.playground.state.connected)`)),
		chromedp.WaitVisible(textarea),
		chromedp.Focus(textarea),
	)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	// Type at the prompt, not ahead of it: typeahead is echoed twice, once
	// by the pty before bash reads it and once by bash's line editor.
	if text, err := waitText("root@playground:~#"); err != nil {
		t.Fatalf("no prompt: %v; terminal text:\n%s", err, text)
	}
	if err := chromedp.Do(tctx, typeLine("echo answer=$((6*7))")); err != nil {
		t.Fatalf("browser: %v", err)
	}
	text, err := waitText("answer=42\n")
	if err != nil {
		t.Fatalf("no answer in the terminal: %v; terminal text:\n%s", err, text)
	}
	// Each key once: one command line, one answer, then one fresh prompt.
	if strings.Count(text, "echo answer=$((6*7))") != 1 || strings.Count(text, "root@playground:~#") != 2 {
		t.Errorf("the terminal does not show the line typed once and a new prompt:\n%s", text)
	}
	shot, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	saveArtifact(t, "browser-session.png", shot)

	// The page fits the terminal to the window and resizes the pty.
	size := func() string {
		t.Helper()
		v, err := chromedp.Run(tctx, chromedp.Evaluate[string](`window.playground.term.rows + " " + window.playground.term.cols`))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	before := size()
	if err := chromedp.Do(tctx, chromedp.EmulateViewport(640, 360)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for size() == before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	after := size()
	if after == before {
		t.Fatalf("terminal still %s after the window shrank", before)
	}
	if err := chromedp.Do(tctx, typeLine("echo size=$(stty size)")); err != nil {
		t.Fatal(err)
	}
	if text, err := waitText("size=" + after + "\n"); err != nil {
		t.Fatalf("pty size is not the terminal's %s: %v; terminal text:\n%s", after, err, text)
	}

	err = chromedp.Do(tctx,
		typeLine("exit 5"),
		voidOf(chromedp.Poll[bool](`window.playground.state.ended`)),
	)
	if err != nil {
		t.Fatalf("browser, ending the session: %v", err)
	}
	code, err := chromedp.Run(tctx, chromedp.Evaluate[int](`window.playground.state.exit.code`))
	if err != nil {
		t.Fatal(err)
	}
	status, err := chromedp.Run(tctx, chromedp.Text(chromedp.ID(`status-text`)))
	if err != nil {
		t.Fatal(err)
	}
	if shot, err := chromedp.Run(tctx, chromedp.FullScreenshot(100)); err == nil {
		saveArtifact(t, "browser-ended.png", shot)
	}
	if code != 5 || !strings.Contains(status, "exit code 5") {
		t.Errorf("after exit 5: exit code %v, status %q", code, status)
	}
}

// typeLine types a line into the focused terminal: the text as the browser
// inserts typed text into xterm.js's textarea, then a real Enter key press.
// (chromedp's SendKeys sends keydown and char for each key, which xterm.js
// takes as two key presses.) Its text is checked to appear exactly once.
func typeLine(line string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		if _, err := cdp.Call(ctx, t, input.InsertText, input.InsertTextParams{Text: line}); err != nil {
			return chromedp.Void{}, err
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

// voidOf drops an action's value, to run it among others with Do.
func voidOf[T any](a chromedp.Action[T]) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := a(ctx, t)
		return chromedp.Void{}, err
	}
}

// saveArtifact keeps a file for people to look at: in
// $PLAYGROUND_TEST_ARTIFACTS, or a directory of this user's in the
// system's temp dir.
func saveArtifact(t *testing.T, name string, b []byte) {
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
