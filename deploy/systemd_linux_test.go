package deploy

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/guntainer/playground/internal/testenv"
)

// unitSettings reads Key=Value lines of the shipped unit (the last of a
// repeated key wins, as systemd's do for these).
func unitSettings(t testing.TB) map[string]string {
	t.Helper()
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(readShipped(t, "systemd/playground.service")))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || l[0] == '#' || l[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			t.Fatalf("unit line %q is not Key=Value", l)
		}
		m[k] = v
	}
	return m
}

// TestSystemdUnitVerifies: systemd-analyze verify finds nothing to say
// about the unit (an unknown key or a bad value is a warning, which fails
// the test), with its ExecStart pointing at a real playground binary.
func TestSystemdUnitVerifies(t *testing.T) {
	analyze := testenv.NeedCommand(t, "systemd-analyze")
	bin := playgroundBinary(t)
	unit := strings.Replace(string(readShipped(t, "systemd/playground.service")), "/usr/local/bin/playground", bin, 1)
	p := filepath.Join(t.TempDir(), "playground.service")
	if err := os.WriteFile(p, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", p).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	// The same check sees a mistake (the test of the test).
	bad := strings.Replace(unit, "KillMode=mixed", "KillMode=mixd", 1)
	if err := os.WriteFile(p, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, _ := exec.Command(analyze, "verify", p).CombinedOutput(); !bytes.Contains(out, []byte("mixd")) {
		t.Errorf("systemd-analyze verify said nothing of a bad KillMode: %s", out)
	}
	if out, err := exec.Command(analyze, "security", "--offline=yes", strings.Replace(p, "playground.service", "playground.service", 1)).CombinedOutput(); err == nil {
		t.Logf("systemd-analyze security: %s", bytes.TrimSpace(out[bytes.LastIndex(out, []byte("→")):]))
	}
}

// TestSystemdUnitStopsByDraining: on stop, SIGTERM reaches the server
// alone (its sessions' processes are left to the drain), and systemd
// waits for the drain before it kills anything.
func TestSystemdUnitStopsByDraining(t *testing.T) {
	u := unitSettings(t)
	for k, want := range map[string]string{"KillMode": "mixed", "KillSignal": "SIGTERM", "Delegate": "yes", "Restart": "on-failure", "NoNewPrivileges": ""} {
		if u[k] != want {
			t.Errorf("%s=%q, want %q", k, u[k], want)
		}
	}
	drain, ok := argValue(strings.Fields(u["ExecStart"]), "drain-timeout")
	d, err := time.ParseDuration(drain)
	if !ok || err != nil {
		t.Fatalf("ExecStart has no --drain-timeout: %q", u["ExecStart"])
	}
	stop, err := time.ParseDuration(u["TimeoutStopSec"] + "s")
	if err != nil || stop < d+10*time.Second {
		t.Errorf("TimeoutStopSec=%s: want --drain-timeout (%v) and time to tear down", u["TimeoutStopSec"], d)
	}
	for _, k := range []string{"MemoryMax", "TasksMax"} {
		if u[k] == "" {
			t.Errorf("no %s", k)
		}
	}
	// Options that would break namespace creation or the id maps.
	for _, k := range []string{"RestrictNamespaces", "PrivateUsers", "SystemCallFilter", "ProtectKernelTunables", "ProtectControlGroups", "ProtectProc", "ProcSubset", "PrivateDevices", "ProtectHostname", "RestrictSUIDSGID", "LockPersonality"} {
		if v, ok := u[k]; ok && v != "no" && v != "" {
			t.Errorf("%s=%s: it breaks namespace creation or the subordinate id map (see the unit's comments)", k, v)
		}
	}
}

// TestCIMakesTheTestUserFirst: .ci/run makes the test user (and its
// subordinate ids) before its first go test, since the root pass has a
// test of that user (TestUnitBoundingSetKeepsSubordinateIDs below). On a
// fresh machine CI once failed because the user came only before the
// ordinary-user pass.
func TestCIMakesTheTestUserFirst(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(testenv.SourceRoot(), ".ci", "run"))
	if err != nil {
		t.Fatal(err)
	}
	useradd, subuid, gotest := -1, -1, -1
	for i, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "#"):
		case useradd < 0 && strings.Contains(l, "useradd"):
			useradd = i
		case subuid < 0 && strings.Contains(l, "--add-subuids"):
			subuid = i
		case gotest < 0 && strings.HasPrefix(l, "go test"):
			gotest = i
		}
	}
	if useradd < 0 || subuid < 0 || gotest < 0 {
		t.Fatalf(".ci/run: useradd at line %d, --add-subuids at %d, the first go test at %d: one is missing", useradd+1, subuid+1, gotest+1)
	}
	if useradd > gotest || subuid > gotest {
		t.Errorf(".ci/run makes the test user (line %d) or its subordinate ids (line %d) after its first go test (line %d)", useradd+1, subuid+1, gotest+1)
	}
}

// TestUnitBoundingSetKeepsSubordinateIDs: under the unit's
// CapabilityBoundingSet, the setuid newuidmap and newgidmap still map a
// container's subordinate ids (the runtime's own TestSubIDMap, as the
// test user), and without any one of its capabilities they do not.
func TestUnitBoundingSetKeepsSubordinateIDs(t *testing.T) {
	if os.Getuid() != 0 {
		// Not this user's test, as TestNprocChargedToTheServer is not
		// root's: CI runs it in its root pass.
		t.Log("does not apply: only root may shrink a capability bounding set and become the test user (CI runs it as root)")
		return
	}
	setpriv := testenv.NeedCommand(t, "setpriv")
	testenv.NeedCommand(t, "newuidmap")
	const who = "playground-ci"
	if _, err := user.Lookup(who); err != nil {
		testenv.Skipf(t, "no user %s with subordinate ids (.ci/run makes it): %v", who, err)
	}
	caps := strings.Fields(unitSettings(t)["CapabilityBoundingSet"])
	if len(caps) == 0 {
		t.Fatal("the unit sets no CapabilityBoundingSet")
	}
	bin := filepath.Join(t.TempDir(), "runtime.test")
	goCmd(t, "test", "-c", "-o", bin, "./runtime")
	for d := filepath.Dir(bin); d != filepath.Clean(os.TempDir()) && d != "/"; d = filepath.Dir(d) {
		_ = os.Chmod(d, 0o755) // the test user runs it
	}
	run := func(keep []string) ([]byte, error) {
		set := "-all"
		for _, c := range keep {
			set += ",+" + strings.ToLower(strings.TrimPrefix(c, "CAP_"))
		}
		cmd := exec.Command(setpriv, "--reuid="+who, "--regid="+who, "--init-groups", "--bounding-set="+set, bin, "-test.run=^TestSubIDMap$", "-test.count=1", "-test.v")
		cmd.Dir = filepath.Dir(bin)
		cmd.Env = append(os.Environ(), "PLAYGROUND_TEST_STRICT=1", "HOME=/tmp")
		return cmd.CombinedOutput()
	}
	if out, err := run(caps); err != nil || !bytes.Contains(out, []byte("--- PASS: TestSubIDMap")) {
		t.Fatalf("under CapabilityBoundingSet=%s: %v\n%s", strings.Join(caps, " "), err, out)
	}
	for _, c := range caps {
		less := slices.DeleteFunc(slices.Clone(caps), func(x string) bool { return x == c })
		if out, err := run(less); err == nil {
			t.Errorf("without %s the map still works: the bounding set keeps more than it needs\n%s", c, out)
		}
	}
}
