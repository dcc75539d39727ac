package runtime

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestEchoesInput: the master's view of the slave's termios follows what
// the program sets: cooked echo until it turns it off, as a line editor
// does.
func TestEchoesInput(t *testing.T) {
	c := start(t, Spec{Args: sh(`echo state-$((1+1)); read x; stty -icanon -echo; echo state-$((2+1)); read y`)})
	o := readAll(c)
	o.waitFor(t, "state-2")
	if on, err := c.EchoesInput(); err != nil || !on {
		t.Fatalf("a fresh pty: EchoesInput %v, %v; want true", on, err)
	}
	if _, err := c.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	o.waitFor(t, "state-3")
	if on, err := c.EchoesInput(); err != nil || on {
		t.Fatalf("after stty -icanon -echo: EchoesInput %v, %v; want false", on, err)
	}
}

// TestReadsCookedInput: true while the foreground program blocks reading
// a cooked terminal (dash at its prompt, read), false while it reads a
// terminal its line editor set up, or does not read at all.
func TestReadsCookedInput(t *testing.T) {
	c := start(t, Spec{Args: sh(`echo state-$((1+1)); read x; stty -icanon -echo; echo state-$((2+1)); read y; stty sane; echo state-$((3+1)); read w; mkfifo /tmp/f; (exec sleep 100 >/tmp/f) & echo state-$((4+1)); read z </tmp/f`)})
	o := readAll(c)
	o.waitFor(t, "state-2")
	waitReads := func(want bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			got, err := c.ReadsCookedInput()
			if err != nil {
				t.Fatal(err)
			}
			if got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("ReadsCookedInput stayed %v, want %v; output %q", got, want, o.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitReads(true) // read x, cooked
	if _, err := c.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	o.waitFor(t, "state-3")
	for range 5 { // read y, raw: never true
		if got, err := c.ReadsCookedInput(); err != nil || got {
			t.Fatalf("reading with -icanon -echo: ReadsCookedInput %v, %v; want false", got, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := c.Write([]byte("y\n")); err != nil {
		t.Fatal(err)
	}
	o.waitFor(t, "state-4")
	waitReads(true) // read w, cooked again
	if _, err := c.Write([]byte("w\n")); err != nil {
		t.Fatal(err)
	}
	o.waitFor(t, "state-5")
	// read z of a fifo, the terminal cooked: blocked in read(2), but not
	// of the terminal (as a process waiting on a pipe before its exec).
	deadline := time.Now().Add(10 * time.Second)
	for !leaderInRead(t, c) {
		if time.Now().After(deadline) {
			t.Fatalf("the shell never blocked reading the fifo; output %q", o.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got, err := c.ReadsCookedInput(); err != nil || got {
		t.Fatalf("reading a fifo: ReadsCookedInput %v, %v; want false", got, err)
	}
}

// leaderInRead: the terminal's foreground process group leader is blocked
// in read(2), of whatever.
func leaderInRead(t *testing.T, c *Container) bool {
	t.Helper()
	rc, err := c.master.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var pgid int
	var ierr error
	if err := rc.Control(func(fd uintptr) { pgid, ierr = unix.IoctlGetInt(int(fd), unix.TIOCGPGRP) }); err != nil || ierr != nil {
		t.Fatal(err, ierr)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", pgid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	return len(f) > 0 && f[0] == strconv.Itoa(unix.SYS_READ)
}
