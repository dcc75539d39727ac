// Package testenv holds what the project's tests share about the machine
// they run on: skipping with a reason where the machine cannot run a test,
// and turning every such skip into a failure under PLAYGROUND_TEST_STRICT=1,
// as CI sets it.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
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

// SourceRoot is the directory of the module the tests were built from,
// found from this file's own path (wherever the test binary runs: CI runs
// the ordinary user's test binaries from /tmp), or "" where the binary
// holds no such path. The tests that read the README or build a command
// start there.
func SourceRoot() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return ""
	}
	return filepath.Dir(filepath.Dir(filepath.Dir(file))) // internal/testenv/testenv.go
}
