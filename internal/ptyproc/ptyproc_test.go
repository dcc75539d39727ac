//go:build unix

package ptyproc

import (
	"fmt"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/procfs"
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

// TestCloseKillsTheWholeSession: a job the shell stopped or put in the
// background has a process group of its own, neither the shell's nor the
// terminal's foreground one. The kernel's SIGHUP for an orphaned stopped
// group does nothing to a program that ignores it (as every program run
// under nohup does), and such a job outlived its terminal: a server test
// run under nohup left `sleep 1000` behind it, stopped by ^Z. Close ends
// every process of the terminal's session.
func TestCloseKillsTheWholeSession(t *testing.T) {
	term, err := Start(exec.Command("/bin/sh", "-c", `set -m; (trap '' HUP; exec sleep 1000) & echo "job $!"; (trap '' HUP; exec sleep 1000) & kill -STOP $!; echo "job $!"; wait`), 80, 24)
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	buf := make([]byte, 4096)
	var out string
	deadline := time.Now().Add(10 * time.Second)
	for len(pids) < 2 && time.Now().Before(deadline) {
		n, err := term.Read(buf)
		if err != nil {
			t.Fatalf("read: %v (output %q)", err, out)
		}
		out += string(buf[:n])
		pids = pids[:0]
		for _, f := range strings.Split(out, "\n") {
			var pid int
			if _, err := fmt.Sscanf(strings.TrimSpace(f), "job %d", &pid); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	if len(pids) < 2 {
		t.Fatalf("no two jobs: %q", out)
	}
	for _, pid := range pids {
		if pg, _ := syscall.Getpgid(pid); pg == term.Pid() {
			t.Fatalf("job %d is in the shell's process group: the test proves nothing", pid)
		}
	}
	term.Close()
	term.Wait()
	for _, pid := range pids {
		for !gone(pid) {
			if time.Now().After(deadline.Add(10 * time.Second)) {
				syscall.Kill(pid, syscall.SIGKILL)
				t.Fatalf("job %d outlived Close", pid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// gone: no process pid, or only its zombie (reparented, not yet reaped).
func gone(pid int) bool {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return true
	}
	st, err := p.Stat()
	return err != nil || st.State == "Z"
}
