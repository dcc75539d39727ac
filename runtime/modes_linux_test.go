package runtime

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/guntainer/playground/internal/testenv"
)

// The modes a container runs in here, each tested where this user can run
// it: as root, a range of the pool, without and with cgroups (v1 on the CI
// machine); as an ordinary user, the single-id map and the subordinate ids
// (from /etc/subuid, which .ci/run gives the test user), with rlimits, and
// for the limits a delegated v2 cgroup where one is (in a VM here).
//
// Each list ends with the mode of a server's sessions, the program as the
// container's PID 1 in place of init (Spec.ProgramIsInit), on the Host a
// server would have.
type hostMode struct {
	name string
	host *Host // nil: Start's default Host (no cgroups, no subordinate ids)
	// programIsInit: Spec.ProgramIsInit, no resident init.
	programIsInit bool
}

func (m hostMode) cgroups() bool { return m.host != nil && m.host.cgroups != nil }
func (m hostMode) subIDs() bool  { return m.host != nil && m.host.subIDs != nil }

// testModes are this user's modes. The Hosts are shared by the whole test
// binary (one parent cgroup, one prepared host root each) and closed at
// its end, before the leak check.
func testModes(t *testing.T) []hostMode {
	t.Helper()
	if os.Getuid() == 0 {
		return []hostMode{{name: "pool"}, {name: "pool+cgroup", host: cgroupHost(t)},
			{name: "pool+cgroup+program-as-init", host: cgroupHost(t), programIsInit: true},
			{name: "pool+cgroup-v2+program-as-init", host: cgroupV2Host(t), programIsInit: true}}
	}
	return []hostMode{{name: "single-id"}, {name: "subuid", host: subuidHost(t)},
		{name: "subuid+program-as-init", host: subuidHost(t), programIsInit: true}}
}

// limitModes are the two ways limits are enforced: cgroups (root) or
// rlimits and a nice level (either).
func limitModes(t *testing.T) []hostMode {
	t.Helper()
	if os.Getuid() == 0 {
		h := cgroupHost(t)
		// v1 here; v2 in the VM of TestCgroupV2Limits.
		return []hostMode{{name: "rlimits"}, {name: fmt.Sprintf("cgroup-v%d", h.cgroups.version), host: h}}
	}
	modes := []hostMode{{name: "rlimits+single-id"}}
	if os.Getenv(inVMEnv) == "" {
		// (The VM's ordinary user is there for the delegated cgroup
		// below, which it uses with its subordinate ids; the rlimits
		// modes, on the VM's busybox root, are this machine's.)
		modes = append(modes, hostMode{name: "rlimits+subuid", host: subuidHost(t)})
	}
	if h := delegatedHost(t); h != nil {
		modes = append(modes, hostMode{name: fmt.Sprintf("cgroup-v%d", h.cgroups.version), host: h})
	}
	return modes
}

var shared struct {
	mu          sync.Mutex
	cg, sub, v2 *Host
	// delegated: an ordinary user's Host with cgroups, where a v2
	// subtree is delegated to it (TestCgroupV2Limits's VM; systemd
	// Delegate=yes); tried once.
	delegated     *Host
	delegatedOnce bool
}

// delegatedHost is an ordinary user's Host with the sessions' cgroups in a
// v2 subtree delegated to it, as a server under systemd's Delegate=yes
// has; nil where none is (the CI machine: said once).
func delegatedHost(t *testing.T) *Host {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.delegatedOnce {
		shared.delegatedOnce = true
		h, err := NewHost(HostOptions{StateDir: testStateDir(t), CgroupName: testCgroupName(), NoSubIDs: true})
		if err != nil {
			t.Fatalf("NewHost: %v", err)
		}
		if h.cgroups == nil {
			t.Logf("no delegated cgroup for uid %d (%s): its limit modes are rlimits'; TestCgroupV2Limits's VM tests a delegated one", os.Getuid(), h.ModeLines()[0])
			_ = h.Close()
			return nil
		}
		shared.delegated = h
	}
	return shared.delegated
}

// cgroupHost is a Host with the sessions' cgroups, as a server run as root
// has: required of root here.
func cgroupHost(t *testing.T) *Host {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.cg == nil {
		h, err := NewHost(HostOptions{StateDir: testStateDir(t), CgroupName: testCgroupName(), Log: func(m string) { fmt.Fprintln(os.Stderr, "runtime:", m) }})
		if err != nil {
			t.Fatalf("NewHost: %v", err)
		}
		if h.cgroups == nil {
			_ = h.Close()
			t.Fatalf("as root, no cgroups: %s", h.ModeLines()[0])
		}
		shared.cg = h
	}
	return shared.cg
}

// testCgroupName is this test binary's parent cgroup: playground-PID, the
// name a server's has, so that a crashed test run's is removed by the next
// one like a crashed server's.
func testCgroupName() string { return cgroupPrefix + strconv.Itoa(os.Getpid()) }

// subuidHost is a Host with the subordinate ids of /etc/subuid, as a
// server run by an ordinary user whom it grants a range has.
func subuidHost(t *testing.T) *Host {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.sub == nil {
		h, err := NewHost(HostOptions{StateDir: testStateDir(t), NoCgroups: true})
		if err != nil {
			t.Fatalf("NewHost: %v", err)
		}
		if h.subIDs == nil {
			_ = h.Close()
			testenv.Skipf(t, "no subordinate ids for uid %d: %s", os.Getuid(), h.ModeLines()[1])
		}
		shared.sub = h
	}
	return shared.sub
}

// closeSharedHosts closes the shared Hosts and removes what the
// subordinate ids' root owns in the state dir (the server user cannot).
func closeSharedHosts() error {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	var errs []string
	for _, h := range []*Host{shared.cg, shared.sub, shared.v2, shared.delegated} {
		if h == nil {
			continue
		}
		if err := closeTestHostLocked(h); err != nil {
			errs = append(errs, err.Error())
		}
	}
	shared.cg, shared.sub, shared.v2, shared.delegated = nil, nil, nil, nil
	// Start's default Hosts keep the lock files of the pool's ranges
	// they let go (root): the leak check comes after them.
	defaultHosts.Range(func(k, h any) bool {
		_ = h.(*Host).Close()
		defaultHosts.Delete(k)
		return true
	})
	if len(errs) > 0 {
		return fmt.Errorf("close the tests' hosts: %s", strings.Join(errs, "; "))
	}
	return nil
}

// forMode adapts a rootfs made by the test (owned by the test's user) to
// the mode: with subordinate ids it is given to the slice's root, as a
// rootfs unpacked through their map would be, and taken back at the end.
func forMode(t *testing.T, m hostMode, rootfs string) string {
	t.Helper()
	if !m.subIDs() {
		return rootfs
	}
	sh := &shifter{exe: m.host.exe, ids: m.host.subIDs}
	if err := sh.chown(rootfs); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sh.remove(rootfs); err != nil {
			t.Errorf("remove the shifted rootfs: %v", err)
		}
	})
	return rootfs
}

// startMode starts a container in mode m.
func startMode(t *testing.T, m hostMode, spec Spec) *Container {
	t.Helper()
	spec.Host = m.host
	spec.ProgramIsInit = m.programIsInit
	return start(t, spec)
}

// runMode runs a container in mode m to its end.
func runMode(t *testing.T, m hostMode, spec Spec) (string, ExitStatus) {
	t.Helper()
	spec.Host = m.host
	spec.ProgramIsInit = m.programIsInit
	return run(t, spec)
}

// containerCgroupDirs are the session cgroup's directories (one per v1
// hierarchy), to see them go.
func containerCgroupDirs(c *Container) []string {
	if c.cg == nil {
		return nil
	}
	return c.cg.dirList()
}

func anyExists(paths []string) []string {
	var got []string
	for _, p := range paths {
		if _, err := os.Lstat(p); err == nil {
			got = append(got, p)
		}
	}
	return got
}

// closeTestHost closes a Host of the tests and removes the prepared host
// root that the subordinate ids' root owns in the tests' state dir, which
// the test user could not remove with it; but not while the shared
// subordinate-id Host, which prepared the same one (it is named by its
// content), goes on using it: closeSharedHosts removes that one.
func closeTestHost(h *Host) error {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	return closeTestHostLocked(h)
}

func closeTestHostLocked(h *Host) error {
	err := h.Close()
	if h.subIDs != nil && h.subHostRoot != nil {
		if dir, serr := h.subHostRoot(); serr == nil && !sharedSubRoot(h, dir) {
			if _, serr := os.Stat(dir); serr == nil {
				sh := &shifter{exe: h.exe, ids: h.subIDs}
				if rerr := sh.remove(dir); rerr != nil && err == nil {
					err = rerr
				}
			}
		}
	}
	return err
}

// sharedSubRoot says whether dir is the prepared host root of the shared
// subordinate-id Host, h being another Host.
func sharedSubRoot(h *Host, dir string) bool {
	if shared.sub == nil || shared.sub == h || shared.sub.subHostRoot == nil {
		return false
	}
	d, err := shared.sub.subHostRoot()
	return err == nil && d == dir
}
