package ptyproc

import (
	"io"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestStartReadResizeClose(t *testing.T) {
	term, err := Start(exec.Command("/bin/sh", "-c", "stty size; exit 3"), 91, 17)
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(term) // EIO once the shell has gone
		done <- string(b)
	}()
	select {
	case out := <-done:
		if !strings.Contains(out, "17 91") {
			t.Errorf("got %q, want the pty's size 17 91", out)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no EOF from the pty")
	}
	if st, err := term.Wait(); err != nil || st.Code != 3 {
		t.Errorf("Wait: %v %v, want exit code 3", st, err)
	}
}

func TestCloseKillsAndUnblocks(t *testing.T) {
	term, err := Start(exec.Command("/bin/sh", "-c", "sleep 100"), 80, 24)
	if err != nil {
		t.Fatal(err)
	}
	read := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(term)
		read <- err
	}()
	if err := term.Resize(100, 30); err != nil {
		t.Fatal(err)
	}
	if err := term.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-read:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock Read")
	}
	if st, _ := term.Wait(); st.Signal != syscall.SIGKILL {
		t.Errorf("Wait: %v, want signal KILL", st)
	}
}
