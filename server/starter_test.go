package server

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/guntainer/playground/internal/ptyinput"
	"github.com/guntainer/playground/internal/ptyproc"
	"github.com/guntainer/playground/internal/testenv"
	"github.com/guntainer/playground/runtime"
)

// testStart is the StartFunc every test goes through: a real container
// (all namespaces, the host rootfs, an overlay-free tmpfs root) running
// /bin/sh with a "$ " prompt. Where the machine cannot make containers the
// test skips, or fails under PLAYGROUND_TEST_STRICT=1.
func testStart(t testing.TB) StartFunc {
	t.Helper()
	start, _ := testStartState(t)
	return start
}

// testStartState is testStart, and the state dir its containers use.
func testStartState(t testing.TB) (StartFunc, string) {
	t.Helper()
	state := testStateDir(t)
	spec := runtime.Spec{
		Args:     []string{"/bin/sh"},
		Env:      []string{"PS1=$ "},
		StateDir: state,
		// As playground serve starts a session: the program is PID 1.
		ProgramIsInit: true,
	}
	if err := runtime.Check(spec); err != nil {
		testenv.Skipf(t, "cannot start containers here: %v", err)
	}
	return ContainerStart(spec), state
}

// testStateDir is a state dir for a test's containers that a root-mode pool
// uid can reach.
func testStateDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "playground-server-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(d) })
	if err := os.Chmod(d, 0o711); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(d, "state")
}

// plainStart starts an unisolated /bin/sh on a plain pty: the baseline that
// shows what isolation costs.
func plainStart(t testing.TB) StartFunc {
	t.Helper()
	const shell = "/bin/sh"
	if _, err := os.Stat(shell); err != nil {
		testenv.Skipf(t, "no %s: %v", shell, err)
	}
	home := t.TempDir()
	return func(_ context.Context, req StartRequest) (Terminal, error) {
		cmd := exec.Command(shell)
		cmd.Dir = home
		cmd.Env = []string{
			"PATH=" + os.Getenv("PATH"),
			"HOME=" + home,
			"TERM=xterm-256color",
			"PS1=$ ",
			"LANG=C.UTF-8",
		}
		t, err := ptyproc.Start(cmd, req.Cols, req.Rows)
		if err != nil {
			return nil, err // a nil *ptyproc.Terminal must not become a non-nil Terminal
		}
		return t, nil
	}
}

// signalingStart is plainStart whose terminals can signal their
// foreground process group (TIOCSIG on the master), the optional method
// a Ctrl-C goes through when the program does not read its input.
func signalingStart(t testing.TB) StartFunc {
	start := plainStart(t)
	return func(ctx context.Context, req StartRequest) (Terminal, error) {
		term, err := start(ctx, req)
		if err != nil {
			return nil, err
		}
		pt := term.(*ptyproc.Terminal)
		return signalingPTY{pt, ptyinput.New(pt.Master())}, nil
	}
}

// signalingPTY writes its input as a container does, so that a signal
// drops the input not yet read.
type signalingPTY struct {
	*ptyproc.Terminal
	in *ptyinput.Writer
}

func (t signalingPTY) Write(p []byte) (int, error) { return t.in.Write(p) }

func (t signalingPTY) SignalForeground(sig syscall.Signal) error { return t.in.Interrupt(sig) }

func (t signalingPTY) SignalKey(b byte) (syscall.Signal, bool, error) { return t.in.SignalKey(b) }
