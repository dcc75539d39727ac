package server

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

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
	state := testStateDir(t)
	spec := runtime.Spec{
		Args:     []string{"/bin/sh"},
		Env:      []string{"PS1=$ "},
		StateDir: state,
	}
	if err := runtime.Check(spec); err != nil {
		testenv.Skipf(t, "cannot start containers here: %v", err)
	}
	return ContainerStart(spec)
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
	return func(_ context.Context, cols, rows uint16) (Terminal, error) {
		cmd := exec.Command(shell)
		cmd.Dir = home
		cmd.Env = []string{
			"PATH=" + os.Getenv("PATH"),
			"HOME=" + home,
			"TERM=xterm-256color",
			"PS1=$ ",
			"LANG=C.UTF-8",
		}
		t, err := ptyproc.Start(cmd, cols, rows)
		if err != nil {
			return nil, err // a nil *ptyproc.Terminal must not become a non-nil Terminal
		}
		return t, nil
	}
}
