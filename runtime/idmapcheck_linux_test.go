package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRootStateDirIDMappable: root's containers map their ids with an
// id-mapped mount of what the state dir holds, which Linux before 6.3
// cannot make of a tmpfs, and /run, root's default, is one on Debian 12,
// whose kernel is 6.1. There the default moves to a disk's directory, said
// at start, and containers start; a tmpfs state dir asked for fails at
// start, saying why and what to do. Run here, on a newer kernel, and in
// TestCgroupV2Limits's VM, on 6.1, whose root file system is a tmpfs.
func TestRootStateDirIDMappable(t *testing.T) {
	if os.Getuid() != 0 || !initialUserNS() {
		t.Log("the pool and its id-mapped mounts are root's: covered by the root run")
		return
	}
	tmpfs := tmpfsDir(t)
	canTmpfs := kernelAtLeast(6, 3)
	t.Logf("Linux %s: tmpfs id-mappable: %v", kernelRelease(), canTmpfs)

	// The default state dir on a tmpfs.
	disk, err := os.MkdirTemp("", "playground-disk-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(disk) })
	if err := os.Chmod(disk, 0o711); err != nil { // container root reaches in
		t.Fatal(err)
	}
	defDir, fallback := filepath.Join(tmpfs, "default"), filepath.Join(disk, "fallback")
	saved := [2]string{rootStateDir, rootStateFallback}
	rootStateDir, rootStateFallback = defDir, fallback
	t.Cleanup(func() { rootStateDir, rootStateFallback = saved[0], saved[1] })
	h, err := NewHost(HostOptions{NoCgroups: true})
	if err != nil {
		t.Fatalf("NewHost with the default state dir on a tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = h.RemoveStateDir() })
	want := defDir
	if !canTmpfs {
		want = fallback
		if lines := strings.Join(h.ModeLines(), "\n"); !strings.Contains(lines, "state dir: "+fallback+", not "+defDir+" (tmpfs") {
			t.Errorf("the move is not said at start:\n%s", lines)
		}
	}
	if h.StateDir() != want {
		t.Errorf("state dir %s, want %s", h.StateDir(), want)
	}
	// The Spec names the state dir asked for, the default, as a server's
	// does (it failed "the Host's is ..." once the Host had moved).
	c := start(t, Spec{Host: h, StateDir: defDir, Rootfs: HostRootfs, Args: sh("echo up $(id -u)")})
	readAll(c).waitFor(t, "up 0")
	_ = c.Close()

	// A tmpfs state dir asked for.
	asked := filepath.Join(tmpfs, "asked")
	h2, err := NewHost(HostOptions{StateDir: asked, NoCgroups: true})
	if canTmpfs {
		if err != nil {
			t.Fatalf("NewHost with a tmpfs state dir on Linux %s: %v", kernelRelease(), err)
		}
		_ = h2.RemoveStateDir()
		return
	}
	if err == nil {
		_ = h2.RemoveStateDir()
		t.Fatalf("NewHost with a tmpfs state dir on Linux %s: no error, and every start would fail", kernelRelease())
	}
	for _, s := range []string{asked, "tmpfs", "from 6.3", "--state-dir", "ordinary user"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("the error does not say %q: %v", s, err)
		}
	}
	t.Logf("asked for a tmpfs state dir: %v", err)
}

// tmpfsDir is a new directory on a tmpfs, removed at the test's end.
func tmpfsDir(t *testing.T) string {
	t.Helper()
	for _, base := range []string{"/dev/shm", "/run", "/"} {
		var st unix.Statfs_t
		if unix.Statfs(base, &st) != nil || uint32(st.Type) != unix.TMPFS_MAGIC {
			continue
		}
		d, err := os.MkdirTemp(base, "playground-tmpfs-")
		if err != nil {
			continue
		}
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(d) })
		return d
	}
	t.Fatal("no tmpfs to make a directory on: /dev/shm, /run, /")
	return ""
}

// kernelAtLeast reports whether the running kernel is major.minor or later.
func kernelAtLeast(major, minor int) bool {
	var ma, mi int
	_, _ = fmt.Sscanf(kernelRelease(), "%d.%d", &ma, &mi)
	return ma > major || ma == major && mi >= minor
}
