package runtime

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/guntainer/playground/internal/testenv"
)

// beforeTests makes what the runtime keeps for the whole process, so that
// the leak check's baseline has it.
func beforeTests() error {
	if _, err := sealedExecutable(); err != nil {
		return err
	}
	// The spawner too is started once and kept: its descriptors are in
	// the baseline, and it is not a leftover (notLeftover).
	_, _ = theSpawner()
	return nil
}

// notLeftover is a child process the tests keep for good: the spawner.
func notLeftover(pid int) bool {
	s, err := theSpawner()
	return err == nil && pid == s.pid
}

// afterTests removes the tests' state dir, with its prepared host root.
func afterTests() {
	if stateDir != "" {
		_ = os.RemoveAll(filepath.Dir(stateDir)) // best effort: a temporary directory
	}
}

// start starts a container for a test and closes it at the end, skipping
// (or failing under PLAYGROUND_TEST_STRICT=1) where the machine cannot make
// user namespaces.
func start(t *testing.T, spec Spec) *Container {
	t.Helper()
	if spec.StateDir == "" {
		spec.StateDir = testStateDir(t)
	}
	c, err := Start(spec)
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EINVAL) && strings.Contains(err.Error(), "create namespaces") {
		testenv.Skipf(t, "no user namespaces here: %v", err)
	}
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

var (
	stateOnce sync.Once
	stateDir  string
)

// testStateDir is one state dir for the whole test binary, so leak checks
// can look into it.
func testStateDir(t testing.TB) string {
	stateOnce.Do(func() {
		d, err := os.MkdirTemp("", "playground-state-")
		if err != nil {
			t.Fatal(err)
		}
		// A pool uid (root mode) must reach its mount point inside.
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
		stateDir = filepath.Join(d, "state")
	})
	return stateDir
}

// output is a concurrent reader of a container's pty.
type output struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	done chan struct{}
	more chan struct{} // a token after each read: waitFor wakes at once
}

func readAll(c *Container) *output {
	o := &output{done: make(chan struct{}), more: make(chan struct{}, 1)}
	go func() {
		defer close(o.done)
		b := make([]byte, 4096)
		for {
			n, err := c.Read(b)
			o.mu.Lock()
			o.buf.Write(b[:n])
			o.mu.Unlock()
			select {
			case o.more <- struct{}{}:
			default: // a token is waiting already
			}
			if err != nil {
				return
			}
		}
	}()
	return o
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// waitFor waits until the output contains s, failing after a while.
func (o *output) waitFor(t *testing.T, s string) {
	t.Helper()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for !strings.Contains(o.String(), s) {
		select {
		case <-o.more:
		case <-o.done:
			if !strings.Contains(o.String(), s) {
				t.Fatalf("output ended without %q:\n%s", s, o.String())
			}
		case <-timeout.C:
			t.Fatalf("timed out waiting for %q; output so far:\n%s", s, o.String())
		}
	}
}

// run runs a command in a new container and returns its output and status.
func run(t *testing.T, spec Spec) (string, ExitStatus) {
	t.Helper()
	c := start(t, spec)
	o := readAll(c)
	select {
	case <-o.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("container did not end; output so far:\n%s", o.String())
	}
	st, err := c.Wait()
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	_ = c.Close() // nothing should be left of it from here on
	return strings.ReplaceAll(o.String(), "\r\n", "\n"), st
}

func sh(script string) []string { return []string{"/bin/sh", "-c", script} }

// busyboxRootfs makes a small root file system from Debian's busybox-static.
func busyboxRootfs(t *testing.T) string {
	t.Helper()
	bb := "/bin/busybox"
	if _, err := os.Stat(bb); err != nil {
		testenv.Skipf(t, "busybox-static not installed: %v", err)
	}
	out, err := exec.Command(bb, "--list").Output()
	if err != nil || !bytes.Contains(out, []byte("\nsh\n")) {
		testenv.Skipf(t, "%s is not a full busybox: %v", bb, err)
	}
	dir := t.TempDir()
	for _, d := range []string{"bin", "etc", "root", "tmp", "proc", "dev", "sys"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin/busybox"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range strings.Fields(string(out)) {
		if name == "busybox" {
			continue
		}
		_ = os.Symlink("busybox", filepath.Join(dir, "bin", name)) // duplicates are fine
	}
	if err := os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Readable by a pool uid in root mode, as a real rootfs is.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// treeState describes every entry of a tree, to see whether it changed.
func treeState(t *testing.T, dir string) string {
	t.Helper()
	var sb strings.Builder
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		sb.WriteString(p + " " + fi.Mode().String() + " " + fi.ModTime().String() + "\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return sb.String()
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }
