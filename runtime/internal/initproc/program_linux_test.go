package initproc

import (
	"errors"
	goruntime "runtime"
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

// firstThread is what onFirstThread said in this test binary's package
// initialisation, as init's execProgram runs: before and after steps like
// init's (a blocking system call, a wait on a channel filled by another
// goroutine, which parks the caller), and on a goroutine of its own.
var firstThread struct{ before, after, other error }

func init() {
	firstThread.before = onFirstThread()
	var st unix.Stat_t
	_ = unix.Stat("/proc/self", &st)
	ch := make(chan error)
	go func() { ch <- onFirstThread() }()
	firstThread.other = <-ch
	firstThread.after = onFirstThread()
}

// TestInitFunctionsRunOnTheFirstThread holds what execProgram relies on:
// Go runs init functions on the process's first thread and keeps them
// there, so that init's steps (capabilities, seccomp, the user, all per
// thread) and its exec happen on one thread without a goroutine locked to
// one of its own. onFirstThread refuses any other thread.
func TestInitFunctionsRunOnTheFirstThread(t *testing.T) {
	if firstThread.before != nil || firstThread.after != nil {
		t.Fatalf("in package initialisation, onFirstThread: before %v, after a syscall and a wait %v; want nil", firstThread.before, firstThread.after)
	}
	if firstThread.other == nil {
		t.Error("a goroutine started in package initialisation runs on the first thread, which init's goroutine holds")
	}
	type answer struct {
		first bool
		err   error
	}
	done := make(chan answer)
	go func() {
		goruntime.LockOSThread() // this thread ends with the goroutine
		done <- answer{unix.Gettid() == unix.Getpid(), onFirstThread()}
	}()
	if a := <-done; a.first != (a.err == nil) {
		t.Errorf("onFirstThread on a locked goroutine (on the first thread: %v): %v", a.first, a.err)
	}
}
