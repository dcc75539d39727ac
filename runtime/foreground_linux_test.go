package runtime

import (
	"errors"
	"os"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// fillInput writes to the pty master, without waiting, until the pty
// takes no more: the program's input buffer is full. It returns how many
// bytes went in.
func fillInput(t *testing.T, c *Container) int {
	t.Helper()
	rc, err := c.master.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 4096)
	for i := range chunk {
		chunk[i] = 'x'
	}
	total := 0
	var werr error
	err = rc.Write(func(fd uintptr) bool {
		for {
			n, err := unix.Write(int(fd), chunk)
			if n > 0 {
				total += n
			}
			if err != nil {
				if !errors.Is(err, unix.EAGAIN) {
					werr = err
				}
				return true // full: never wait in the poller
			}
			if total > 64<<20 {
				werr = errors.New("the pty took 64 MiB of input: is the program reading it?")
				return true
			}
		}
	})
	if err == nil {
		err = werr
	}
	if err != nil {
		t.Fatal(err)
	}
	return total
}

// TestSignalForeground: a program that never reads its input, whose
// pty's input buffer is full, so that a ^C written as input would wait
// in behind the rest; SignalForeground(SIGINT) reaches it at once.
func TestSignalForeground(t *testing.T) {
	// Non-canonical input: the line discipline takes bytes until its
	// buffer is full (canonical mode would discard a too-long line).
	c := start(t, Spec{Args: sh(`stty -icanon -echo; trap 'echo got INT; exit 7' INT; echo ready; while :; do sleep 1; done`)})
	o := readAll(c)
	o.waitFor(t, "ready")
	n := fillInput(t, c)
	t.Logf("the pty took %d bytes of input before it was full", n)

	if err := c.SignalForeground(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	o.waitFor(t, "got INT")
	st, err := c.Wait()
	if err != nil || st != (ExitStatus{Code: 7}) {
		t.Errorf("got %v, %v; want exit code 7", st, err)
	}
	if err := c.SignalForeground(syscall.SIGINT); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("SignalForeground after the end: %v, want os.ErrProcessDone", err)
	}
}

// TestSignalForegroundGoesToTheJob: the signal goes to the terminal's
// foreground job, not to the shell that started it, as ^C does.
func TestSignalForegroundGoesToTheJob(t *testing.T) {
	c := start(t, Spec{Args: []string{"/bin/sh", "-i"}, Env: []string{"PS1=$ "}})
	o := readAll(c)
	o.waitFor(t, "$ ")
	// The job says when it runs, and so is the terminal's foreground
	// process group (the shell makes it so before it runs the job).
	if _, err := c.Write([]byte("sh -c 'echo job $((6*7)); exec sleep 1000'\n")); err != nil {
		t.Fatal(err)
	}
	o.waitFor(t, "job 42")
	if err := c.SignalForeground(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	// The shell answers again: the job has ended, and the shell is there.
	if _, err := c.Write([]byte("echo shell $((2+3))\n")); err != nil {
		t.Fatal(err)
	}
	o.waitFor(t, "shell 5")
	if err := c.SignalForeground(syscall.SIGTERM); err == nil {
		t.Error("SignalForeground(SIGTERM): no error; the pty sends only what its keys send")
	}
}

// TestSignalForegroundDropsUnreadInput: as a typed ^C does, the signal
// drops the input the program had not read (here a full pty of it), so
// that what the program reads next is what came after the signal.
func TestSignalForegroundDropsUnreadInput(t *testing.T) {
	// The job says it is ready once it is the job (the shell has made it
	// so before it runs it): a ^C just before would reach the shell
	// alone, whose trap runs only after the job has ended.
	c := start(t, Spec{Args: sh(`stty -icanon -echo; trap 'echo got INT' INT; sh -c 'echo ready; exec sleep 1000'; echo "read $(head -c 5)"`)})
	o := readAll(c)
	o.waitFor(t, "ready")
	fillInput(t, c)
	if err := c.SignalForeground(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	o.waitFor(t, "got INT")
	if _, err := c.Write([]byte("after")); err != nil {
		t.Fatal(err)
	}
	o.waitFor(t, "read after")
}
