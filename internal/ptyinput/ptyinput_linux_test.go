package ptyinput

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// openPTY returns a pty's master, non-blocking as the servers' are, and
// its terminal side, whose modes the test sets.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	m, s, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	// pty.Open made both blocking (it used Fd); a master reopened from
	// its fd as non-blocking is in the poller, as a server's is.
	fd, err := unix.Dup(int(m.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	_ = m.Close()
	if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	master = os.NewFile(uintptr(fd), "ptmx")
	t.Cleanup(func() { _ = master.Close(); _ = s.Close() })
	return master, s
}

// readTTY reads what the terminal side has to read, waiting up to a
// second for the first byte.
func readTTY(t *testing.T, tty *os.File) string {
	t.Helper()
	if err := tty.SetReadDeadline(time.Now().Add(time.Second)); err != nil {
		// A blocking file has no deadlines: poll instead.
		fds := []unix.PollFd{{Fd: int32(tty.Fd()), Events: unix.POLLIN}}
		if n, err := unix.Poll(fds, 1000); err != nil || n == 0 {
			return ""
		}
	}
	b := make([]byte, 1<<16)
	n, _ := tty.Read(b)
	return string(b[:max(n, 0)])
}

func setLflag(t *testing.T, tty *os.File, set, unset uint32) {
	t.Helper()
	tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	tio.Lflag = tio.Lflag&^unset | set
	if err := unix.IoctlSetTermios(int(tty.Fd()), unix.TCSETS, tio); err != nil {
		t.Fatal(err)
	}
}

// TestInterruptEndsTheWriteAndDropsTheInput: a Write that waits because
// nobody reads the terminal ends with ErrFlushed at an Interrupt, and what
// the pty held of it is gone: the next input is the first the terminal
// reads, as after a typed ^C.
func TestInterruptEndsTheWriteAndDropsTheInput(t *testing.T) {
	master, tty := openPTY(t)
	setLflag(t, tty, 0, unix.ECHO) // the test reads no echo back
	w := New(master)
	paste := bytes.Repeat([]byte("before\n"), 1<<20/7) // far more than a pty holds
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := w.Write(paste)
		done <- result{n, err}
	}()
	// The Write has begun once it holds the lock.
	for w.mu.TryLock() {
		w.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	if err := w.Interrupt(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	var r result
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		_ = master.Close() // the Write waits on: end it, and the test
		t.Fatal("Write still waits 10 s after the interrupt")
	}
	if !errors.Is(r.err, ErrFlushed) || r.n >= len(paste) {
		t.Fatalf("Write: %d of %d bytes, %v; want fewer, with ErrFlushed", r.n, len(paste), r.err)
	}
	t.Logf("the pty took %d bytes of the paste before it was full", r.n)
	if _, err := w.Write([]byte("after\n")); err != nil {
		t.Fatalf("Write after the interrupt: %v", err)
	}
	if got := readTTY(t, tty); got != "after\n" {
		t.Errorf("the terminal read %.40q (%d bytes), want only the input after the interrupt", got, len(got))
	}
}

// TestInterruptKeepsInputUnderNOFLSH: a program that set NOFLSH keeps its
// unread input at a signal key, and so at an Interrupt.
func TestInterruptKeepsInputUnderNOFLSH(t *testing.T) {
	master, tty := openPTY(t)
	setLflag(t, tty, unix.NOFLSH, unix.ECHO)
	w := New(master)
	if _, err := w.Write([]byte("before\n")); err != nil {
		t.Fatal(err)
	}
	if err := w.Interrupt(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if got := readTTY(t, tty); got != "before\n" {
		t.Errorf("the terminal read %q, want the input from before the interrupt", got)
	}
}

// TestInterruptSendsOnlyWhatKeysSend: a terminal's keys send SIGINT,
// SIGQUIT and SIGTSTP; anything else is refused before any input goes.
func TestInterruptSendsOnlyWhatKeysSend(t *testing.T) {
	master, tty := openPTY(t)
	setLflag(t, tty, 0, unix.ECHO)
	w := New(master)
	if _, err := w.Write([]byte("kept\n")); err != nil {
		t.Fatal(err)
	}
	if err := w.Interrupt(syscall.SIGTERM); err == nil {
		t.Error("Interrupt(SIGTERM): no error")
	}
	if got := readTTY(t, tty); got != "kept\n" {
		t.Errorf("the terminal read %q after a refused Interrupt, want the input kept", got)
	}
}

// TestInterruptTakesNoControllingTerminal: a server that leads a session
// of its own and has no terminal (a systemd service) must not get the
// container's terminal as its own when it opens it to flush it: a hangup
// there would then signal the server. The check runs in a child of the
// test made so (setsid), which reports its terminal (/proc/self/stat's
// tty_nr) after an Interrupt.
func TestInterruptTakesNoControllingTerminal(t *testing.T) {
	if os.Getenv("PTYINPUT_SESSION_LEADER") == "1" {
		master, _ := openPTY(t)
		if err := New(master).Interrupt(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		p, err := procfs.Self()
		if err != nil {
			t.Fatal(err)
		}
		st, err := p.Stat()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("tty_nr=%d\n", st.TTY)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestInterruptTakesNoControllingTerminal$", "-test.count=1")
	cmd.Env = append(os.Environ(), "PTYINPUT_SESSION_LEADER=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if !bytes.Contains(out, []byte("tty_nr=0\n")) {
		t.Errorf("a session leader without a terminal got one from Interrupt: %s", out)
	}
}

// TestSignalKey: a byte is a signal key only as the program's terminal
// modes say: ^C, ^\ and ^Z by default, the keys stty sets instead, and
// none where the program reads its keys raw (ISIG off), as an editor does.
func TestSignalKey(t *testing.T) {
	master, tty := openPTY(t)
	w := New(master)
	check := func(what string, b byte, want syscall.Signal, wantOK bool) {
		t.Helper()
		sig, ok, err := w.SignalKey(b)
		if err != nil {
			t.Fatal(err)
		}
		if ok != wantOK || sig != want {
			t.Errorf("%s: SignalKey(%#x) = %v, %v; want %v, %v", what, b, sig, ok, want, wantOK)
		}
	}
	check("default ^C", 0x03, syscall.SIGINT, true)
	check(`default ^\`, 0x1c, syscall.SIGQUIT, true)
	check("default ^Z", 0x1a, syscall.SIGTSTP, true)
	check("a letter", 'x', 0, false)

	tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	tio.Cc[unix.VINTR] = 0x18 // stty intr ^X
	tio.Cc[unix.VSUSP] = 0    // stty susp undef
	if err := unix.IoctlSetTermios(int(tty.Fd()), unix.TCSETS, tio); err != nil {
		t.Fatal(err)
	}
	check("^C after stty intr ^X", 0x03, 0, false)
	check("^X after stty intr ^X", 0x18, syscall.SIGINT, true)
	check("^Z after stty susp undef", 0x1a, 0, false)
	check("NUL after stty susp undef", 0, 0, false)

	setLflag(t, tty, 0, unix.ISIG) // stty -isig, as in raw mode
	check("^X with ISIG off", 0x18, 0, false)
	check(`^\ with ISIG off`, 0x1c, 0, false)
}
