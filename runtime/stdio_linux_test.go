package runtime

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/guntainer/playground/runtime/internal/initproc"
	"golang.org/x/sys/unix"
)

// pipes are a Stdio of three fresh pipes and the test's ends of them.
type pipes struct {
	stdio            *Stdio
	stdin            *os.File // write end
	stdout, stderr   *os.File // read ends
	outDone, errDone chan string
	inR, outW, errW  *os.File
}

func newPipes(t *testing.T) *pipes {
	t.Helper()
	p := &pipes{outDone: make(chan string, 1), errDone: make(chan string, 1)}
	var err error
	if p.inR, p.stdin, err = os.Pipe(); err != nil {
		t.Fatal(err)
	}
	if p.stdout, p.outW, err = os.Pipe(); err != nil {
		t.Fatal(err)
	}
	if p.stderr, p.errW, err = os.Pipe(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, f := range []*os.File{p.inR, p.stdin, p.stdout, p.outW, p.stderr, p.errW} {
			_ = f.Close() // some are closed already
		}
	})
	p.stdio = &Stdio{Stdin: p.inR, Stdout: p.outW, Stderr: p.errW}
	return p
}

// started closes the container's ends on our side, as a caller does once
// Start has returned, and reads stdout and stderr to their end.
func (p *pipes) started() {
	_, _, _ = p.inR.Close(), p.outW.Close(), p.errW.Close()
	go func() { b, _ := io.ReadAll(p.stdout); p.outDone <- string(b) }()
	go func() { b, _ := io.ReadAll(p.stderr); p.errDone <- string(b) }()
}

func wait(t *testing.T, ch chan string, what string) string {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(20 * time.Second):
		t.Fatalf("no end of file on %s", what)
		return ""
	}
}

// TestStdio: with Spec.Stdio the program reads and writes the caller's
// files: no terminal, no echo, the caller's end of file is the program's,
// stdout and stderr apart, and the caller's readers see end of file when
// the container ends, even with a background process still holding them.
func TestStdio(t *testing.T) {
	p := newPipes(t)
	c := start(t, Spec{Args: sh(`cat; echo to-stderr >&2; sleep 1000 & exit 3`), Stdio: p.stdio})
	p.started()
	if _, err := p.stdin.Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	_ = p.stdin.Close() // end of file for cat
	if got := wait(t, p.outDone, "stdout"); got != "hello\n" {
		t.Errorf("stdout: -want %q +got %q", "hello\n", got)
	}
	if got := wait(t, p.errDone, "stderr"); got != "to-stderr\n" {
		t.Errorf("stderr: -want %q +got %q", "to-stderr\n", got)
	}
	st, err := c.Wait()
	if err != nil || st != (ExitStatus{Code: 3}) {
		t.Errorf("Wait: got %v, %v; want exit code 3", st, err)
	}
	if n, err := c.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Errorf("Read: got %d, %v; want 0, EOF", n, err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, ErrNoTerminal) {
		t.Errorf("Write: got %v, want ErrNoTerminal", err)
	}
	if err := c.Resize(80, 24); !errors.Is(err, ErrNoTerminal) {
		t.Errorf("Resize: got %v, want ErrNoTerminal", err)
	}
}

// TestStdioNilIsDevNull: what the caller leaves nil is /dev/null.
func TestStdioNilIsDevNull(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c := start(t, Spec{Args: sh(`cat; readlink /proc/self/fd/0 /proc/self/fd/2`), Stdio: &Stdio{Stdout: w}})
	_ = w.Close()
	b, _ := io.ReadAll(r)
	if got, want := string(b), "/dev/null\n/dev/null\n"; got != want {
		t.Errorf("-want %q +got %q", want, got)
	}
	if st, _ := c.Wait(); st.Code != 0 {
		t.Errorf("got %v", st)
	}
}

// TestStdioPosture reads from the host what a live program started with
// Spec.Stdio holds: the caller's three pipes as 0, 1 and 2 and no other
// fd, no controlling terminal, a session of its own, and the same last
// step as on a pty (no_new_privs, seccomp, the short capability list).
func TestStdioPosture(t *testing.T) {
	p := newPipes(t)
	// busybox's sleep opens nothing (coreutils' reads locale files a moment).
	c := start(t, Spec{Rootfs: busyboxRootfs(t), Args: []string{"/bin/sleep", "1000"}, Stdio: p.stdio})
	pid := programPid(t, c)
	pidS := strconv.Itoa(pid)

	got, want := map[string]string{}, map[string]string{}
	var ours []string
	for _, f := range []*os.File{p.inR, p.outW, p.errW} {
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil {
			t.Fatal(err)
		}
		ours = append(ours, fmt.Sprintf("pipe:[%d]", st.Ino))
	}
	want["fds"] = fmt.Sprintf("0=%s 1=%s 2=%s", ours[0], ours[1], ours[2])
	// A leaked fd stays; one the program opens for a moment goes.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		fds, err := os.ReadDir("/proc/" + pidS + "/fd")
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, f := range fds {
			l, _ := os.Readlink("/proc/" + pidS + "/fd/" + f.Name())
			names = append(names, f.Name()+"="+l)
		}
		got["fds"] = strings.Join(names, " ")
		if got["fds"] == want["fds"] || time.Now().After(deadline) {
			break
		}
	}

	stat := mustStat(t, pid)
	want["session"], got["session"] = pidS, strconv.Itoa(stat.Session)
	want["tty_nr"], got["tty_nr"] = "0", strconv.Itoa(stat.TTY)
	mask := fmt.Sprintf("%016x", initproc.KeptMask())
	for k, v := range map[string]string{"CapEff": mask, "CapBnd": mask, "NoNewPrivs": "1", "Seccomp": "2"} {
		want[k], got[k] = v, statusField(pidS, k)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: -want %s +got %s", k, w, got[k])
		}
	}
	p.started()
	_ = c.Close()
	wait(t, p.outDone, "stdout")
}

// TestStdioRefused: files that would lead out of the container, or let the
// program type into the caller's terminal, are refused before anything
// starts, with what and why.
func TestStdioRefused(t *testing.T) {
	master, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	defer tty.Close()
	dir, err := os.Open("/")
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	opath, err := unix.Open("/etc", unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	pathFile := os.NewFile(uintptr(opath), "/etc (O_PATH)")
	defer pathFile.Close()

	tests := []struct {
		name  string
		stdio Stdio
		want  string
	}{
		{"terminal", Stdio{Stdin: tty}, "stdin: a terminal is not accepted"},
		{"terminal master", Stdio{Stdout: master}, "stdout: a terminal is not accepted"},
		{"directory", Stdio{Stderr: dir}, "stderr: a directory is not accepted"},
		{"O_PATH", Stdio{Stdin: pathFile}, "stdin: an O_PATH fd is not accepted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdio := tt.stdio
			c, err := Start(Spec{Args: []string{"true"}, Stdio: &stdio, StateDir: testStateDir(t)})
			if err == nil {
				_ = c.Close()
				t.Fatalf("Start succeeded, want %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("-want %q\n+got  %q", tt.want, err)
			}
			if kids := childPids(); len(kids) > 0 {
				t.Errorf("processes started: %v", kids)
			}
		})
	}
}

// TestProgramErrors: a program not found and one not executable are told
// apart with errors.Is, as a shell tells them apart with 127 and 126, on a
// pty and with Spec.Stdio alike; other setup errors are neither.
func TestProgramErrors(t *testing.T) {
	rootfs := busyboxRootfs(t)
	if err := os.WriteFile(filepath.Join(rootfs, "bin/badscript"), []byte("#!/no/such/interpreter\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		spec Spec
		want error // nil: neither
		text string
	}{
		{"not in PATH", Spec{Args: []string{"no-such-program"}}, ErrProgramNotFound, "exec no-such-program: executable file not found in $PATH"},
		{"no such path", Spec{Args: []string{"/no/such/program"}}, ErrProgramNotFound, "exec /no/such/program: no such file or directory"},
		{"not executable", Spec{Args: []string{"/etc/passwd"}}, ErrProgramNotExecutable, "exec /etc/passwd: permission denied"},
		{"a directory", Spec{Args: []string{"/bin"}}, ErrProgramNotExecutable, "exec /bin: is a directory"},
		{"missing interpreter", Spec{Args: []string{"/bin/badscript"}}, ErrProgramNotExecutable, "exec /bin/badscript: no such file or directory"},
		{"missing working directory", Spec{Args: []string{"true"}, Dir: "/no/such/dir"}, nil, "working directory /no/such/dir: no such file or directory"},
		{"missing rootfs", Spec{Rootfs: "/no/such/rootfs"}, nil, "rootfs: stat /no/such/rootfs"},
	}
	type mode struct {
		stdio, programIsInit bool
		host                 *Host
	}
	modes := []mode{{false, false, nil}, {true, false, nil}, {false, true, nil}, {true, true, nil}}
	if os.Getuid() == 0 {
		// With v1 cgroups init is moved into them while it builds the
		// container: its setup error must still be what Start says.
		modes = append(modes, mode{false, true, cgroupHost(t)}, mode{true, false, cgroupHost(t)})
	}
	for _, mode := range modes {
		stdio := mode.stdio
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s stdio=%v program-as-init=%v cgroups=%v", tt.name, stdio, mode.programIsInit, mode.host != nil), func(t *testing.T) {
				spec := tt.spec
				if spec.Rootfs == "" {
					spec.Rootfs = rootfs
				}
				spec.StateDir = testStateDir(t)
				spec.ProgramIsInit = mode.programIsInit
				spec.Host = mode.host
				if stdio {
					spec.Stdio = &Stdio{}
				}
				c, err := Start(spec)
				if err == nil {
					_ = c.Close()
					t.Fatalf("Start succeeded, want %q", tt.text)
				}
				if !strings.Contains(err.Error(), tt.text) {
					t.Errorf("-want %q\n+got  %q", tt.text, err)
				}
				for _, sentinel := range []error{ErrProgramNotFound, ErrProgramNotExecutable} {
					if errors.Is(err, sentinel) != (sentinel == tt.want) {
						t.Errorf("errors.Is(%q, %v) = %v, want %v", err, sentinel, !(sentinel == tt.want), sentinel == tt.want)
					}
				}
			})
		}
	}
}

// TestStdioSignalEndsProgram: a signal the caller passes on ends a program
// without a terminal as it ends one on a pty, and the status says which.
func TestStdioSignalEndsProgram(t *testing.T) {
	p := newPipes(t)
	c := start(t, Spec{Args: sh(`echo started; exec sleep 1000`), Stdio: p.stdio})
	_, _ = p.inR.Close(), p.errW.Close()
	_ = p.outW.Close()
	buf := make([]byte, len("started\n"))
	if _, err := io.ReadFull(p.stdout, buf); err != nil {
		t.Fatal(err)
	}
	if err := c.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the program did not end on SIGTERM")
	}
	if st, _ := c.Wait(); st.Signal != syscall.SIGTERM {
		t.Errorf("got %v, want signal TERM", st)
	}
}
