package initproc

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// TestExecAfterTheLimitsAllocatesNothing runs what init does between the
// last rlimits and the program (limitAndExec) with this process's own
// limits and a program that does not exist, so that the exec fails and
// returns. Init has mapped more than the smallest RLIMIT_DATA before it
// sets it, so an allocation there that grows the heap ends init: it did,
// about once in twenty runs of TestInitUnderTheSmallestLimits, while
// syscall.Exec (which makes C strings of argv and env) came after the
// limits.
func TestExecAfterTheLimitsAllocatesNothing(t *testing.T) {
	var rl []Rlimit
	for _, name := range []string{"data", "nproc"} {
		var cur unix.Rlimit
		if err := unix.Getrlimit(RlimitResources[name], &cur); err != nil {
			t.Fatal(err)
		}
		rl = append(rl, Rlimit{Name: name, Cur: cur.Cur, Max: cur.Max})
	}
	ex, err := prepareExec("/nonexistent/program", []string{"program", "-c", "true"}, []string{"A=1", "B=2"})
	if err != nil {
		t.Fatal(err)
	}
	var last error
	allocs := testing.AllocsPerRun(100, func() { last = limitAndExec(ex, rl) })
	if !errors.Is(last, unix.ENOENT) {
		t.Fatalf("exec of a missing program: %v; want ENOENT", last)
	}
	if allocs != 0 {
		t.Errorf("the limits and the exec allocate %v times; want none", allocs)
	}
	if _, err := prepareExec("/bin/sh", []string{"sh", "a\x00b"}, nil); err == nil {
		t.Error("an argument with a NUL byte: no error")
	}
}
