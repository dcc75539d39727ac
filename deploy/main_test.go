package deploy

import (
	"os"
	"testing"

	"github.com/guntainer/playground/runtime"
)

// TestMain makes the test binary three things besides the tests: the
// containers' init (runtime.MaybeInit), a wrapper that applies a seccomp
// profile and executes a command under it (as a container runtime does
// for a pod), and a one-session program that starts a container.
func TestMain(m *testing.M) {
	runtime.MaybeInit()
	maybeUnderProfile()
	maybeSession()
	code := m.Run()
	if built.dir != "" {
		_ = os.RemoveAll(built.dir) // the server binary the tests built; nothing else is there
	}
	os.Exit(code)
}
