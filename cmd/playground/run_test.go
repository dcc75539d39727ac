//go:build unix

package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/guntainer/playground/internal/testenv"
)

// TestRunWithoutATerminal: with standard input not a terminal, run gives
// the program plain pipes: no echo of the input, end of file passed on,
// stdout and stderr apart, no terminal, and the program's exit status as
// a shell reports it.
func TestRunWithoutATerminal(t *testing.T) {
	const devNull = "\x00/dev/null"
	tests := []struct {
		name       string
		args       []string
		stdin      string // devNull: < /dev/null
		wantOut    string
		wantErr    string
		wantCode   int
		errIsExact bool
	}{
		{"pipe in", []string{"run", "--", "wc", "-c"}, "hello\n", "6\n", "", 0, true},
		{"cat of /dev/null", []string{"run", "--", "cat"}, devNull, "", "", 0, true},
		{"shell on /dev/null", []string{"run"}, devNull, "", "", 0, false},
		{"shell reading a script", []string{"run"}, "echo $((6*7))\nexit 5\n", "42\n", "", 5, false},
		{"stdout and stderr apart", []string{"run", "--", "sh", "-c", "echo out; echo err >&2"}, devNull, "out\n", "err\n", 0, true},
		{"no terminal", []string{"run", "--", "tty"}, devNull, "not a tty\n", "", 1, true},
		{"exit 0", []string{"run", "--", "true"}, devNull, "", "", 0, true},
		{"exit 3", []string{"run", "--", "sh", "-c", "exit 3"}, devNull, "", "", 3, true},
		{"not found", []string{"run", "--", "no-such-program"}, devNull, "", "playground: exec no-such-program: executable file not found in $PATH\n", 127, true},
		{"not executable", []string{"run", "--", "/etc/passwd"}, devNull, "", "playground: exec /etc/passwd: permission denied\n", 126, true},
		{"ended by a signal", []string{"run", "--", "sh", "-c", "kill -USR1 $$"}, devNull, "", "", 128 + int(syscall.SIGUSR1), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := playground(t, tt.args...)
			if tt.stdin == devNull {
				f, err := os.Open(os.DevNull)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				cmd.Stdin = f
			} else {
				cmd.Stdin = strings.NewReader(tt.stdin) // a pipe
			}
			r := runCommand(t, cmd)
			if r.code != tt.wantCode {
				t.Errorf("exit code %d, want %d; stderr:\n%s", r.code, tt.wantCode, r.stderr)
			}
			if r.stdout != tt.wantOut {
				t.Errorf("stdout: -want %q +got %q", tt.wantOut, r.stdout)
			}
			if tt.errIsExact && r.stderr != tt.wantErr {
				t.Errorf("stderr: -want %q +got %q", tt.wantErr, r.stderr)
			}
			noneLeft(t, cmd)
		})
	}
}

// TestRunOutputToAFile: a file as stdout is the program's own stdout.
func TestRunOutputToAFile(t *testing.T) {
	out, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := playground(t, "run", "--", "sh", "-c", "echo to the file; test -t 1 || echo not a terminal")
	cmd.Stdout = out
	if r := runCommand(t, cmd); r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if b, _ := os.ReadFile(out.Name()); string(b) != "to the file\nnot a terminal\n" {
		t.Errorf("file: got %q", b)
	}
}

// TestRunPipeInTerminalOut is the defect as a user met it: `echo hello |
// playground run -- wc -c` in a terminal printed "hello" then 6. With input
// from a pipe the program gets no terminal, so nothing echoes the input;
// the output still reaches the terminal (through a pipe of run's), with
// stdout and stderr in order.
func TestRunPipeInTerminalOut(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--", "wc", "-c"}, "6\r\n"},
		{[]string{"run", "--", "sh", "-c", "cat >/dev/null; echo one; echo two >&2; echo three; tty"}, "one\r\ntwo\r\nthree\r\nnot a tty\r\n"},
	} {
		master, slave, err := pty.Open()
		if err != nil {
			t.Fatal(err)
		}
		cmd := playground(t, tt.args...)
		cmd.Stdin = strings.NewReader("hello\n")
		cmd.Stdout, cmd.Stderr = slave, slave
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		_ = slave.Close() // the child has it
		out := readUntilEOF(t, master)
		_ = master.Close()
		_ = cmd.Wait()
		if out != tt.want {
			t.Errorf("%v: terminal shows -want %q +got %q", tt.args, tt.want, out)
		}
	}
}

func TestRunPipes(t *testing.T) {
	cmd := playground(t, "run", "--", "sh", "-c", "cat; exit 4")
	cmd.Stdin = strings.NewReader("from stdin\n")
	out, err := cmd.Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 4 {
		t.Fatalf("got %v, want exit code 4", err)
	}
	if string(out) != "from stdin\n" {
		t.Errorf("got %q, want stdin copied through, once", out)
	}
}

// sleeper is a program that says it runs and then sleeps, with a number of
// its own to find it by in the process table.
func sleeper(pre string) (args []string, marker string) {
	n := fmt.Sprint(1000000 + rand.IntN(8000000))
	return []string{"sh", "-c", pre + "echo started; exec sleep " + n}, n
}

// startRun starts `playground run --stop-timeout ... -- args` on pipes and
// returns once the program said it started, with its stderr.
func startRun(t *testing.T, timeout string, args ...string) (*exec.Cmd, *strings.Builder, chan error) {
	t.Helper()
	cmd := playground(t, append([]string{"run", "--stop-timeout", timeout, "--"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if line != "started\n" {
		t.Fatalf("program did not start: %q, %v; stderr:\n%s", line, err, stderr.String())
	}
	waited := make(chan error, 1)
	go func() { _, _ = io.Copy(io.Discard, stdout); waited <- cmd.Wait() }()
	return cmd, &stderr, waited
}

func exitOf(t *testing.T, waited chan error, what string) int {
	t.Helper()
	select {
	case err := <-waited:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(60 * time.Second):
		t.Fatalf("playground run did not end after %s", what)
		return -1
	}
}

// TestRunSignals: SIGINT, SIGTERM and SIGHUP sent to run reach the program
// (a non-interactive sleep dies of them, and run exits 128+N); a program
// that ignores them is killed with its container at the stop timeout.
// Either way nothing of the container is left.
func TestRunSignals(t *testing.T) {
	tests := []struct {
		name     string
		pre      string
		sig      syscall.Signal
		wantCode int
		wantErr  string
	}{
		{"SIGTERM", "", syscall.SIGTERM, 128 + 15, ""},
		{"SIGINT", "", syscall.SIGINT, 128 + 2, ""},
		{"SIGHUP", "", syscall.SIGHUP, 128 + 1, ""},
		{"SIGTERM ignored", `trap "" TERM; `, syscall.SIGTERM, 128 + 9, "playground: the program did not end within 1s of SIGTERM; ending its container\n"},
		{"SIGTERM handled", `trap "echo bye >&2; exit 7" TERM; echo started; while :; do sleep 0.1; done; `, syscall.SIGTERM, 7, "bye\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args, marker := sleeper(tt.pre)
			cmd, stderr, waited := startRun(t, "1s", args...)
			if err := cmd.Process.Signal(tt.sig); err != nil {
				t.Fatal(err)
			}
			if code := exitOf(t, waited, tt.name); code != tt.wantCode {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tt.wantCode, stderr.String())
			}
			if stderr.String() != tt.wantErr {
				t.Errorf("stderr: -want %q +got %q", tt.wantErr, stderr.String())
			}
			gone(t, marker)
			noneLeft(t, cmd)
		})
	}
}

// TestRunKilled: when run itself is killed (SIGKILL: nothing to catch),
// its container ends with it.
func TestRunKilled(t *testing.T) {
	args, marker := sleeper("")
	cmd, _, waited := startRun(t, "10s", args...)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if code := exitOf(t, waited, "SIGKILL"); code != -1 {
		t.Errorf("exit code %d, want -1 (killed)", code)
	}
	gone(t, marker)
}

// TestRunUnderTimeout: `timeout 2 playground run -- sleep N` ends when
// timeout says, with timeout's 124, and leaves nothing running.
func TestRunUnderTimeout(t *testing.T) {
	timeout := testenv.NeedCommand(t, "timeout")
	n := fmt.Sprint(1000000 + rand.IntN(8000000))
	cmd := playground(t, "run", "--", "sleep", n)
	cmd.Args = append([]string{timeout, "2", cmd.Path}, cmd.Args[1:]...)
	cmd.Path = timeout
	r := runCommand(t, cmd)
	if r.code != 124 || r.stdout != "" || r.stderr != "" {
		t.Errorf("got exit %d, stdout %q, stderr %q; want 124 and nothing else", r.code, r.stdout, r.stderr)
	}
	gone(t, n)
	noneLeft(t, cmd)
}

// gone waits until no process has marker as an argument.
func gone(t *testing.T, marker string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		left := processesWith(marker)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes left running: %v", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func processesWith(arg string) []string {
	es, _ := os.ReadDir("/proc")
	var found []string
	for _, e := range es {
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		for _, a := range strings.Split(string(b), "\x00") {
			if a == arg {
				found = append(found, e.Name()+" "+strings.ReplaceAll(string(b), "\x00", " "))
			}
		}
	}
	return found
}

// noneLeft checks that a finished run left no mount point in its state dir.
func noneLeft(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	left, _ := filepath.Glob(filepath.Join(envOf(cmd, "PLAYGROUND_STATE_DIR"), "c-*"))
	if len(left) > 0 {
		t.Errorf("mount points left: %v", left)
	}
}

// TestRunOnATerminalIgnoringSIGTERM: an interactive shell on a terminal
// ignores SIGTERM; run passes it on and, at the stop timeout, ends the
// container, and gives the terminal back as it was.
func TestRunOnATerminalIgnoringSIGTERM(t *testing.T) {
	cmd := playground(t, "run", "--stop-timeout", "1s")
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: 80, Rows: 24})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	before, err := termiosOf(f)
	if err != nil {
		t.Fatal(err)
	}
	out := readAllAsync(f)
	_, _ = f.Write([]byte("echo $((6*7))\r"))
	out.waitFor(t, "42\r\n")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	if code := exitOf(t, waited, "SIGTERM"); code != 128+9 {
		t.Errorf("exit code %d, want 137", code)
	}
	out.waitFor(t, "did not end within 1s of SIGTERM")
	after, err := termiosOf(f)
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("terminal modes not restored: before %+v, after %+v", before, after)
	}
	noneLeft(t, cmd)
}

// TestRunSaysItsLimit: a program that `run` ends at its limit says so on
// stderr, as a session's EXIT does: exit status 137 alone told nothing
// of the memory limit that ended it. Without a cgroup (an ordinary user
// here) the limit is an rlimit: the bomb fails and the program ends by
// itself, with no such line (nothing ended it).
func TestRunSaysItsLimit(t *testing.T) {
	r := runCommand(t, playground(t, "run", "--memory", "256M", "--", "/bin/sh", "-c", "head -c 1000M /dev/zero | tail >/dev/null; echo survived $? >&2; exit 3"))
	const line = "playground: memory limit 256 MiB reached"
	switch {
	case r.code == 137:
		if !strings.Contains(r.stderr, line+"\n") {
			t.Errorf("killed at its limit, and stderr %q does not say %q", r.stderr, line)
		}
	case os.Getuid() == 0:
		t.Errorf("exit status %d, stderr %q; want 137: as root the session's cgroup holds the memory limit", r.code, r.stderr)
	case r.code != 3 || !strings.Contains(r.stderr, "survived 1") || strings.Contains(r.stderr, "limit"):
		t.Errorf("exit status %d, stderr %q; want the program's 3, its tail refused memory, and no limit reached", r.code, r.stderr)
	}
}

// TestRunForksItsOwnInit: `run` starts one container from a small process,
// so it forks init itself: a spawner (the server's helper, which saves a
// large process its page tables' copy at each start) would cost its own
// exec and Go start, about a sixth of a `run -- true` here. While the
// program runs, the run process has no child but init.
func TestRunForksItsOwnInit(t *testing.T) {
	args, marker := sleeper("")
	cmd, _, waited := startRun(t, "10s", args...)
	var kids []string
	es, _ := os.ReadDir("/proc")
	for _, e := range es {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == fmt.Sprint(cmd.Process.Pid) {
			kids = append(kids, s[strings.IndexByte(s, '(')+1:i])
		}
	}
	if len(kids) != 1 {
		t.Errorf("the run process's children: %q, want its container's init alone", kids)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exitOf(t, waited, "SIGTERM")
	gone(t, marker)
}
