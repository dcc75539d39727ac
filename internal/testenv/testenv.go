// Package testenv holds what the project's tests share about the machine
// they run on: skipping with a reason where the machine cannot run a test,
// and turning every such skip into a failure under PLAYGROUND_TEST_STRICT=1,
// as CI sets it.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// Strict reports whether skips are failures (PLAYGROUND_TEST_STRICT=1).
func Strict() bool { return os.Getenv("PLAYGROUND_TEST_STRICT") == "1" }

// Skipf skips the test with its reason, or fails it when Strict.
func Skipf(t testing.TB, format string, args ...any) {
	t.Helper()
	if Strict() {
		t.Fatalf("PLAYGROUND_TEST_STRICT=1, cannot skip: "+format, args...)
	}
	t.Skipf(format, args...)
}

// NeedCommand returns the path of a command the test needs, or skips.
func NeedCommand(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Skipf(t, "%s not installed: %v", name, err)
	}
	return p
}
