package runtime

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/guntainer/playground/internal/testenv"
	"github.com/moby/sys/capability"
	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// Each abuse of issue 7, in a real container of every mode this user has
// (cgroups as root, rlimits and a nice level as either), beside another
// container that must keep answering while it goes on: the other's answer
// times are reported, and only a generous bound is asserted (output.waitFor's
// ten seconds). Afterwards nothing of the abuser may be left: no process,
// cgroup or mount point.

// abuse is one attack and what it must come to.
type abuse struct {
	spec Spec
	// until says the attack has done what it does (or the container
	// ended); the test then ends it, if it still runs.
	until func(c *Container, out string) bool
	// each, when set, runs at every check of the other container, while
	// the attack goes on.
	each func(t *testing.T, c *Container)
}

type abuseResult struct {
	out    string
	status ExitStatus
	times  []time.Duration // the other container's answers
}

// contain runs a in mode m beside another container and checks that the
// other keeps answering and that nothing of a is left after it.
func contain(t *testing.T, m hostMode, a abuse) abuseResult {
	t.Helper()
	other := newBystander(t, m, HostRootfs)
	other.check(t)
	mounts := readFile(t, "/proc/self/mountinfo")

	c := startMode(t, m, a.spec)
	o := readAll(c)
	var res abuseResult
	deadline := time.Now().Add(60 * time.Second)
	for {
		res.times = append(res.times, other.check(t))
		if a.each != nil {
			a.each(t, c)
		}
		ended := false
		select {
		case <-c.Done():
			ended = true
		default:
		}
		if ended || a.until(c, o.String()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the attack did not get anywhere in 60 s; output:\n%s", tail(o.String()))
		}
		time.Sleep(100 * time.Millisecond)
	}
	procs := descendants(c.Pid())
	cgDirs := containerCgroupDirs(c)
	_ = c.Close()
	st, err := c.Wait()
	if err != nil {
		t.Fatal(err)
	}
	<-o.done
	res.out, res.status = strings.ReplaceAll(o.String(), "\r\n", "\n"), st
	res.times = append(res.times, other.check(t))

	// Nothing left: the processes seen (the kernel ends the whole pid
	// namespace with its init), the cgroup, a mount.
	var alive []string
	for _, p := range procs {
		if processAlive(p.pid, p.start) {
			alive = append(alive, strconv.Itoa(p.pid))
		}
	}
	if len(alive) > 0 {
		t.Errorf("processes of the container still run: %v", alive)
	}
	if left := anyExists(cgDirs); len(left) > 0 {
		t.Errorf("cgroups left: %v", left)
	}
	if got := readFile(t, "/proc/self/mountinfo"); got != mounts {
		t.Errorf("the host's mounts changed:\n%s", lineDiff(mounts, got))
	}
	t.Logf("the other container answered in %s", durations(res.times))
	return res
}

type procID struct {
	pid   int
	start uint64
}

// descendants are pid and every process below it, by their parent links.
func descendants(pid int) []procID {
	kids := map[int][]int{}
	_ = eachProcess(func(st procfs.ProcStat) {
		kids[st.PPID] = append(kids[st.PPID], st.PID)
	})
	var out []procID
	seen := map[int]bool{}
	for todo := []int{pid}; len(todo) > 0; {
		p := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if seen[p] {
			continue
		}
		seen[p] = true
		todo = append(todo, kids[p]...)
		if st, err := processStart(p); err == nil {
			out = append(out, procID{p, st})
		}
	}
	return out
}

func durations(ds []time.Duration) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return "(never)"
	}
	return fmt.Sprintf("%d checks: median %v, max %v", len(s), s[len(s)/2].Round(10*time.Microsecond), s[len(s)-1].Round(10*time.Microsecond))
}

// lineDiff lists the lines only a has (-) and only b has (+).
func lineDiff(a, b string) string {
	as, bs := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for _, l := range as {
		if !slices.Contains(bs, l) {
			out = append(out, "-"+l)
		}
	}
	for _, l := range bs {
		if !slices.Contains(as, l) {
			out = append(out, "+"+l)
		}
	}
	return strings.Join(out, "\n")
}

func tail(s string) string {
	if len(s) > 2000 {
		return "..." + s[len(s)-2000:]
	}
	return s
}

// TestForkBomb also bombs at the smallest process limit, where a resident
// init whose program fills the limit at once must not be left without a
// thread: it crashed once ("runtime/cgo: pthread_create failed"), when it
// made the threads it needs first only under rlimits.
func TestForkBomb(t *testing.T) {
	for _, m := range limitModes(t) {
		for _, pids := range []int{minPids, 64} {
			t.Run(fmt.Sprintf("%s/pids-%d", m.name, pids), func(t *testing.T) { forkBomb(t, m, pids) })
		}
	}
}

func forkBomb(t *testing.T, m hostMode, pids int) {
	l := Limits{Pids: pids}
	most, checks := 0, 0
	res := contain(t, m, abuse{
		spec: Spec{Limits: l, Args: sh(`echo bombing; f() { f | f & }; f; sleep 1000`)},
		// With a cgroup the bomb ends the session; without one,
		// RLIMIT_NPROC holds it at the limit, and it goes on
		// until the test ends it.
		until: func(c *Container, out string) bool {
			checks++
			// (At the smallest limit the bomb burns out sooner.)
			return !m.cgroups() && strings.Count(out, "Cannot fork") > 10*pids/64 && checks > 20
		},
		each: func(t *testing.T, c *Container) {
			st, err := c.Stats()
			if err != nil {
				return // ended meanwhile
			}
			most = max(most, st.Processes)
			if !m.cgroups() && st.Processes > l.Pids {
				t.Errorf("%d processes in the container, above its limit of %d", st.Processes, l.Pids)
			}
		},
	})
	t.Logf("at most %d processes seen; %v; output %q", most, res.status, tail(res.out))
	if m.cgroups() {
		// The watcher ends the session with SIGKILL once it sees
		// the limit hit; on v1, which it polls four times a
		// second, the shell may end first, of its own fork of
		// sleep refused at the limit (exit status 2: seen under
		// load). The reason says which limit either way.
		want := fmt.Sprintf("process limit %d reached", pids)
		killed := res.status.Signal == 9
		shellFailed := res.status.Code == 2 && strings.Contains(res.out, "Cannot fork")
		if res.status.Reason != want || !killed && !shellFailed {
			t.Errorf("exit: %+v, want reason %q, and SIGKILL or the shell's exit for a refused fork", res.status, want)
		}
	} else if res.status.Reason != "" {
		t.Errorf("reason %q without a cgroup, which is the only one to tell", res.status.Reason)
	}
}

// TestForkBombAcrossUids: a session that starts processes as one of its
// user ids after another. RLIMIT_NPROC counts per user id, so without a
// pids cgroup a session of 32 processes had 32 for each of its 65536 user
// ids, all charged to the server's uid as well (as an ordinary user; as
// root, to host root, whose limit the kernel does not apply): one session
// could take every process the server's uid may have, and the server then
// could not start a thread, a container, or anything. Where a session's
// user namespace is its own (spawnOwner, spawnerNS), the limit of its
// owner's count, which the kernel takes from the spawner's soft
// RLIMIT_NPROC at the clone, is --pids: the session's processes together.
// With a pids cgroup that cgroup holds it. A single-id session has one
// user id.
func TestForkBombAcrossUids(t *testing.T) {
	for _, m := range limitModes(t) {
		t.Run(m.name, func(t *testing.T) {
			l := Limits{Pids: 32}
			most := 0
			res := contain(t, m, abuse{
				spec:  Spec{Rootfs: attackRootfs(t, m), Limits: l, Args: []string{"/bin/attacker", "fork-uids", "4"}},
				until: func(c *Container, out string) bool { return strings.Contains(out, "held ") },
				each: func(t *testing.T, c *Container) {
					if st, err := c.Stats(); err == nil {
						most = max(most, st.Processes)
					}
				},
			})
			var n int
			if i := strings.Index(res.out, "held "); i >= 0 {
				_, _ = fmt.Sscanf(res.out[i:], "held %d", &n)
			}
			t.Logf("held %d processes; at most %d seen; %v", n, most, res.status)
			if n >= l.Pids || most > l.Pids {
				t.Errorf("the session held %d processes beside itself (at most %d seen), above its limit of %d:\n%s", n, most, l.Pids, tail(res.out))
			}
			if m.cgroups() && res.status.Reason != l.PidsReason() {
				t.Errorf("exit: %+v, want reason %q", res.status, l.PidsReason())
			}
		})
	}
}

func TestMemoryBomb(t *testing.T) {
	for _, m := range limitModes(t) {
		t.Run(m.name, func(t *testing.T) {
			// tail keeps the last ten lines, and /dev/zero is one endless
			// line: it holds all it reads.
			res := contain(t, m, abuse{
				spec: Spec{Limits: Limits{Memory: modeMemory(m, 64<<20)}, Args: sh(`echo hogging; head -c 1048576000 /dev/zero | tail >/dev/null; echo "survived $?"; sleep 1000`)},
				// With a cgroup the session must end by itself, the
				// moment the limit is hit; without, tail fails and the
				// shell goes on.
				until: func(c *Container, out string) bool { return !m.cgroups() && strings.Contains(out, "survived") },
			})
			t.Logf("%v; output %q", res.status, tail(res.out))
			if m.cgroups() {
				if want := "memory limit 64 MiB reached"; res.status.Reason != want || res.status.Signal != 9 {
					t.Errorf("exit: %+v, want SIGKILL and reason %q", res.status, want)
				}
				return
			}
			// RLIMIT_DATA: tail's allocation fails; the session goes on.
			if !strings.Contains(res.out, "survived 1") || !strings.Contains(res.out, "emory exhausted") {
				t.Errorf("without a cgroup, want tail to fail for memory and the shell to go on:\n%s", res.out)
			}
		})
	}
}

func TestDiskFill(t *testing.T) {
	const script = `
for f in /tmp/a /root/b /dev/shm/c; do dd if=/dev/zero of=$f bs=1M count=64 2>&1 | grep -o 'No space left on device'; done
echo "used $(cat /tmp/a /root/b /dev/shm/c | wc -c)"
rm -f /tmp/a /root/b /dev/shm/c
i=0; while printf '' 2>/dev/null >/tmp/e$i; do i=$((i+1)); done; echo "files $i"
rm -rf /tmp/* 2>/dev/null
dd if=/dev/zero of=/root/sparse bs=1k count=1 seek=20480 2>/dev/null; echo "sparse $?"
echo done; sleep 1000`
	for _, m := range limitModes(t) {
		t.Run(m.name, func(t *testing.T) {
			l := Limits{Disk: 16 << 20}
			res := contain(t, m, abuse{
				spec:  Spec{Limits: l, Args: sh(script)},
				until: func(c *Container, out string) bool { return strings.Contains(out, "done") },
			})
			out := res.out
			t.Logf("%s", out)
			// The writable layer, /tmp and /dev/shm share the 16 MiB: the
			// three files together, never three times.
			if n := strings.Count(out, "No space left on device"); n != 3 {
				t.Errorf("want each of the three writes to end with ENOSPC, got %d:\n%s", n, out)
			}
			var used, files int
			for _, l := range strings.Split(out, "\n") {
				fmt.Sscanf(l, "used %d", &used)
				fmt.Sscanf(l, "files %d", &files)
			}
			if used < 12<<20 || used > 16<<20 {
				t.Errorf("bytes written before ENOSPC: %d, want about 16 MiB together", used)
			}
			if files < 1000 || int64(files) > l.DiskInodes() {
				t.Errorf("empty files made before ENOSPC: %d, want at most the inode limit %d", files, l.DiskInodes())
			}
			// A file larger than the disk, even a sparse one: RLIMIT_FSIZE
			// (dd dies of SIGXFSZ: 128+25).
			if !strings.Contains(out, "sparse 153") {
				t.Errorf("a sparse file of 20 MiB on a 16 MiB disk: want SIGXFSZ (153):\n%s", out)
			}
		})
	}
}

func TestOutputFlood(t *testing.T) {
	for _, m := range limitModes(t) {
		t.Run(m.name, func(t *testing.T) {
			var seen int
			res := contain(t, m, abuse{
				spec: Spec{Args: sh(`yes flood`)},
				until: func(c *Container, out string) bool {
					seen++
					return seen > 20 // some twenty checks of the other while it floods
				},
			})
			if n := strings.Count(res.out, "flood\n"); n < 1000 {
				t.Errorf("the flood printed %d lines, want it to have flowed", n)
			}
		})
	}
}

func TestCPUSpinners(t *testing.T) {
	for _, m := range limitModes(t) {
		t.Run(m.name, func(t *testing.T) {
			var seen int
			var first, last time.Time
			var cpu0, cpu1 float64
			res := contain(t, m, abuse{
				spec: Spec{Limits: Limits{CPUs: 0.5}, Args: sh(`for i in 1 2 3 4; do (while :; do :; done) & done; echo spinning; wait`)},
				until: func(c *Container, out string) bool {
					seen++
					return seen > 20
				},
				each: func(t *testing.T, c *Container) {
					if s := cpuSeconds(c.Pid()); first.IsZero() {
						first, cpu0 = time.Now(), s
					} else {
						last, cpu1 = time.Now(), s
					}
				},
			})
			if !strings.Contains(res.out, "spinning") {
				t.Errorf("the spinners did not start:\n%s", res.out)
			}
			// A figure, not an assertion: the quota (cgroup) or nothing
			// (rlimits, where the spinners are only niced) holds them.
			t.Logf("the spinners used %.2f CPUs (limit 0.5 with a cgroup)", (cpu1-cpu0)/last.Sub(first).Seconds())
		})
	}
}

// TestPtyExhaustion: the kernel has one pool of pseudo-terminals for the
// whole machine (kernel.pty.max less kernel.pty.reserve: 3072 by default),
// and every session's terminal comes from it. A session that opens
// terminals until it is refused gets its Limits.Ptys (its own terminal
// included) and no more, and while it holds them a new session still
// gets its terminal. Before the limit, one session took all 3072 and every
// start after it failed with "open pty: no space left on device".
func TestPtyExhaustion(t *testing.T) {
	// Each terminal is held by a sleep of its own (fd 3); the shell waits
	// for each open to be done (the fd is there) or refused (the child
	// has exited: a zombie, or gone where the shell reaps at once, as
	// busybox's does) before the next, so the count is exact.
	const script = `n=0
while [ $n -lt 40 ]; do
	sleep 1000 3<>/dev/ptmx &
	p=$!
	while :; do
		[ -e /proc/$p/fd/3 ] && { n=$((n+1)); break; }
		[ -d /proc/$p ] || break 2
		set -- $(cat /proc/$p/stat 2>/dev/null); [ "$3" = Z ] && break 2
	done
done
echo "opened $n more"; echo held; wait`
	const ptys = 8
	for _, m := range limitModes(t) {
		t.Run(m.name, func(t *testing.T) {
			held := false
			fresh := ""
			res := contain(t, m, abuse{
				spec: Spec{Limits: Limits{Ptys: ptys}, Args: sh(script)},
				each: func(t *testing.T, c *Container) {
					if held && fresh == "" {
						// A new session while the attacker holds its ptys.
						out, st := runMode(t, m, Spec{Args: sh("tty")})
						if fresh = strings.TrimSpace(out); fresh == "" || st.Code != 0 {
							t.Fatalf("a new session while the attacker holds its ptys: %q, %v", out, st)
						}
					}
				},
				until: func(c *Container, out string) bool {
					held = strings.Contains(out, "held")
					return fresh != ""
				},
			})
			t.Logf("%s", res.out)
			if want := fmt.Sprintf("opened %d more", ptys-1); !strings.Contains(res.out, want) {
				t.Errorf("want %q (its own terminal is the %dth):\n%s", want, ptys, res.out)
			}
			if !strings.Contains(res.out, "No space left on device") {
				t.Errorf("want the refused open's ENOSPC:\n%s", res.out)
			}
			if fresh != "/dev/pts/0" {
				t.Errorf("the new session's terminal: %q, want /dev/pts/0 (its own instance)", fresh)
			}
		})
	}
}

// TestInotifyExhaustion: the kernel charges a session's inotify instances
// to its user namespace and to every one above it, up to the server's uid
// in the host's, which has fs.inotify.max_user_instances (128 by default)
// for every session and, for a server as root, every root process of the
// host. A session that takes instances until it is refused gets its
// user namespace's cap (sessionInotifyInstances) and no more; while it
// holds them a second session gets as many, and the server's uid still
// gets one. Before the cap, one session took all the host allowed.
func TestInotifyExhaustion(t *testing.T) {
	for _, m := range testModes(t) {
		t.Run(m.name, func(t *testing.T) {
			rootfs := attackRootfs(t, m)
			held := func(c *Container, o *output) int {
				t.Helper()
				o.waitFor(t, "held ")
				var n int
				var why string
				_, err := fmt.Sscanf(o.String()[strings.Index(o.String(), "held "):], "held %d %s", &n, &why)
				if err != nil || n > sessionInotifyInstances || why != "too" {
					t.Errorf("want at most %d instances, then EMFILE (too many open files): %q", sessionInotifyInstances, o.String())
				}
				return n
			}
			a := startMode(t, m, Spec{Rootfs: rootfs, Args: []string{"/bin/attacker", "inotify"}})
			ao := readAll(a)
			first := held(a, ao)
			b := startMode(t, m, Spec{Rootfs: rootfs, Args: []string{"/bin/attacker", "inotify"}})
			bo := readAll(b)
			second := held(b, bo)
			if second == 0 {
				t.Errorf("a second session got no inotify instance while the first held %d", first)
			}
			fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
			if err != nil {
				t.Errorf("the server's uid while two sessions hold theirs: %v", err)
			} else {
				_ = unix.Close(fd)
			}
			t.Logf("held %d and %d (cap %d)", first, second, sessionInotifyInstances)
			letGo(t, "refused", a, ao, b, bo)
		})
	}
}

// TestSharedCountsPerSession: counts the kernel keeps per user, which it
// charges at every user-namespace level up to the host's: to the user id
// inside the session, and to the namespace's owner, the user that made
// it. Until 2026-12-04 every session's namespace was the server's uid's,
// and a session inherited the server's RLIMIT_SIGPENDING and
// RLIMIT_MSGQUEUE: one session queued 96,369 real-time signals (this
// machine's limit) or 800 KB of message queues, and then no other session
// and no process of the server's uid (root: of the host) could queue one;
// switching among its user ids, one session took the 128 inotify instances
// of the server's uid the per-namespace cap of 16 was to keep it from. Now
// init sets RLIMIT_SIGPENDING and RLIMIT_MSGQUEUE per user id of the
// session, and each session's namespace is its own uid's (spawnOwner,
// spawnerNS), so that the counts of all its user ids add up there, apart
// from the other sessions' and the host's.
//
// The attacker takes what it can, as several of its user ids in turn
// where its namespace is its own; a second session then still gets its
// own share, and so does the server's uid. An ordinary user can make a
// namespace only as its own uid; with subordinate ids its spawner runs in
// a namespace of its own and makes each session's as one of that
// namespace's ids (spawnerNS). Without them (the single-id map) a session
// has one user id: the attacker stays at it.
func TestSharedCountsPerSession(t *testing.T) {
	type count struct {
		attack string
		share  int          // what the second session must get
		server func() error // the server's uid takes one
	}
	counts := []count{
		{"inotify-uids", sessionInotifyInstances, func() error {
			fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
			if err == nil {
				_ = unix.Close(fd)
			}
			return err
		}},
		{"sigqueue-uids", sessionSigPending, queueSignalToSelf},
		{"mqueue-uids", 1, openMessageQueue},
	}
	modes := testModes(t)
	for _, m := range limitModes(t) {
		if m.name == "cgroup-v2" && os.Getuid() != 0 {
			// A delegated v2 subtree (TestCgroupV2Limits's VM), where
			// the spawner clones into the session's cgroup from its own
			// namespace.
			modes = append(modes, m)
		}
	}
	for _, m := range modes {
		for _, ct := range counts {
			t.Run(m.name+"/"+ct.attack, func(t *testing.T) {
				// As many user ids as it takes to pass the kernel's limit
				// per user (fs.inotify.max_user_instances 128 at 16 each
				// here) had the owner been the server's uid, where the
				// namespace is the session's own: as root, and through a
				// spawner in a namespace of its own (spawnerNS).
				s, err := theSpawner()
				own := os.Getuid() == 0 || err == nil && s.ns != nil
				if m.subIDs() && !own {
					why := err
					if p := spawnerNSErr.Load(); p != nil {
						why = *p
					}
					t.Errorf("with subordinate ids the spawner has no user namespace of its own (%v): every session's is the server's uid's", why)
				}
				hop := "10"
				if !own {
					hop = "1"
				}
				rootfs := attackRootfs(t, m)
				held := func(o *output) int {
					t.Helper()
					o.waitFor(t, "held ")
					var n int
					_, err := fmt.Sscanf(o.String()[strings.Index(o.String(), "held "):], "held %d", &n)
					if err != nil {
						t.Fatalf("%v: %q", err, o.String())
					}
					return n
				}
				a := startMode(t, m, Spec{Rootfs: rootfs, Args: []string{"/bin/attacker", ct.attack, hop}})
				ao := readAll(a)
				first := held(ao)
				b := startMode(t, m, Spec{Rootfs: rootfs, Args: []string{"/bin/attacker", ct.attack, "1"}})
				bo := readAll(b)
				second := held(bo)
				if own {
					// The session's namespace is its own host uid's: as root
					// its root's; else an id of the spawner's namespace.
					owners := map[int]bool{}
					for _, c := range []*Container{a, b} {
						owner, root := userNSOwner(t, c.Pid())
						owners[owner] = true
						if os.Getuid() == 0 && owner != root || owner == os.Getuid() {
							t.Errorf("session's user namespace owned by host uid %d (its root %d, the server %d)", owner, root, os.Getuid())
						}
					}
					if len(owners) != 2 {
						t.Errorf("two sessions' user namespaces have one owner: %v", owners)
					}
				}
				if second < ct.share {
					t.Errorf("a second session got %d, not its %d, while the first held %d:\n%s", second, ct.share, first, bo.String())
				}
				if err := ct.server(); err != nil {
					t.Errorf("the server's uid, while two sessions hold %d and %d: %v", first, second, err)
				}
				t.Logf("held %d as %s user ids, and %d", first, hop, second)
				letGo(t, "", a, ao, b, bo)
			})
		}
	}
}

// letGo ends the attacks of a and b, which hold what they took until a
// line comes: each must end with status 0, its output holding want.
func letGo(t *testing.T, want string, a *Container, ao *output, b *Container, bo *output) {
	t.Helper()
	for _, s := range []struct {
		c *Container
		o *output
	}{{a, ao}, {b, bo}} {
		_, _ = s.c.Write([]byte("\n"))
		<-s.o.done
		if st, _ := s.c.Wait(); st.Code != 0 || !strings.Contains(s.o.String(), want) {
			t.Errorf("%v:\n%s", st, s.o.String())
		}
	}
}

// userNSOwner returns the owner of pid's user namespace and the host uid
// of its root.
func userNSOwner(t *testing.T, pid int) (owner, root int) {
	t.Helper()
	owner, err := userNSOwnerUID(pid)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", pid))
	if err != nil {
		t.Fatal(err)
	}
	var inside, host, size int
	if _, err := fmt.Sscan(string(b), &inside, &host, &size); err != nil || inside != 0 {
		t.Fatalf("uid_map %q: %v", b, err)
	}
	return owner, host
}

// userNSOwnerUID is the uid that owns pid's user namespace.
func userNSOwnerUID(pid int) (int, error) {
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/user", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	var uid uint32
	const nsGetOwnerUID = 0xb704 // _IO(0xb7, 0x4)
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), nsGetOwnerUID, uintptr(unsafe.Pointer(&uid))); e != 0 {
		return 0, fmt.Errorf("NS_GET_OWNER_UID: %w", e)
	}
	return int(uid), nil
}

// procUID is pid's real uid, from /proc/PID/status.
func procUID(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "Uid:"); ok {
			return strconv.Atoi(strings.Fields(rest)[0])
		}
	}
	return 0, fmt.Errorf("no Uid in /proc/%d/status", pid)
}

// queueSignalToSelf queues a real-time signal to a thread of this process
// that blocks it, and takes it back: what RLIMIT_SIGPENDING counts.
func queueSignalToSelf() error {
	goruntime.LockOSThread()
	defer goruntime.UnlockOSThread()
	const sig = 40
	var set, old unix.Sigset_t
	addSignal(&set, sig)
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &set, &old); err != nil {
		return err
	}
	defer unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
	info := [32]uint32{sig, 0, ^uint32(0)} // SI_QUEUE
	if _, _, e := unix.RawSyscall6(unix.SYS_RT_TGSIGQUEUEINFO, uintptr(unix.Getpid()), uintptr(unix.Gettid()), sig, uintptr(unsafe.Pointer(&info)), 0, 0); e != 0 {
		return fmt.Errorf("rt_tgsigqueueinfo: %w", e)
	}
	var ts unix.Timespec
	if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGTIMEDWAIT, uintptr(unsafe.Pointer(&set)), 0, uintptr(unsafe.Pointer(&ts)), 8, 0, 0); e != 0 {
		return fmt.Errorf("rt_sigtimedwait: %w", e)
	}
	return nil
}

// addSignal adds sig to set, whose words are 32 bits on some
// architectures and 64 on others.
func addSignal(set *unix.Sigset_t, sig int) {
	bits := int(unsafe.Sizeof(set.Val[0])) * 8
	set.Val[(sig-1)/bits] |= 1 << uint((sig-1)%bits)
}

// openMessageQueue makes a POSIX message queue of the kernel's default
// size in this process's IPC namespace, and removes it: what
// RLIMIT_MSGQUEUE counts.
func openMessageQueue() error {
	name, _ := unix.BytePtrFromString(fmt.Sprintf("playground-test-%d", os.Getpid()))
	attr := [8]int64{0, 10, 8192, 0}
	fd, _, e := unix.Syscall6(unix.SYS_MQ_OPEN, uintptr(unsafe.Pointer(name)), unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600, uintptr(unsafe.Pointer(&attr)), 0, 0)
	if e != 0 {
		return fmt.Errorf("mq_open: %w", e)
	}
	_ = unix.Close(int(fd))
	_, _, _ = unix.Syscall(unix.SYS_MQ_UNLINK, uintptr(unsafe.Pointer(name)), 0, 0)
	return nil
}

// TestSocketMemory: a session that queues data to itself over TCP on its
// loopback, reading none, holds kernel memory in socket buffers. A v1
// memory cgroup counts it only with memory.kmem.tcp.limit_in_bytes set
// (tcpMemoryV1): before that one session of 512 MiB queued 2.3 GB, past
// the kernel's limit for every socket of the machine (net.ipv4.tcp_mem).
// v2 counts it in the session's memory: this one ends at its memory limit
// (in TestCgroupV2Limits's VM). Without a cgroup nothing counts it
// (README, Limits).
func TestSocketMemory(t *testing.T) {
	var modes []hostMode
	for _, m := range limitModes(t) {
		if m.cgroups() {
			modes = append(modes, m)
		}
	}
	if len(modes) == 0 {
		t.Log("no cgroup mode for this user here: socket memory is a cgroup's to count, and nothing does without one")
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			l := Limits{Memory: 64 << 20}
			c := startMode(t, m, Spec{Rootfs: attackRootfs(t, m), Limits: l, Args: []string{"/bin/attacker", "tcp-fill", "300"}})
			o := readAll(c)
			if m.host.cgroups.version == 2 {
				// Counted in memory.max: the session ends at its memory
				// limit, or holds what it queued within it.
				for !strings.Contains(o.String(), "queued ") {
					select {
					case <-o.more:
						continue
					case <-o.done:
					case <-time.After(30 * time.Second):
						t.Fatalf("no end and no queued after 30 s:\n%s", o.String())
					}
					st, _ := c.Wait()
					if st.Reason != l.MemoryReason() {
						t.Fatalf("the session ended, %v, not at its memory limit:\n%s", st, o.String())
					}
					t.Logf("ended at its memory limit: %v", st)
					return
				}
			}
			o.waitFor(t, "queued ")
			var queued int64
			_, _ = fmt.Sscanf(o.String()[strings.Index(o.String(), "queued "):], "queued %d", &queued)
			t.Logf("queued %d MB in 300 connections to itself (64 MiB session)", queued>>20)
			if queued > 128<<20 {
				t.Errorf("queued %d bytes in sockets, twice the session's memory", queued)
			}
			if m.host.cgroups.version == 1 {
				d := c.cg.dirs["memory"]
				limit, _ := strconv.ParseInt(readString(filepath.Join(d, "memory.kmem.tcp.limit_in_bytes")), 10, 64)
				peak, _ := strconv.ParseInt(readString(filepath.Join(d, "memory.kmem.tcp.max_usage_in_bytes")), 10, 64)
				// Beyond the limit each socket still gets what TCP
				// guarantees it (tcp_wmem[0], tcp_rmem[0]: a segment
				// each), which bounds the rest by the session's files.
				t.Logf("kmem.tcp: limit %d, peak %d", limit, peak)
				if limit != tcpMemoryV1(l.Memory) || peak == 0 {
					t.Errorf("the session's TCP memory: limit %d (want %d), peak %d: want it limited and counted", limit, tcpMemoryV1(l.Memory), peak)
				}
			} else {
				var sock int64
				for _, line := range strings.Split(readString(filepath.Join(c.cg.dir, "memory.stat")), "\n") {
					_, _ = fmt.Sscanf(line, "sock %d", &sock)
				}
				t.Logf("memory.stat sock %d", sock)
				if sock == 0 {
					t.Errorf("socket memory not counted in the session's memory.stat")
				}
			}
			_, _ = c.Write([]byte("\n"))
		})
	}
}

// cpuSeconds is the CPU time of pid and its descendants (utime and stime).
func cpuSeconds(pid int) float64 {
	var ticks uint
	for _, p := range descendants(pid) {
		if st, err := procStat(p.pid); err == nil {
			ticks += st.UTime + st.STime
		}
	}
	return float64(ticks) / 100 // USER_HZ
}

// TestLimitsVisible reads the limits of a live session where they are
// kept: the program's /proc/PID/limits, nice value and scheduling policy,
// the sizes of its disk from inside, and, with a cgroup, the session
// cgroup's files.
func TestLimitsVisible(t *testing.T) {
	l := Limits{Memory: 100 << 20, Pids: 100, CPUs: 0.5, Disk: 32 << 20, NoFile: 1000, Ptys: 8}
	for _, m := range limitModes(t) {
		t.Run(m.name, func(t *testing.T) {
			l := l
			l.Memory = modeMemory(m, l.Memory)
			c := startMode(t, m, Spec{Limits: l, Args: sh(`stat -f -c '%n %S %b' / /tmp /dev/shm; echo listed; read x`)})
			o := readAll(c)
			o.waitFor(t, "listed")
			pid := strconv.Itoa(programPid(t, c))
			got, want := map[string]string{}, map[string]string{
				"Max core file size": "0 0", "Max open files": "1000 1000", "Max file size": "33554432 33554432",
				"Max realtime priority": "0 0", "Max nice priority": "0 0",
				"Max pending signals": fmt.Sprintf("%d %d", sessionSigPending, sessionSigPending),
				"Max msgqueue size":   fmt.Sprintf("%d %d", sessionMsgQueue, sessionMsgQueue),
			}
			if !m.cgroups() {
				// With a cgroup these are its (below), and the
				// rlimits the server's own.
				want["Max processes"] = "100 100"
				want["Max data size"] = fmt.Sprintf("%d %d", l.Memory, l.Memory)
			}
			for _, line := range strings.Split(readFile(t, "/proc/"+pid+"/limits"), "\n") {
				for name := range want {
					if rest, ok := strings.CutPrefix(line, name+" "); ok {
						got[name] = strings.Join(strings.Fields(rest)[:2], " ")
					}
				}
			}
			// Nice: with a cpu cgroup the session's weight shares the CPU;
			// without, its processes run at SessionNice.
			pidN, _ := strconv.Atoi(pid)
			stat := mustStat(t, pidN)
			got["nice"] = strconv.Itoa(stat.Nice)
			want["nice"] = strconv.Itoa(SessionNice)
			// The batch policy beside the nice level (SessionPolicy).
			got["policy"] = strconv.Itoa(int(stat.Policy))
			want["policy"] = strconv.Itoa(SessionPolicy)
			if m.cgroups() && m.host.cgroups.has("cpu") {
				want["nice"] = "0"
				want["policy"] = "0"
			}
			// One disk of 32 MiB for /, /tmp and /dev/shm (statfs gives the
			// tmpfs's size for the binds, and the overlay's upper for /).
			var sizes []string
			for _, line := range strings.Split(strings.ReplaceAll(o.String(), "\r\n", "\n"), "\n") {
				// stat -f, not df: busybox's df names a bind by
				// another mount of its file system (in the VM).
				if f := strings.Fields(line); len(f) == 3 && strings.HasPrefix(f[0], "/") {
					bsize, _ := strconv.ParseInt(f[1], 10, 64)
					blocks, _ := strconv.ParseInt(f[2], 10, 64)
					sizes = append(sizes, f[0]+"="+strconv.FormatInt(bsize*blocks/1024, 10))
				}
			}
			got["df"] = strings.Join(sizes, " ")
			want["df"] = "/=32768 /tmp=32768 /dev/shm=32768"
			// Its terminals: /dev/pts's max, from the live mount table.
			for _, line := range strings.Split(readFile(t, "/proc/"+pid+"/mountinfo"), "\n") {
				if f := strings.Fields(line); len(f) > 4 && f[4] == "/dev/pts" {
					for _, o := range strings.Split(f[len(f)-1], ",") {
						if v, ok := strings.CutPrefix(o, "max="); ok {
							got["devpts max"] = v
						}
					}
				}
			}
			want["devpts max"] = "8"
			// The first the kernel kills when memory runs out above.
			got["oom_score_adj"] = readString("/proc/" + pid + "/oom_score_adj")
			want["oom_score_adj"] = strconv.Itoa(ContainerOOMScoreAdj)
			if m.cgroups() && m.host.cgroups.version == 1 {
				for file, w := range map[string]string{
					"memory/memory.limit_in_bytes": "104857600", "pids/pids.max": "100",
					"cpu/cpu.cfs_quota_us": "50000", "cpu/cpu.cfs_period_us": "100000", "cpu/cpu.shares": "1024",
				} {
					ctrl, name, _ := strings.Cut(file, "/")
					want[file] = w
					got[file] = readString(filepath.Join(c.cg.dirs[ctrl], name))
				}
			}
			if m.cgroups() && m.host.cgroups.version == 2 {
				// In TestCgroupV2Limits's VM.
				for file, w := range map[string]string{
					"memory.max": "104857600", "memory.swap.max": "0", "memory.oom.group": "1", "pids.max": "100",
					"cpu.max": "50000 100000", "cpu.weight": "100",
				} {
					want[file] = w
					got[file] = readString(filepath.Join(c.cg.dir, file))
				}
			}
			if m.cgroups() {
				// The server stays outside the sessions' parent, beside
				// the sessions as one group (of twice its weight).
				// (A server of a delegated v2 subtree is in a leaf of
				// its own beside the parent, playground-PID-server.)
				parent := filepath.Base(m.host.cgroups.Dir())
				inside := false
				for _, line := range strings.Split(readFile(t, "/proc/self/cgroup"), "\n") {
					if f := strings.SplitN(line, ":", 3); len(f) == 3 {
						inside = inside || slices.Contains(strings.Split(f[2], "/"), parent)
					}
				}
				want["server outside the sessions' parent"] = "true"
				got["server outside the sessions' parent"] = strconv.FormatBool(!inside)
			}
			var diff []string
			for k, w := range want {
				if got[k] != w {
					diff = append(diff, fmt.Sprintf("%s: -%s +%s", k, w, got[k]))
				}
			}
			slices.Sort(diff)
			if len(diff) > 0 {
				t.Errorf("limits of the live session, -want +got:\n%s", strings.Join(diff, "\n"))
			}
			st, err := c.Stats()
			if err != nil || st.Processes < 2 || st.MemoryBytes <= 0 {
				t.Errorf("Stats: %+v, %v; want init, the shell and df's parent, some memory", st, err)
			}
			_, _ = c.Write([]byte("\n"))
		})
	}
}

// TestOOMScoreAdj: a container's processes start with
// ContainerOOMScoreAdj; where the runtime holds the host's
// CAP_SYS_RESOURCE (root, in TestCgroupV2Limits's VM: this machine's root
// lacks it) none of them may lower it, where it does not (an ordinary
// user) it is a hint they may lower.
func TestOOMScoreAdj(t *testing.T) {
	floor := hasCapability(capability.CAP_SYS_RESOURCE)
	t.Logf("as uid %d, CAP_SYS_RESOURCE %v", os.Getuid(), floor)
	for _, m := range limitModes(t) {
		t.Run(m.name, func(t *testing.T) {
			out, st := runMode(t, m, Spec{Args: sh(`cat /proc/self/oom_score_adj; if (echo 0 >/proc/self/oom_score_adj) 2>/dev/null; then echo lowered; else echo refused; fi`)})
			want := []string{strconv.Itoa(ContainerOOMScoreAdj), "lowered"}
			if floor {
				want[1] = "refused"
			}
			if got := strings.Fields(out); !slices.Equal(got, want) || st.Code != 0 {
				t.Errorf("got %q (%v), want %q", got, st, want)
			}
		})
	}
}

// TestHostOOMTakesContainersFirst: when memory runs out above the
// containers, the kernel kills a container's process before a larger one
// of the host's (ContainerOOMScoreAdj), and that container ends with
// HostMemoryReason. A process of the host's holding 100 MiB and a
// container share a memory cgroup of 200 MiB here (the sessions' parent,
// standing in for the server's cgroup or the machine); the container
// grows until that runs out, far below its own limit. Without the
// adjustment the host's process, the larger, was the one killed.
func TestHostOOMTakesContainersFirst(t *testing.T) {
	if os.Getuid() != 0 || !hasV1("memory") {
		t.Logf("as uid %d: needs root and cgroup v1: only a v1 parent may hold a process of the host's beside its sessions (the kernel's choice is the same code on v2, whose end reason TestOutOfMemoryAboveTheSessions tests in the VM)", os.Getuid())
		return
	}
	if raceDataOverhead > 0 {
		t.Log("built with the race detector: the host's process, this binary, would hold its shadow memory too")
		return
	}
	h, err := NewHost(HostOptions{StateDir: testStateDir(t), CgroupName: testCgroupName() + "-hostoom", NoSubIDs: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	if h.cgroups == nil || h.cgroups.version != 1 {
		t.Fatalf("no v1 cgroups: %v", h.cgErr)
	}
	parent := h.cgroups.dirs["memory"]
	writeFile(t, filepath.Join(parent, "memory.limit_in_bytes"), strconv.Itoa(200<<20))

	hold := helperCmd(t, "hold", 100)
	in, err := hold.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	held, err := hold.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := hold.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hold.Process.Kill(); _ = hold.Wait() })
	writeFile(t, filepath.Join(parent, "cgroup.procs"), strconv.Itoa(hold.Process.Pid))
	if _, err := in.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(held).ReadString('\n'); line != "held\n" {
		t.Fatalf("the host's process: %q, %v", line, err)
	}

	c := start(t, Spec{Host: h, Limits: Limits{Memory: 512 << 20}, Args: sh(`head -c 1048576000 /dev/zero | tail >/dev/null; echo "survived $?"; sleep 1000`)})
	o := readAll(c)
	select {
	case <-o.done:
	case <-time.After(time.Minute):
		t.Fatalf("the container did not end within a minute; output:\n%s", o.String())
	}
	st, err := c.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if st.Reason != HostMemoryReason || st.Limit != "host_memory" {
		t.Errorf("the container: %+v, want the reason %q; output:\n%s", st, HostMemoryReason, o.String())
	}
	if !alive(hold.Process.Pid) {
		t.Error("the host's process was killed")
	}
}

// TestCgroupV2EnterAtClone starts a real container into a cgroup v2
// session cgroup with CLONE_INTO_CGROUP, as a server with a delegated v2
// subtree does, forked by the spawner as the server's child. On the CI
// machine the v2 hierarchy has no controllers, so this checks entering,
// killing and removing; the limits are tested in TestCgroupV2Limits's VM,
// where this test runs too.
func TestCgroupV2EnterAtClone(t *testing.T) {
	if os.Getuid() != 0 && os.Getenv(inVMEnv) == "" {
		t.Log("an ordinary user owns no cgroup here: covered by the root run, and the VM's delegated one")
		return
	}
	h := cgroupV2Host(t)
	spawned := spawnedIntoCgroup.Load()
	c := startMode(t, hostMode{name: "v2", host: h}, Spec{Args: sh("echo up; sleep 1000")})
	if got := spawnedIntoCgroup.Load() - spawned; cloneIntoCgroupHere && got != 1 {
		t.Errorf("%d starts into a v2 cgroup forked by the spawner, want this one", got)
	}
	if ppid := statusField(strconv.Itoa(c.Pid()), "PPid"); ppid != strconv.Itoa(os.Getpid()) {
		t.Errorf("init's parent: %s, want this process, %d (CLONE_PARENT)", ppid, os.Getpid())
	}
	o := readAll(c)
	o.waitFor(t, "up")
	var got string
	for _, l := range strings.Split(readFile(t, fmt.Sprintf("/proc/%d/cgroup", c.Pid())), "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok {
			got = p
		}
	}
	if want := "/" + filepath.Base(h.cgroups.Dir()) + "/" + c.ID(); !strings.HasSuffix(got, want) {
		t.Errorf("init's v2 cgroup: %q, want one ending in %q", got, want)
	}
	dirs := containerCgroupDirs(c)
	_ = c.Close()
	if left := anyExists(dirs); len(left) > 0 {
		t.Errorf("cgroup left: %v", left)
	}
}

func cgroupV2Host(t *testing.T) *Host {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.v2 == nil {
		h, err := NewHost(HostOptions{StateDir: testStateDir(t), NoCgroups: true})
		if err != nil {
			t.Fatal(err)
		}
		cg, err := NewCgroups(CgroupOptions{Version: 2, NoControllers: true, Name: testCgroupName()})
		if errors.Is(err, ErrNoCgroup) && !hasV2() {
			_ = h.Close()
			testenv.Skipf(t, "no cgroup v2 hierarchy mounted: %v", err)
		}
		if err != nil {
			_ = h.Close()
			t.Fatal(err)
		}
		h.cgroups = cg
		shared.v2 = h
	}
	return shared.v2
}

func hasV2() bool {
	ms, _ := cgroupMounts("/proc/self/mountinfo")
	for _, m := range ms {
		if m.v2 {
			return true
		}
	}
	return false
}

// TestSubIDStart: with /etc/subuid granting a range, containers of a
// rootfs their root owns (the host rootfs's prepared layer; a tree given
// to them) run as the slice's ids with a full range inside; a rootfs owned
// by the server's user falls back to the single-id map, said once.
func TestSubIDStart(t *testing.T) {
	if os.Getuid() == 0 {
		t.Log("as root, containers get ranges of the pool: subordinate ids are the ordinary user's mode (run as playground-ci)")
		return
	}
	h := subuidHost(t)
	m := hostMode{name: "subuid", host: h}
	base := h.subIDs.UIDBase
	// The map as the host sees it: inside, the ids outside are the
	// spawner's namespace's when it has one (spawnerNS).
	hostMap := func(t *testing.T, m hostMode, spec Spec) (string, string) {
		t.Helper()
		spec.Args = sh(spec.Args[2] + "; echo done; read x")
		c := startMode(t, m, spec)
		o := readAll(c)
		o.waitFor(t, "done")
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", c.Pid()))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write([]byte("\n"))
		<-o.done
		if st, _ := c.Wait(); st.Code != 0 {
			t.Errorf("%v:\n%s", st, o.String())
		}
		return strings.Join(strings.Fields(string(b)), " "), o.String()
	}
	script := `id -u; echo x >> /etc/passwd && echo copied-up; echo y > /tmp/f && chown 1000:1000 /tmp/f && stat -c 'owner %u:%g' /tmp/f`
	check := func(t *testing.T, rootfs string) {
		idmap, out := hostMap(t, m, Spec{Rootfs: rootfs, Args: sh(script)})
		f := strings.Fields(out)
		if len(f) < 1 || f[0] != "0" || idmap != fmt.Sprintf("0 %d 65536", base) ||
			!strings.Contains(out, "copied-up") || !strings.Contains(out, "owner 1000:1000") {
			t.Errorf("uid_map %q:\n%s", idmap, out)
		}
	}
	t.Run("host rootfs", func(t *testing.T) { check(t, HostRootfs) })
	t.Run("rootfs of the slice's root", func(t *testing.T) { check(t, forMode(t, m, busyboxRootfs(t))) })
	t.Run("rootfs of the server's user", func(t *testing.T) {
		var notices []string
		h2, err := NewHost(HostOptions{StateDir: testStateDir(t), NoCgroups: true, Log: func(s string) { notices = append(notices, s) }})
		if err != nil {
			t.Fatal(err)
		}
		defer h2.Close() // the shared subordinate-id Host removes the prepared root they share
		rootfs := busyboxRootfs(t)
		for range 2 {
			idmap, _ := hostMap(t, hostMode{host: h2}, Spec{Rootfs: rootfs, Args: sh("true")})
			if want := fmt.Sprintf("0 %d 1", os.Getuid()); idmap != want {
				t.Errorf("uid_map %q, want the single-id map %q", idmap, want)
			}
		}
		if len(notices) != 1 || !strings.Contains(notices[0], "single-id map") {
			t.Errorf("notices: %q, want one saying the rootfs gets the single-id map", notices)
		}
	})
}

// TestNothingLeftBehindWithLimits: a session ended every way leaves no
// cgroup below the server's parent, and the parent goes with Close.
func TestNothingLeftBehindWithLimits(t *testing.T) {
	if os.Getuid() != 0 && os.Getenv(inVMEnv) == "" {
		t.Log("no cgroups for an ordinary user here: covered by the root run, and the VM's delegated one")
		return
	}
	h, err := NewHost(HostOptions{StateDir: testStateDir(t), CgroupName: testCgroupName() + "-1"})
	if err != nil {
		t.Fatal(err)
	}
	m := hostMode{name: "cgroup", host: h}
	parents := h.cgroups.parentDirs()
	runMode(t, m, Spec{Args: sh("sleep 100 & echo hi")})
	c := startMode(t, m, Spec{Args: sh("echo up; sleep 100")})
	readAll(c).waitFor(t, "up")
	_ = c.Close()
	if _, err := Start(Spec{Args: []string{"nope"}, Host: h}); err == nil {
		t.Fatal("no error")
	}
	for _, p := range parents {
		es, err := os.ReadDir(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if e.IsDir() {
				t.Errorf("session cgroup left: %s", filepath.Join(p, e.Name()))
			}
		}
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if left := anyExists(parents); len(left) > 0 {
		t.Errorf("parent cgroups left after Close: %v", left)
	}
}

// TestStartWhoseCgroupFails: on v1 a session's cgroup is made while its
// init is cloned; when that fails (here: one hierarchy's parent is gone),
// the start fails saying so, with nothing left: init reaped, no session
// cgroup in the hierarchies that had one made, the id range free again.
func TestStartWhoseCgroupFails(t *testing.T) {
	if os.Getuid() != 0 {
		t.Log("no cgroups for an ordinary user here: covered by the root run")
		return
	}
	h, err := NewHost(HostOptions{StateDir: testStateDir(t), CgroupName: testCgroupName() + "-2"})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if h.cgroups.version != 1 {
		testenv.Skipf(t, "the cgroups here are v2, not v1: init starts in its cgroup, made before it, so no cgroup is made beside the clone")
	}
	if err := unix.Rmdir(h.cgroups.dirs["pids"]); err != nil {
		t.Fatal(err)
	}
	kids := func() []string {
		var all []string
		tasks, _ := os.ReadDir("/proc/self/task")
		for _, task := range tasks {
			b, _ := os.ReadFile("/proc/self/task/" + task.Name() + "/children")
			all = append(all, strings.Fields(string(b))...)
		}
		slices.Sort(all)
		return all
	}
	before := kids()
	for _, programIsInit := range []bool{false, true} {
		c, err := Start(Spec{Host: h, ProgramIsInit: programIsInit, Args: sh("echo up")})
		if err == nil {
			_ = c.Close()
			t.Fatalf("programIsInit=%v: started without its pids cgroup", programIsInit)
		}
		if !strings.Contains(err.Error(), "cgroup for session") || !errors.Is(err, os.ErrNotExist) {
			t.Errorf("programIsInit=%v: %v; want the cgroup's error", programIsInit, err)
		}
	}
	if after := kids(); !slices.Equal(before, after) {
		t.Errorf("children of this process: before %v, after %v: a failed start left its init", before, after)
	}
	for ctrl, p := range h.cgroups.dirs {
		es, _ := os.ReadDir(p)
		for _, e := range es {
			if e.IsDir() {
				t.Errorf("%s: session cgroup left: %s", ctrl, filepath.Join(p, e.Name()))
			}
		}
	}
	h.pool.mu.Lock()
	held := len(h.pool.held)
	h.pool.mu.Unlock()
	if held != 0 {
		t.Errorf("%d id ranges still held", held)
	}
}

var _ = exec.Command

// modeMemory is mem, or the smallest memory limit of a resident init
// without a cgroup where mem is below it (checkResidentMemory).
func modeMemory(m hostMode, mem int64) int64 {
	if m.cgroups() || m.programIsInit {
		return mem
	}
	return max(mem, residentMinMemory)
}

// TestInitUnderTheSmallestLimits runs sessions at the smallest memory a
// mode allows and a small process limit. Init holds more address space
// than the smallest limit (its binary's bss, Go's arena index, 8 MiB of
// stack for each thread where the binary uses cgo: 157 MiB, VmData), so
// under RLIMIT_DATA it could map nothing more, and died the next time Go's
// runtime needed memory or a thread, with Go's exit status 2, before it
// was ready or later (CI: TestLimitsVisible/rlimits+subuid as an ordinary
// user, at 100 MiB). In the program's place init sets them last; a
// resident init needs residentMinMemory, and a smaller limit is refused,
// saying so.
func TestInitUnderTheSmallestLimits(t *testing.T) {
	modes := limitModes(t)
	modes = append(modes, hostMode{name: modes[0].name + "+program-as-init", host: modes[0].host, programIsInit: true})
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			l := Limits{Memory: modeMemory(m, minMemory), Pids: 32, Disk: 32 << 20}
			for i := range 10 {
				// Enough of init's work for Go to want more memory: a
				// program that starts others and ends, reaped and
				// reported.
				out, st := runMode(t, m, Spec{Limits: l, Args: sh(`for i in 1 2 3; do /bin/true; done; grep -E '^Max (data size|processes)' /proc/self/limits; echo ran`)})
				if st.Code != 0 || st.Reason != "" || !strings.Contains(out, "ran") {
					t.Fatalf("session %d: %+v, output %q; want it to run and exit 0", i, st, out)
				}
				if m.cgroups() {
					continue
				}
				got := strings.Join(strings.Fields(out), " ")
				for _, w := range []string{fmt.Sprintf("Max data size %d %d", l.Memory, l.Memory), "Max processes 32 32"} {
					if !strings.Contains(got, w) {
						t.Fatalf("session %d: no %q in the program's limits:\n%s", i, w, out)
					}
				}
			}
			if l.Memory == minMemory {
				return
			}
			_, err := Start(Spec{Host: m.host, StateDir: testStateDir(t), Limits: Limits{Memory: minMemory}, Args: sh("true")})
			if err == nil || !strings.Contains(err.Error(), "below the minimum of 256 MiB for a container whose init stays") {
				t.Errorf("Start of a resident init at %s without a cgroup: %v; want it refused", FormatSize(minMemory), err)
			}
		})
	}
}

// TestSysVIPCBounded: each session has its own IPC namespace, which the
// kernel made with its own defaults: kernel.shmall without bound, 32,000
// semaphore sets of up to 32,000 each, 32,000 message queues. Without a
// memory cgroup nothing counted them: in a session of --memory 256M as an
// ordinary user, one process held 2 GiB of the host's memory in shared
// memory segments it had detached (no process's size showed them, so the
// kernel's OOM killer could not free them by killing), and 5 GB of the
// kernel's unreclaimable memory in semaphore sets within seconds. Now init
// sets its namespace's bounds (ipcSysctls): shared memory at most the
// session's memory, sessionSemaphores in all, sessionMsgQueues queues;
// the session cannot raise them (/proc/sys is read-only in it).
func TestSysVIPCBounded(t *testing.T) {
	var modes []hostMode
	for _, m := range limitModes(t) {
		// Both of init's ways: it stays (run's), or the program takes
		// its place (a server's session).
		asInit := m
		asInit.name += "+program-as-init"
		asInit.programIsInit = true
		modes = append(modes, m, asInit)
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			// (run's least memory without a cgroup, where init stays)
			l := Limits{Memory: 256 << 20}
			out, st := runMode(t, m, Spec{Rootfs: attackRootfs(t, m), Limits: l, Args: []string{"/bin/attacker", "sysv-ipc"}})
			t.Logf("%v:\n%s", st, out)
			i := strings.Index(out, "ipc shm ")
			if i < 0 || st.Code != 0 {
				t.Fatalf("%v, want the attempt's counts and refused:\n%s", st, out)
			}
			var shm int64
			var sems, queues int
			if _, err := fmt.Sscanf(out[i:], "ipc shm %d sems %d queues %d", &shm, &sems, &queues); err != nil {
				t.Fatal(err)
			}
			if shm > l.Memory || shm == 0 {
				t.Errorf("shared memory segments of %d bytes in all, want some and at most the session's memory, %d", shm, l.Memory)
			}
			if sems > sessionSemaphores || sems == 0 {
				t.Errorf("%d semaphores, want some and at most %d", sems, sessionSemaphores)
			}
			if queues > sessionMsgQueues || queues == 0 {
				t.Errorf("%d message queues, want some and at most %d", queues, sessionMsgQueues)
			}
			for _, want := range []string{fmt.Sprintf("kernel.shmall %d ", l.Memory/int64(os.Getpagesize())),
				fmt.Sprintf("kernel.msgmni %d ", sessionMsgQueues)} {
				if !strings.Contains(out, want) {
					t.Errorf("/proc/sys in the session: want %q", want)
				}
			}
		})
	}
}
