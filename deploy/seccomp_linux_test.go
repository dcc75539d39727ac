package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/guntainer/playground/internal/testenv"
	"github.com/guntainer/playground/runtime"
	"github.com/guntainer/playground/runtime/seccomp"
)

// The shipped pod profile is checked the way a node applies it: a process
// sets no_new_privs, installs the profile's filter (compiled as runc's
// libseccomp would: a call the profile does not name gets EPERM) and
// executes the server's code, which then starts real containers.

const (
	envUnderProfile = "PLAYGROUND_DEPLOY_UNDER_PROFILE" // the profile's path: apply it, then exec the arguments
	envSession      = "PLAYGROUND_DEPLOY_SESSION"       // "1": start one container running the arguments
)

// maybeUnderProfile is the wrapper: with envUnderProfile set it applies
// the profile to itself and executes os.Args[1:], never returning.
func maybeUnderProfile() {
	path := os.Getenv(envUnderProfile)
	if path == "" {
		return
	}
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "under profile:", err)
		os.Exit(125)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		fail(err)
	}
	var p specs.LinuxSeccomp
	if err := json.Unmarshal(b, &p); err != nil {
		fail(err)
	}
	f, err := seccomp.CompileProfile(&p, goruntime.GOARCH, false)
	if err != nil {
		fail(err)
	}
	// One thread sets no_new_privs and installs the filter, then
	// executes: the new program has them on every thread it makes.
	goruntime.LockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		fail(err)
	}
	if err := f.Install(); err != nil {
		fail(err)
	}
	env := make([]string, 0, len(os.Environ()))
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, envUnderProfile+"=") {
			env = append(env, e)
		}
	}
	fail(syscall.Exec(os.Args[1], os.Args[1:], env))
}

// maybeSession is the one-session program: with envSession=1 it starts a
// container (host rootfs) running os.Args[1:] as a pod's server starts a
// session (the program as PID 1), copies its terminal to stdout, and
// exits with its exit code; a failed start exits 124.
func maybeSession() {
	if os.Getenv(envSession) != "1" {
		return
	}
	c, err := runtime.Start(runtime.Spec{Rootfs: runtime.HostRootfs, Hostname: "under-profile", Args: os.Args[1:], StateDir: os.Getenv("PLAYGROUND_STATE_DIR"), ProgramIsInit: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start:", err)
		os.Exit(124)
	}
	_, _ = io.Copy(os.Stdout, c) // ends when the program's terminal closes
	st, err := c.Wait()
	_ = c.Close() // ended already; Close only releases
	if err != nil {
		fmt.Fprintln(os.Stderr, "wait:", err)
		os.Exit(124)
	}
	os.Exit(st.Code)
}

// underProfile runs argv under the profile at path, via the wrapper.
func underProfile(t *testing.T, path string, env []string, argv ...string) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, argv...)
	cmd.Env = append(append(os.Environ(), envUnderProfile+"="+path), env...)
	return cmd
}

// sessionUnderProfile starts a container running script under the
// profile at path and returns its terminal output, or the error.
func sessionUnderProfile(t *testing.T, path, script string) (string, error) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	state := stateDir(t)
	cmd := underProfile(t, path, []string{envSession + "=1", "PLAYGROUND_STATE_DIR=" + state}, self, "/bin/sh", "-c", script)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	done := make(chan struct{})
	var out []byte
	go func() {
		out, err = cmd.Output()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("a session under the profile did not end within 60 s; stderr:\n%s", stderr.String())
	}
	if err != nil {
		return string(out), fmt.Errorf("%v; stderr: %s", err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// stateDir is a state directory for containers, reachable by the pool
// uids a root server runs them as.
func stateDir(t testing.TB) string {
	t.Helper()
	state := filepath.Join(t.TempDir(), "state")
	if os.Getuid() == 0 {
		for d := filepath.Dir(state); d != filepath.Clean(os.TempDir()) && d != "/"; d = filepath.Dir(d) {
			_ = os.Chmod(d, 0o711) // best effort; Check says what is wrong
		}
	}
	return state
}

func needUserNamespaces(t *testing.T) {
	t.Helper()
	if err := runtime.Check(runtime.Spec{Rootfs: runtime.HostRootfs, StateDir: stateDir(t)}); err != nil {
		testenv.Skipf(t, "containers cannot start here: %v", err)
	}
}

// TestPodProfileRunsASession: a real container starts under the shipped
// profile, runs a program, and its program sees the playground's own
// filter on top (Seccomp: 2, NoNewPrivs: 1, two filters).
func TestPodProfileRunsASession(t *testing.T) {
	if goruntime.GOARCH != "amd64" && goruntime.GOARCH != "arm64" {
		testenv.Skipf(t, "the profile is for amd64 and arm64, not %s", goruntime.GOARCH)
	}
	needUserNamespaces(t)
	out, err := sessionUnderProfile(t, profileFile(t), `echo "host=$(hostname) id=$(id -u)"; grep -E '^(NoNewPrivs|Seccomp|Seccomp_filters):' /proc/self/status`)
	if err != nil {
		t.Fatalf("a session under seccomp/playground.json: %v\noutput:\n%s", err, out)
	}
	for _, want := range []string{"host=under-profile id=0", "NoNewPrivs:\t1", "Seccomp:\t2", "Seccomp_filters:\t2"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestPodProfileNeedsEveryCall: without any one of the probed PodNeeds, a
// container does not start, so the list holds nothing it does not need
// (and the start above shows it holds all it needs).
func TestPodProfileNeedsEveryCall(t *testing.T) {
	if goruntime.GOARCH != "amd64" && goruntime.GOARCH != "arm64" {
		testenv.Skipf(t, "the profile is for amd64 and arm64, not %s", goruntime.GOARCH)
	}
	needUserNamespaces(t)
	for _, need := range PodNeeds {
		if need.Probe == "" || need.Probe == "root" && os.Getuid() != 0 {
			continue
		}
		t.Run(need.Names, func(t *testing.T) {
			p, err := PodProfile()
			if err != nil {
				t.Fatal(err)
			}
			drop := strings.Fields(need.Names)
			for i := range p.Syscalls {
				p.Syscalls[i].Names = slices.DeleteFunc(p.Syscalls[i].Names, func(n string) bool { return slices.Contains(drop, n) })
			}
			b, err := json.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "without.json")
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := sessionUnderProfile(t, path, "echo started")
			if err == nil {
				t.Fatalf("a container started without %s: %q; PodNeeds lists it as needed", need.Names, out)
			}
			if !strings.Contains(err.Error(), "operation not permitted") {
				t.Errorf("without %s: want a start refused with EPERM, got %v", need.Names, err)
			}
			t.Logf("without %s: %v", need.Names, err)
		})
	}
}

// TestRuntimeTestsUnderPodProfile runs the runtime package's own tests
// in a process under the shipped profile, as the server runs in its pod.
// Three are left out, each for a reason of its own: TestPosture (and
// TestPostureWithoutSpawner, its checks with init forked by the server)
// counts the program's seccomp filters and finds the pod's on top of the
// playground's (two, by design); TestEscapes adds a key to the test's
// own keyring to show a container cannot read it, and docker's profile
// refuses add_key to the test process itself; TestSubIDMap maps
// subordinate ids with the setuid newuidmap, which no_new_privs (set with
// the profile, as a pod's allowPrivilegeEscalation: false does) makes
// powerless: a server in a pod maps its one id, as the image has no
// /etc/subuid entry.
func TestRuntimeTestsUnderPodProfile(t *testing.T) {
	if goruntime.GOARCH != "amd64" && goruntime.GOARCH != "arm64" {
		testenv.Skipf(t, "the profile is for amd64 and arm64, not %s", goruntime.GOARCH)
	}
	needUserNamespaces(t)
	bin := filepath.Join(t.TempDir(), "runtime.test")
	goCmd(t, "test", "-c", "-o", bin, "./runtime")
	if err := os.Chmod(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	// Strict off in the child: the subordinate-id modes cannot run under
	// no_new_privs (see above), and their tests skip saying so; every
	// other skip is checked below and fails this test. TestCgroupV2Limits
	// is left out too: where cgroup v2 has no controllers it boots a VM,
	// whose tests are of a kernel, not of the pod's profile.
	cmd := underProfile(t, profileFile(t), []string{"PLAYGROUND_TEST_STRICT="}, bin, "-test.count=1", "-test.v", "-test.skip", "^(TestPosture|TestPostureWithoutSpawner|TestEscapes|TestSubIDMap|TestCgroupV2Limits)$")
	cmd.Dir = filepath.Dir(bin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the runtime's tests under seccomp/playground.json: %v\nfailed:\n%s\n%s", err, failures(out), tail(out, 60))
	}
	if bad := skipsNotFor(out, "no_new_privs"); bad != "" {
		t.Fatalf("runtime tests skipped under the profile for another reason than no_new_privs:\n%s", bad)
	}
	if n := bytes.Count(out, []byte("\n--- PASS: ")); n < 10 {
		t.Fatalf("only %d runtime tests passed under the profile:\n%s", n, tail(out, 60))
	}
	t.Logf("%d runtime tests passed under the pod profile", bytes.Count(out, []byte("\n--- PASS: ")))
}

// tail is the last n lines of b.
func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// failures picks the lines of a test binary's -test.v output that name a
// failed test, with the few lines each logged after it.
func failures(out []byte) string {
	var b strings.Builder
	lines := strings.Split(string(out), "\n")
	for i, l := range lines {
		name, ok := strings.CutPrefix(strings.TrimSpace(l), "--- FAIL: ")
		if !ok {
			continue
		}
		// What the test logged: -test.v prints it between the test's RUN
		// line and its FAIL line (at most 30 lines of it here).
		name, _, _ = strings.Cut(name, " ")
		from := i
		for j := i - 1; j >= 0 && i-j <= 30; j-- {
			if strings.TrimSpace(lines[j]) == "=== RUN   "+name {
				from = j
				break
			}
		}
		for _, m := range lines[from : i+1] {
			b.WriteString(m + "\n")
		}
	}
	return b.String()
}

// skipsNotFor lists the skipped tests of a -test.v output whose reason
// mentions none of whys.
func skipsNotFor(out []byte, whys ...string) string {
	var b strings.Builder
	lines := strings.Split(string(out), "\n")
	for i, l := range lines {
		if !strings.Contains(l, "--- SKIP") {
			continue
		}
		// The reason is logged on the lines before the SKIP line, after
		// the test's RUN line.
		reason := ""
		for j := i - 1; j >= 0 && !strings.Contains(lines[j], "=== RUN") && !strings.Contains(lines[j], "--- "); j-- {
			reason = lines[j] + "\n" + reason
		}
		ok := false
		for _, why := range whys {
			ok = ok || strings.Contains(reason, why)
		}
		if !ok {
			b.WriteString(l + "\n" + reason)
		}
	}
	return b.String()
}
