package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/guntainer/playground/internal/testenv"
)

// TestDevNodes lists, from inside a live container of each mode, every
// entry of its /dev, and compares it with the exact set the README
// promises: the six harmless character devices (the host's, bound), a new
// devpts instance with the program's own terminal, the session's shm, and
// the usual symlinks; nothing else.
func TestDevNodes(t *testing.T) {
	want := []string{
		"fd -> /proc/self/fd",
		"full char 1:7",
		"null char 1:3",
		"ptmx -> pts/ptmx",
		"pts dir devpts",
		"pts/0 char 136:0", // the program's terminal, the first of its own devpts
		"pts/ptmx char 5:2",
		"random char 1:8",
		"shm dir tmpfs",
		"stderr -> /proc/self/fd/2",
		"stdin -> /proc/self/fd/0",
		"stdout -> /proc/self/fd/1",
		"tty char 5:0",
		"urandom char 1:9",
		"zero char 1:5",
	}
	for _, m := range testModes(t) {
		t.Run(m.name, func(t *testing.T) {
			rootfs := attackRootfs(t, m)
			out, st := runMode(t, m, Spec{Rootfs: rootfs, Args: []string{"/bin/attacker", "list-dev"}})
			if st.Code != 0 || strings.Contains(out, "ESCAPED") {
				t.Fatalf("list /dev: %v:\n%s", st, out)
			}
			var got []string
			for _, l := range strings.Split(out, "\n") {
				if e, ok := strings.CutPrefix(l, "dev "); ok {
					got = append(got, e)
				}
			}
			sort.Strings(got)
			if d := diffLines(want, got); d != "" {
				t.Errorf("/dev in the container, -want +got:\n%s", d)
			}
		})
	}
}

// TestProcMasks reads, from inside a live container of each mode, every
// path the runtime masks or makes read-only, where this kernel has it: a
// masked file reads empty and is the null device, a masked directory
// lists nothing and is an empty read-only tmpfs, and nothing can be
// created in a read-only directory (EROFS). A path this kernel lacks is
// named in the log, not passed over in silence. kcore, keys, timer_list,
// sched_debug, sysrq-trigger and /sys/firmware are also tried by the
// escape suite; they are here so that the list is the README's, whole.
func TestProcMasks(t *testing.T) {
	var args, missing []string
	for _, p := range []string{"/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
		"/proc/latency_stats", "/proc/sysrq-trigger", "/proc/interrupts"} {
		if fi, err := os.Stat(p); err != nil || fi.IsDir() {
			missing = append(missing, p)
			continue
		}
		args = append(args, "FILE:"+p)
	}
	for _, p := range []string{"/proc/acpi", "/proc/asound", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"} {
		fi, err := os.Stat(p)
		if err != nil || !fi.IsDir() {
			missing = append(missing, p)
			continue
		}
		if es, _ := os.ReadDir(p); len(es) == 0 {
			// Empty here too: only the mount (a tmpfs, read-only) tells
			// the mask from the kernel's own directory.
			t.Logf("%s is empty on this host: its mask is seen as a read-only tmpfs only", p)
		}
		args = append(args, "DIR:"+p)
	}
	for _, p := range []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys"} {
		if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
			missing = append(missing, p)
			continue
		}
		args = append(args, "RO:"+p)
	}
	for _, p := range missing {
		t.Logf("this kernel has no %s: not checked", p)
	}
	if len(args) == 0 {
		testenv.Skipf(t, "this kernel has none of the masked paths")
	}
	for _, m := range testModes(t) {
		t.Run(m.name, func(t *testing.T) {
			rootfs := attackRootfs(t, m)
			out, st := runMode(t, m, Spec{Rootfs: rootfs, Args: append([]string{"/bin/attacker", "masks"}, args...)})
			if strings.Contains(out, "ESCAPED") || st.Code != 0 || !strings.Contains(out, "refused") {
				t.Errorf("%v:\n%s", st, out)
			}
			t.Logf("%s", out)
		})
	}
}

// diffLines is a line diff of two sorted lists, "" when they are equal.
func diffLines(want, got []string) string {
	w, g := map[string]bool{}, map[string]bool{}
	for _, s := range want {
		w[s] = true
	}
	for _, s := range got {
		g[s] = true
	}
	var d []string
	for _, s := range want {
		if !g[s] {
			d = append(d, "-"+s)
		}
	}
	for _, s := range got {
		if !w[s] {
			d = append(d, "+"+s)
		}
	}
	if len(d) == 0 && len(want) != len(got) {
		d = append(d, fmt.Sprintf("an entry twice: %d entries, want %d", len(got), len(want)))
	}
	return strings.Join(d, "\n")
}

// TestAptSandboxSetting: a container with only its root mapped (the
// single-id map) finds in its /etc/apt/apt.conf.d the setting that keeps
// apt from dropping to _apt, an id it does not have; a container with a
// range of ids does not (apt drops to _apt there). The file is written in
// the container's own layer: the rootfs on the host never has it.
func TestAptSandboxSetting(t *testing.T) {
	const name = "etc/apt/apt.conf.d/00playground-sandbox"
	const setting = `APT::Sandbox::User "root";`
	type tc struct {
		name     string
		m        hostMode
		shift    bool // give the rootfs to the subordinate ids' root (forMode)
		singleID bool
	}
	var cases []tc
	for _, m := range testModes(t) {
		single := os.Getuid() != 0 && !m.subIDs()
		cases = append(cases, tc{m.name, m, true, single})
		if m.subIDs() {
			// A rootfs the server's user owns falls back to the single-id
			// map, with subordinate ids too.
			cases = append(cases, tc{m.name + " with the server user's rootfs", m, false, true})
		}
	}
	if os.Getuid() == 0 {
		t.Log("as root every container has a range of the pool: the single-id map is the ordinary user's run (playground-ci)")
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rootfs := busyboxRootfs(t)
			if err := os.MkdirAll(filepath.Join(rootfs, "etc/apt/apt.conf.d"), 0o755); err != nil {
				t.Fatal(err)
			}
			if c.shift {
				rootfs = forMode(t, c.m, rootfs)
			}
			before := treeState(t, rootfs)
			out, st := runMode(t, c.m, Spec{Rootfs: rootfs, Args: sh("cat /" + name + " 2>&1; cat /proc/self/uid_map")})
			if st.Code != 0 {
				t.Fatalf("%v:\n%s", st, out)
			}
			has := strings.Contains(out, setting)
			if has != c.singleID {
				t.Errorf("single-id map %v, but the setting in the container: %v:\n%s", c.singleID, has, out)
			}
			if _, err := os.Lstat(filepath.Join(rootfs, name)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the host's rootfs has %s after the container: %v", name, err)
			}
			if after := treeState(t, rootfs); after != before {
				t.Errorf("the host's rootfs changed:\n-%s\n+%s", before, after)
			}
			t.Logf("%s", out)
		})
	}
}

// TestOneFileSystemForTheSession reads a live container's mountinfo and
// counts the file systems made for it (those whose device the host's
// mountinfo lacks): the session's disk is its only tmpfs (/dev, /tmp,
// /dev/shm and the masked directories are binds of it), beside its
// overlay, /proc, /sys and devpts. Every file system the kernel makes
// costs every memory cgroup on the host a slot for as long as the host
// runs (DiskLayout), so a session makes no more than these five.
func TestOneFileSystemForTheSession(t *testing.T) {
	host := map[string]bool{}
	for _, m := range mountinfo(t, readFile(t, "/proc/self/mountinfo")) {
		host[m.dev] = true
	}
	for _, m := range testModes(t) {
		for _, rootfs := range []struct{ name, dir string }{{"busybox", ""}, {"host", HostRootfs}} {
			t.Run(m.name+"/"+rootfs.name, func(t *testing.T) {
				dir := rootfs.dir
				if dir == "" {
					dir = busyboxRootfs(t)
				}
				out, st := runMode(t, m, Spec{Rootfs: dir, Args: []string{"/bin/cat", "/proc/self/mountinfo"}})
				if st.Code != 0 {
					t.Fatalf("%v:\n%s", st, out)
				}
				own := map[string][]string{} // device: where, of which type
				for _, mi := range mountinfo(t, out) {
					if !host[mi.dev] {
						own[mi.dev] = append(own[mi.dev], mi.fstype+" on "+mi.target)
					}
				}
				types := map[string]int{}
				for _, ms := range own {
					types[strings.Fields(ms[0])[0]]++
				}
				if types["tmpfs"] != 1 || len(own) > 5 {
					t.Errorf("%d file systems of its own (%d tmpfs), want at most 5 with one tmpfs: %v\n%s", len(own), types["tmpfs"], own, out)
				}
				t.Logf("its own file systems: %v", own)
			})
		}
	}
}

type mountEntry struct{ dev, target, fstype string }

// mountinfo parses /proc/PID/mountinfo's text.
func mountinfo(t *testing.T, text string) []mountEntry {
	t.Helper()
	var ms []mountEntry
	for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
		f := strings.Fields(l)
		sep := slices.Index(f, "-")
		if len(f) < 5 || sep < 0 || sep+1 >= len(f) {
			t.Fatalf("not a mountinfo line: %q", l)
		}
		ms = append(ms, mountEntry{dev: f[2], target: f[4], fstype: f[sep+1]})
	}
	return ms
}
