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
	"time"

	"github.com/guntainer/playground/internal/testenv"
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
	// hold: allocates and touches the MiB its argument says once a line
	// comes, says "held", and keeps them until stdin ends.
	"hold": func() int {
		var mib int
		helperArg(&mib)
		in := bufio.NewReader(os.Stdin)
		_, _ = in.ReadString('\n')
		b := make([]byte, mib<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		fmt.Println("held")
		_, _ = in.ReadString('\n')
		return int(b[0]) - 1
	},
	"cgserver":    helperCgroupServer,
	"become":      helperBecomeRoot,
	"netoutside":  helperNetOutside,
	"netinside":   helperNetInside,
	"rlimits":     helperRlimits,
	"disk":        helperDisk,
	"netserver":   helperNetServer,
	"netpeer":     helperNetPeer,
	"undumpable":  helperUndumpable,
	"idmapwriter": helperIDMapWriter,
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

// inOwnUserNS puts cmd, a helper, in a user namespace of its own (and a
// mount namespace), as its root: this user mapped to root.
func inOwnUserNS(cmd *exec.Cmd) {
	u, g := singleMap()
	cmd.SysProcAttr.Cloneflags |= syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS
	cmd.SysProcAttr.UidMappings, cmd.SysProcAttr.GidMappings = u, g
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true}
}

// helperResult runs cmd, a helper that prints one JSON object of strings,
// within 2 minutes, and returns the object; what names the helper in a
// failure. A helper refused a user namespace skips (testenv.Skipf).
func helperResult(t *testing.T, cmd *exec.Cmd, what string) map[string]string {
	t.Helper()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	timer := time.AfterFunc(2*time.Minute, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()
	out, err := cmd.Output()
	if err != nil {
		if strings.Contains(stderr.String(), "operation not permitted") && strings.Contains(stderr.String(), "user namespace") {
			testenv.Skipf(t, "no user namespaces here: %s", stderr.String())
		}
		t.Fatalf("%s: %v\n%s\n%s", what, err, out, stderr.String())
	}
	var res map[string]string
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("%s said %q: %v\n%s", what, out, err, stderr.String())
	}
	return res
}
