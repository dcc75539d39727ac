package runtime

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// The limits tests need real processes to limit: the test binary runs
// itself as one, named by PLAYGROUND_LIMITS_HELPER. This init runs before
// TestMain, so a helper never runs the tests. (helpers is a variable, not
// filled by other files' init functions, which may run after this one.)
const helperEnv = "PLAYGROUND_LIMITS_HELPER"

func init() {
	if name := os.Getenv(helperEnv); name != "" {
		os.Exit(runHelper(name))
	}
}

var helpers = map[string]func() int{
	// wait blocks until its stdin closes.
	"wait": func() int { _, _ = io.Copy(io.Discard, os.Stdin); return 0 },
	// hog takes one line from stdin (the go-ahead, once it is in its
	// cgroup), then touches memory until it is killed.
	"hog": func() int {
		waitLine()
		var keep [][]byte
		for {
			b := make([]byte, 1<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1
			}
			keep = append(keep, b)
		}
	},
	"cgserver":   helperCgroupServer,
	"become":     helperBecomeRoot,
	"netoutside": helperNetOutside,
	"netinside":  helperNetInside,
	"rlimits":    helperRlimits,
	"disk":       helperDisk,
	"netserver":  helperNetServer,
	"netpeer":    helperNetPeer,
}

func runHelper(name string) int {
	h, ok := helpers[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "no helper %q\n", name)
		return 2
	}
	return h()
}

func waitLine() string {
	s, _ := bufio.NewReader(os.Stdin).ReadString('\n')
	return strings.TrimSpace(s)
}

// helperCmd is the test binary as helper name, with arg (JSON) in its
// environment.
func helperCmd(t testing.TB, name string, arg any) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = []string{helperEnv + "=" + name, "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	if arg != nil {
		b, err := json.Marshal(arg)
		if err != nil {
			t.Fatal(err)
		}
		cmd.Env = append(cmd.Env, "PLAYGROUND_HELPER_ARG="+string(b))
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

func helperArg(v any) {
	if err := json.Unmarshal([]byte(os.Getenv("PLAYGROUND_HELPER_ARG")), v); err != nil {
		fmt.Fprintln(os.Stderr, "helper arg:", err)
		os.Exit(2)
	}
}

// singleMap is the id map of an ordinary user's container: root inside is
// the invoking user.
func singleMap() (u, g []syscall.SysProcIDMap) {
	return []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		[]syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}}
}
