package server

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/guntainer/playground/internal/testenv"
	"github.com/guntainer/playground/runtime"
)

// bashStart starts a real container running bash with its line editor
// (readline), cold, for every session: the --warm 0 case. Before bash
// starts, the container takes the half second that a login shell's
// profile scripts may take on a busy machine.
func bashStart(t testing.TB) StartFunc {
	t.Helper()
	return bashStartArgs(t, "/bin/sh", "-c", "sleep 0.5; exec /bin/bash --norc --noprofile -i")
}

// bashStartArgs starts a real container running args, cold, for every
// session.
func bashStartArgs(t testing.TB, args ...string) StartFunc {
	t.Helper()
	spec := runtime.Spec{
		Args:     args,
		Env:      []string{"PS1=$ ", "TERM=xterm-256color"},
		StateDir: testStateDir(t),
		// As playground serve starts a session: the program is PID 1.
		ProgramIsInit: true,
	}
	if err := runtime.Check(spec); err != nil {
		testenv.Skipf(t, "cannot start bash in a container here: %v", err)
	}
	return ContainerStart(spec)
}

// TestTypeaheadEchoedOnce is issue 10's defect as a ttyd client meets it
// with --warm 0: a command typed at once after init, before the shell
// has printed its prompt, was echoed twice, once by the line discipline
// (the pty is in cooked echo mode until bash's readline sets it up) and
// once by readline when it read the line. The server holds a new
// session's input until the program has left cooked echo mode, so the
// line shows once.
func TestTypeaheadEchoedOnce(t *testing.T) {
	s := newTestServer(t, Config{}, withStart(bashStart(t)))
	typedOnce(t, s, 3)
}

// TestTypeaheadEchoedOnceAfterAPipe: before its line editor starts, a
// login bash reads its profile's command substitutions ($(id -u) in
// Debian's /etc/profile) from pipes, blocked in read(2) with the pty still
// cooked. A hold that took any read(2) for a shell at a cooked prompt let
// the typed line go then, and it showed twice (seen in about one session
// in three with the Debian environment). Here the substitution takes a
// while, so that every session meets it.
func TestTypeaheadEchoedOnceAfterAPipe(t *testing.T) {
	s := newTestServer(t, Config{}, withStart(bashStartArgs(t, "/bin/bash", "-c", "x=$(sleep 0.3; echo profile); exec /bin/bash --norc --noprofile -i")))
	typedOnce(t, s, 3)
}

// TestTypeaheadWithoutALineEditor: a shell that stays in cooked echo mode
// (dash, no line editor) gets what was typed before its prompt, shown
// once, by the kernel's echo.
//
// The fallbacks (the program quiet for typeaheadQuiet, typeaheadHold since
// it started) are taken out of reach, so the input can only go through
// because the server saw the shell blocked reading its cooked terminal.
func TestTypeaheadWithoutALineEditor(t *testing.T) {
	defer func(q, h time.Duration) { typeaheadQuiet, typeaheadHold = q, h }(typeaheadQuiet, typeaheadHold)
	typeaheadQuiet, typeaheadHold = time.Hour, time.Hour
	s := newTestServer(t, Config{}, withStart(testStart(t)))
	c := s.open(t, "", nil)
	c.input("echo typed-$((6*7))\r")
	out := c.waitOutput("typed-42\r\n")
	if n := strings.Count(out, "echo typed-$((6*7))"); n != 1 {
		t.Fatalf("the typed line shows %d times, want once; output:\n%q", n, out)
	}
}

// TestASignalKeyLetsTheTypeaheadGo: a program that hangs before its
// terminal is set up (a profile's command that never ends) holds the
// typeahead; a signal key must reach it at once, and the key is whatever
// stty made it by then: a ^X after `stty intr ^X` was held with the rest
// (only a 0x03 let the hold go), so the program was interrupted only when
// typeaheadHold ran out. The fallbacks are out of reach here, so the hung
// command ends, and the session with it, within the wait only if the key
// let the hold go. The hung command is the profile's child, as a session's
// commands are (the profile is PID 1, Spec.ProgramIsInit, and a signal it
// has no handler for does not reach it), and it says it hangs only once it
// is the process the key must reach.
func TestASignalKeyLetsTheTypeaheadGo(t *testing.T) {
	defer func(q, h time.Duration) { typeaheadQuiet, typeaheadHold = q, h }(typeaheadQuiet, typeaheadHold)
	typeaheadQuiet, typeaheadHold = time.Hour, time.Hour
	for _, tc := range []struct{ name, stty, key string }{
		{"^C", "", "\x03"},
		{"^X after stty intr ^X", "stty intr ^X; ", "\x18"},
		{"^\\", "", "\x1c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, Config{}, withStart(bashStartArgs(t, "/bin/sh", "-c", tc.stty+"sh -c 'echo hung-$((6*7)); exec sleep 600'; echo past")))
			c := s.open(t, "", nil)
			c.input("echo typed\r")
			c.waitOutput("hung-42")
			c.input(tc.key)
			// dash ends with 130 after its child's SIGINT, or goes on to its end.
			if code, text, _ := c.waitClose(); code != websocket.CloseNormalClosure {
				t.Errorf("the session ended with %d %q, want its program's end", code, text)
			}
		})
	}
}

// TestTypeaheadGoesWhenThePromptShows: a shell prints its prompt just
// before it sets up its terminal (bash's readline) or reads it (dash), and
// the hold looks again then, not at its next poll: that poll's wait (up to
// typeaheadPoll, 2 ms) was on the way to the first answer of every session
// whose client typed before the prompt, a cold start's ready measurement
// among them (about 1.3 ms of its p50 here). The poll and the fallbacks
// are taken out of reach, so the input can only go through because the
// shell's output made the hold look.
func TestTypeaheadGoesWhenThePromptShows(t *testing.T) {
	defer func(q, h, p time.Duration) { typeaheadQuiet, typeaheadHold, typeaheadPoll = q, h, p }(typeaheadQuiet, typeaheadHold, typeaheadPoll)
	typeaheadQuiet, typeaheadHold, typeaheadPoll = time.Hour, time.Hour, time.Hour
	for _, tc := range []struct {
		name  string
		start func(testing.TB) StartFunc
	}{
		{"dash, no line editor", func(t testing.TB) StartFunc { return testStart(t) }},
		{"bash with readline", func(t testing.TB) StartFunc {
			return bashStartArgs(t, "/bin/bash", "--norc", "--noprofile", "-i")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, Config{}, withStart(tc.start(t)))
			typedOnce(t, s, 3)
		})
	}
}

// typedOnce opens n sessions on s, types a command into each at once (the
// container is not even started then), and wants the line shown once.
func typedOnce(t *testing.T, s *testServer, n int) {
	t.Helper()
	for i := range n {
		c := s.open(t, "", nil)
		c.input("echo typed-$((6*7))\r")
		out := c.waitOutput("typed-42\r\n")
		if k := strings.Count(out, "echo typed-$((6*7))"); k != 1 {
			t.Fatalf("session %d: the typed line shows %d times, want once; output:\n%q", i, k, out)
		}
	}
}

// TestTypeaheadPrintedBeforeTheHold: the prompt can come before the hold
// begins (the client types when it sees it, or the input writer is slow
// to start), and the program reach its read(2) only later. A hold that
// learnt of output only from prints made after it began then had nothing
// to look again for, and, with the poll out of reach as here, held the
// line for good: one session in three of
// TestTypeaheadGoesWhenThePromptShows, run as an ordinary user in CI, got
// only its prompt. A print before the hold counts as one during it.
func TestTypeaheadPrintedBeforeTheHold(t *testing.T) {
	defer func(q, h, p time.Duration) { typeaheadQuiet, typeaheadHold, typeaheadPoll = q, h, p }(typeaheadQuiet, typeaheadHold, typeaheadPoll)
	typeaheadQuiet, typeaheadHold, typeaheadPoll = time.Hour, time.Hour, time.Hour
	s := newTestServer(t, Config{}, withStart(bashStartArgs(t, "/bin/sh", "-c", `printf 'ready> '; sleep 0.3; read x; echo "typed-$x"; sleep 10`)))
	c := s.open(t, "", nil)
	c.waitOutput("ready> ")
	c.input("42\r")
	out := c.waitOutput("typed-42\r\n")
	if n := strings.Count(out, "42"); n != 2 {
		t.Fatalf("the typed line and its answer show 42 %d times, want twice; output:\n%q", n, out)
	}
}

// lookCounter is a terminal that stays in cooked echo mode and never
// reads it, as a program does while it starts, and counts the hold's looks
// at it.
type lookCounter struct {
	Terminal
	looks atomic.Int64
}

func (l *lookCounter) EchoesInput() (bool, error) {
	l.looks.Add(1)
	return true, nil
}

func (l *lookCounter) ReadsCookedInput() (bool, error) { return false, nil }

// TestTypeaheadHoldBacksOff: while a new session's program starts, silent
// and in cooked mode, the hold's looks at its terminal (an ioctl, and a
// read of /proc and a stat for a container) back off rather than come every
// typeaheadPoll. In a burst of starts a program waits long for the CPU
// before its prompt, and looks every 2 ms cost each session's start about
// half a millisecond of the server's CPU (perf, a burst of 300 sessions,
// 2026-12-04): an eighth of all the server spent on it.
func TestTypeaheadHoldBacksOff(t *testing.T) {
	defer func(q, h time.Duration) { typeaheadQuiet, typeaheadHold = q, h }(typeaheadQuiet, typeaheadHold)
	typeaheadQuiet, typeaheadHold = time.Hour, 600*time.Millisecond
	var term atomic.Pointer[lookCounter]
	start := plainStart(t)
	s := newTestServer(t, Config{}, withStart(func(ctx context.Context, req StartRequest) (Terminal, error) {
		tm, err := start(ctx, req)
		if err != nil {
			return nil, err
		}
		l := &lookCounter{Terminal: tm}
		term.Store(l)
		return l, nil
	}))
	c := s.open(t, "", nil)
	c.waitOutput("$ ")
	t0 := time.Now()
	c.input("echo typed-$((6*7))\r")
	c.waitOutput("typed-42")
	held := time.Since(t0)
	looks := term.Load().looks.Load()
	// Every typeaheadPoll (2 ms) for 600 ms made some 300 looks; backing
	// off to typeaheadPollMax, a few dozen at most.
	if limit := int64(held/typeaheadPollMax) + 12; looks > limit {
		t.Errorf("the hold looked at the terminal %d times in %v, want at most %d", looks, held.Round(time.Millisecond), limit)
	}
	if held < typeaheadHold/2 {
		t.Errorf("the input went through after %v, before the hold's end (%v)", held, typeaheadHold)
	}
}
