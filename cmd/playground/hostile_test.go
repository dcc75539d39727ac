package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/guntainer/playground/internal/testenv"
	"github.com/guntainer/playground/runtime"
)

// TestServeHoldsHostileSessions is issue 7's attack on the real server,
// with limits a teacher might set: four sessions fork-bomb, eat memory,
// fill their disk and spin the CPU, while a fifth types a command and
// times its answer throughout. Each abuse is held at its limit; with
// cgroups the fork bomb's and the memory bomb's sessions end with an EXIT
// that names their limit, and without, the bombs fail and the sessions go
// on. The disk fill fails and its session answers after it. /metrics
// counts the limits reached. Once the clients have gone, nothing of the
// sessions is left: no process but the
// spawner, no session cgroup, no mount point.
func TestServeHoldsHostileSessions(t *testing.T) {
	s := serveEnvs(t, func(cfg *serveConfig) {
		cfg.Rootfs = sourceList{list: []string{"host"}}
		cfg.LimitsConfig.Memory = 64 << 20
		cfg.LimitsConfig.Pids = 64
		cfg.LimitsConfig.Disk = 16 << 20
		cfg.ReconnectGrace = 0 // a client that goes ends its session
		cfg.Rate = 0
	})
	mode := s.logs.withKey("limits")
	if mode == nil {
		t.Fatalf("no log line of the limits' mode:\n%s", s.logs)
	}
	cgroups := mode["level"] == "info"
	t.Logf("%v (%v)", mode["message"], mode["limits"])

	bystander := s.open(t, "")
	bystander.input("echo by-$((6*7))\r")
	bystander.waitOutput("by-42")

	bomb, mem, disk, spin := s.open(t, ""), s.open(t, ""), s.open(t, ""), s.open(t, "")
	for _, c := range []*wsClient{bomb, mem, disk, spin} {
		c.input("echo up-$((6*7))\r")
		c.waitOutput("up-42")
	}
	spin.input("for i in 1 2 3 4; do (while :; do :; done) & done; echo spinning-$((6*7))\r")
	spin.waitOutput("spinning-42")
	disk.input("dd if=/dev/zero of=/tmp/fill bs=1M count=64; echo filled-$?-$((6*7))\r")
	mem.input("head -c 1000M /dev/zero | tail >/dev/null; echo survived-$?-$((6*7))\r")
	bomb.input("f() { f | f & }; f\r")

	// The bystander answers throughout: a command timed every 100 ms
	// until the bombs have done what they do.
	var times []time.Duration
	ask := func(i int) {
		t.Helper()
		t0 := time.Now()
		want := "by-" + strconv.Itoa(i) + "-ok"
		bystander.input("echo by-" + strconv.Itoa(i) + "-$(echo ok)\r")
		bystander.waitOutput(want)
		times = append(times, time.Since(t0))
	}
	bombDone := func() bool {
		bomb.mu.Lock()
		defer bomb.mu.Unlock()
		if cgroups {
			return bomb.exit != ""
		}
		// Refused forks, as dash and bash say them.
		out := bomb.out.String()
		return strings.Count(out, "Cannot fork")+strings.Count(out, "fork: retry") >= 10
	}
	memDone := func() bool {
		mem.mu.Lock()
		defer mem.mu.Unlock()
		if cgroups {
			return mem.exit != ""
		}
		return strings.Contains(mem.out.String(), "survived-")
	}
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; !bombDone() || !memDone() || i < 10; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("the bombs got nowhere in 60 s; fork bomb's output:\n%s\nmemory bomb's:\n%s", tailOf(bomb), tailOf(mem))
		}
		ask(i)
		time.Sleep(100 * time.Millisecond)
	}
	slices.Sort(times)
	t.Logf("the bystander answered %d commands: median %v, max %v", len(times), times[len(times)/2], times[len(times)-1])

	if cgroups {
		checkExit(t, "fork bomb", bomb, "process limit 64 reached")
		checkExit(t, "memory bomb", mem, "memory limit 64 MiB reached")
	} else {
		mem.waitOutput("-42")
		if out := tailOf(mem); strings.Contains(out, "survived-0-") {
			t.Errorf("the memory bomb's tail held 1000 MiB under a 64 MiB limit:\n%s", out)
		}
	}
	disk.waitOutput("filled-")
	if out := tailOf(disk); !strings.Contains(out, "No space left on device") || strings.Contains(out, "filled-0-") {
		t.Errorf("64 MiB written to a 16 MiB disk:\n%s", out)
	}
	disk.input("echo after-$((6*7))\r")
	disk.waitOutput("after-42")

	// The clients go; their sessions end (no reconnect grace).
	for _, c := range []*wsClient{bystander, bomb, mem, disk, spin} {
		_ = c.ws.Close()
		<-c.done
	}
	deadline = time.Now().Add(30 * time.Second)
	for s.logs.count("session end") < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of 5 sessions ended 30 s after their clients left:\n%s", s.logs.count("session end"), s.logs)
		}
		time.Sleep(20 * time.Millisecond) // polling the log
	}
	// An operator counts the sessions that reached a limit: the memory
	// bomb's and the fork bomb's, with cgroups; none without, where the
	// runtime cannot tell.
	_, metrics := s.get(t, "/metrics")
	var reached []string
	for _, line := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(line, "playground_resource_limits_reached_total{") {
			reached = append(reached, line)
		}
	}
	want := []string{`playground_resource_limits_reached_total{limit="memory"} 1`, `playground_resource_limits_reached_total{limit="pids"} 1`}
	if !cgroups {
		want = nil
	}
	if !slices.Equal(reached, want) {
		t.Errorf("/metrics counts the limits reached as %q, want %q", reached, want)
	}
	if left := ourChildren(t); len(left) > 0 {
		t.Errorf("processes left besides the spawner: %v", left)
	}
	if left := sessionCgroups(t); len(left) > 0 {
		t.Errorf("session cgroups left: %v", left)
	}
	s.stop()
	if left, _ := filepath.Glob(filepath.Join(s.stateDir, "c-*")); len(left) > 0 {
		t.Errorf("mount points left: %v", left)
	}
}

// checkExit: the session ended with an EXIT that names the limit.
func checkExit(t *testing.T, what string, c *wsClient, reason string) {
	t.Helper()
	c.mu.Lock()
	exit := c.exit
	c.mu.Unlock()
	var st struct {
		Code   int
		Signal string
		Reason string
	}
	t.Logf("%s: EXIT %s", what, exit)
	if err := json.Unmarshal([]byte(exit), &st); err != nil || st.Reason != reason {
		t.Errorf("%s: EXIT %q, want the reason %q", what, exit, reason)
	}
	if ce := c.waitClose(); ce == nil || ce.Code != 1000 {
		t.Errorf("%s: close %v, want 1000", what, ce)
	}
}

// tailOf is the last 1,000 bytes of a session's output.
func tailOf(c *wsClient) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.out.Bytes()
	return string(b[max(0, len(b)-1000):])
}

// ourChildren are this process's children other than the spawner, with
// their names.
func ourChildren(t *testing.T) []string {
	t.Helper()
	spawner, _ := runtime.Spawner()
	return testenv.Children(func(pid int) bool { return pid == spawner })
}

// sessionCgroups are the directories below this process's sessions'
// parent cgroup (playground-PID below its own, in each hierarchy).
func sessionCgroups(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var left []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// hierarchy-ID:controllers:path; v2's has no controllers.
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		root := "/sys/fs/cgroup"
		if parts[1] != "" {
			root = filepath.Join(root, strings.TrimPrefix(strings.Split(parts[1], ",")[0], "name="))
		}
		parent := filepath.Join(root, parts[2], "playground-"+strconv.Itoa(os.Getpid()))
		ents, _ := os.ReadDir(parent) // none: no cgroups in this hierarchy
		for _, e := range ents {
			if e.IsDir() {
				left = append(left, filepath.Join(parent, e.Name()))
			}
		}
	}
	return left
}
