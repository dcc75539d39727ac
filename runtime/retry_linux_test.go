package runtime

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// TestStartRetriesARefusedExec: on a host where containers have started,
// one clone or exec of init refused with EACCES (seen once in thousands
// of starts under heavy parallel load) is logged and tried again; a second
// refusal, or the first on a host where none has started yet, is the
// start's error, with the hint.
func TestStartRetriesARefusedExec(t *testing.T) {
	var mu sync.Mutex
	var logs []string
	h, err := NewHost(HostOptions{StateDir: testStateDir(t), NoCgroups: true, Log: func(m string) { mu.Lock(); logs = append(logs, m); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	defer closeTestHost(h)
	spec := Spec{Args: []string{"/bin/true"}, Host: h}

	refuse := func(n int) {
		var calls int
		execInit = func(cmd *exec.Cmd, st initStart) (initStarted, error) {
			calls++
			if calls <= n {
				return initStarted{}, &os.PathError{Op: "fork/exec", Path: cmd.Path, Err: syscall.EACCES}
			}
			return initStarted{}, cmd.Start()
		}
	}
	defer func() { execInit = startInit }()

	refuse(1) // before any container started here: no second try
	if _, err := Start(spec); err == nil || !errors.Is(err, syscall.EACCES) || !strings.Contains(err.Error(), "create namespaces: permission denied") {
		t.Fatalf("a refusal on a fresh host: %v", err)
	}
	refuse(0)
	run := func() error {
		c, err := Start(spec)
		if err != nil {
			return err
		}
		_, err = c.Wait()
		return err
	}
	if err := run(); err != nil {
		t.Fatal(err)
	}
	refuse(1)
	if err := run(); err != nil {
		t.Fatalf("one refusal after a start: %v", err)
	}
	mu.Lock()
	logged := strings.Join(logs, "\n")
	mu.Unlock()
	if !strings.Contains(logged, "permission denied") || !strings.Contains(logged, "starting it again") {
		t.Fatalf("the retry is not logged: %q", logged)
	}
	refuse(2)
	if _, err := Start(spec); err == nil || !errors.Is(err, syscall.EACCES) {
		t.Fatalf("two refusals: %v", err)
	}
}
