package runtime

import (
	"os"
	goruntime "runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// TestProgramIsInit checks, from the host, a container started as a
// server starts its sessions' (Spec.ProgramIsInit): the program is PID 1,
// no process of the runtime stays in the container, the program's exit
// status is the container's, and Close and a limit still end it.
func TestProgramIsInit(t *testing.T) {
	for _, m := range testModes(t) {
		if !m.programIsInit {
			continue
		}
		t.Run(m.name, func(t *testing.T) {
			t.Run("pid 1 and nothing else", func(t *testing.T) {
				c := startMode(t, m, Spec{Args: sh(`echo "pid=$$"; exec sleep 1000`)})
				o := readAll(c)
				o.waitFor(t, "pid=1")
				// The shell has executed sleep: the container's one
				// process is sleep, the host's pid of the container, and
				// it has no child (no init forked it, nothing reaps for it).
				var comm string
				deadline := time.Now().Add(10 * time.Second)
				for comm != "sleep" && time.Now().Before(deadline) {
					comm = procComm(t, c.Pid())
					time.Sleep(5 * time.Millisecond)
				}
				if comm != "sleep" {
					t.Fatalf("the container's pid %d runs %q, want sleep", c.Pid(), comm)
				}
				if kids := childrenOf(c.Pid()); len(kids) != 0 {
					t.Errorf("the program has children %v, want none", kids)
				}
				if st := statusField(strconv.Itoa(c.Pid()), "NSpid"); !strings.HasSuffix(st, "\t1") && !strings.HasSuffix(st, " 1") {
					t.Errorf("NSpid %q: want pid 1 in the container's namespace", st)
				}
				if err := c.Close(); err != nil {
					t.Fatal(err)
				}
				st, _ := c.Wait()
				if st.Signal != syscall.SIGKILL {
					t.Errorf("closed: %v, want killed", st)
				}
			})
			t.Run("exit status", func(t *testing.T) {
				out, st := runMode(t, m, Spec{Args: sh("echo bye; exit 7")})
				if st.Code != 7 || !strings.Contains(out, "bye") {
					t.Errorf("got %v, %q; want exit 7 after bye", st, out)
				}
				_, st = runMode(t, m, Spec{Args: sh("kill -SEGV $$; trap - SEGV; kill -SEGV $$; exit 3")})
				// PID 1 ignores the signals it has no handler for, even its
				// own: the shell goes on and exits 3.
				if st.Code != 3 {
					t.Errorf("got %v; want exit 3: PID 1 ignores SIGSEGV without a handler", st)
				}
			})
			t.Run("orphans are reaped by the shell", func(t *testing.T) {
				// A daemon's double fork leaves an orphan to PID 1, the
				// shell, which must reap it when it exits.
				out, st := runMode(t, m, Spec{Args: sh(`(sh -c 'exit 0' &) ; sleep 0.2; ps_zombies=0; for s in /proc/[0-9]*/stat; do read -r l < "$s" 2>/dev/null || continue; case "$l" in *") Z "*) ps_zombies=$((ps_zombies+1));; esac; done; echo "zombies=$ps_zombies"`)})
				if st.Code != 0 || !strings.Contains(out, "zombies=0") {
					t.Errorf("got %v:\n%s", st, out)
				}
			})
		})
	}
}

// TestNothingWaitsPerContainer: a running container holds no goroutine of
// the server's, nor an OS thread blocked in a wait for it; one goroutine
// waits for all of them (the reaper, exits).
func TestNothingWaitsPerContainer(t *testing.T) {
	for _, m := range testModes(t) {
		t.Run(m.name, func(t *testing.T) {
			const n = 30
			var cs []*Container
			for range 3 { // the start's helpers (the id pool, cgroups) settle first
				cs = append(cs, startMode(t, m, Spec{Args: []string{"/bin/sleep", "1000"}}))
			}
			time.Sleep(50 * time.Millisecond)
			g0, t0 := goruntime.NumGoroutine(), threads(t)
			for range n {
				cs = append(cs, startMode(t, m, Spec{Args: []string{"/bin/sleep", "1000"}}))
			}
			time.Sleep(100 * time.Millisecond) // what started with them settles
			g1, t1 := goruntime.NumGoroutine(), threads(t)
			if g1-g0 >= n/2 {
				t.Errorf("%d goroutines with %d more containers, %d before: one per container", g1, n, g0)
			}
			if t1-t0 >= n/2 {
				t.Errorf("%d threads with %d more containers, %d before: one per container", t1, n, t0)
			}
			for _, c := range cs {
				_ = c.Close()
			}
		})
	}
}

// threads is this process's number of OS threads.
func threads(t *testing.T) int {
	t.Helper()
	n, err := strconv.Atoi(statusField("self", "Threads"))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// procComm is a host process's command name, from /proc/PID/stat, which
// any user may read.
func procComm(t *testing.T, pid int) string {
	t.Helper()
	return mustStat(t, pid).Comm
}

// childrenOf lists the host pids whose parent is pid.
func childrenOf(pid int) []string {
	var kids []string
	_ = eachProcess(func(st procfs.ProcStat) {
		if st.PPID == pid {
			kids = append(kids, strconv.Itoa(st.PID))
		}
	})
	return kids
}

// TestABurstHoldsFewThreads starts containers all at once, as a class
// opening one link does. It watches the threads of this process that wait
// in a start's fork and exec (os/exec blocks a thread in a read of a pipe
// until the child has executed, and in waitid until newuidmap ends): no
// more than blockingSlots at any moment, since Go keeps every thread it
// makes (before the slots, a burst of 1,000 sessions left a server with
// about 300 threads). Since the spawner forks init, this process's threads
// wait in none of init's forks (the spawner's do), but where a start is
// forked here (a v2 cgroup, no spawner) and for newuidmap they still
// would. Where the program is init, it also counts the inits that have not
// yet become the program: the starts in flight, no more than startSlots
// (before them, most of the burst at once).
func TestABurstHoldsFewThreads(t *testing.T) {
	for _, m := range testModes(t) {
		t.Run(m.name, func(t *testing.T) {
			const n = 100
			// The inits of earlier tests' containers may still be dying,
			// and their threads still waiting for them (CI once saw one
			// more thread than the slots, as the ordinary user, in the
			// whole package's run only).
			earlier, waiting := inits(nil), threadWaits(nil)
			stop := make(chan struct{})
			type peaks struct{ threads, inits int }
			peak := make(chan peaks)
			go func() {
				var most peaks
				for {
					select {
					case <-stop:
						peak <- most
						return
					default:
					}
					// A scan of /proc takes a while, in which one start's
					// thread may end its wait and the next start's begin
					// one: the threads in the same wait in two scans in a
					// row waited together, between the scans. (CI, as the
					// ordinary user, twice counted 5 against 4 slots in a
					// single scan, none of them waiting before the burst.)
					first, both := threadWaits(waiting), 0
					for tid, call := range threadWaits(waiting) {
						if first[tid] == call {
							both++
						}
					}
					most.threads = max(most.threads, both)
					if m.programIsInit {
						// Likewise for inits: one may become the program
						// and the next start's init appear.
						first, both := inits(earlier), 0
						for pid := range inits(earlier) {
							if first[pid] {
								both++
							}
						}
						most.inits = max(most.inits, both)
					}
					time.Sleep(200 * time.Microsecond)
				}
			}()
			type result struct {
				c   *Container
				err error
			}
			results := make(chan result, n)
			for range n {
				go func() {
					c, err := Start(Spec{Host: m.host, ProgramIsInit: m.programIsInit, StateDir: testStateDir(t),
						Args: []string{"/bin/sleep", "1000"}})
					results <- result{c, err}
				}()
			}
			var errs []error
			for range n {
				r := <-results
				if r.err != nil {
					errs = append(errs, r.err)
					continue
				}
				t.Cleanup(func() { _ = r.c.Close() })
			}
			close(stop)
			most := <-peak
			if len(errs) > 0 {
				t.Fatalf("%d of %d starts failed, the first: %v", len(errs), n, errs[0])
			}
			t.Logf("%d starts at once: at most %d threads waiting in a fork and exec (slots: %d; %d waiting before the burst), %d inits at once (slots: %d)",
				n, most.threads, cap(blockingSlots), len(waiting), most.inits, cap(startSlots))
			if most.threads > cap(blockingSlots) {
				t.Errorf("%d threads waited in a start's fork and exec at once, more than the %d slots (%d waited so before the burst: %v)",
					most.threads, cap(blockingSlots), len(waiting), waiting)
			}
			if most.inits > cap(startSlots) {
				t.Errorf("%d containers were starting at once, more than the %d slots", most.inits, cap(startSlots))
			}
		})
	}
}

// TestAStuckStartGivesItsSlotBack: a start that takes longer than
// startSlotHold lets the next one go.
func TestAStuckStartGivesItsSlotBack(t *testing.T) {
	defer func(h time.Duration) { startSlotHold = h }(startSlotHold)
	startSlotHold = 50 * time.Millisecond
	var releases []func()
	for range cap(startSlots) {
		releases = append(releases, takeStartSlot()) // all of them, stuck
	}
	took := make(chan func())
	go func() { took <- takeStartSlot() }()
	select {
	case r := <-took:
		r()
	case <-time.After(10 * time.Second):
		t.Fatal("no slot came back from starts held past startSlotHold")
	}
	for _, r := range releases {
		r() // a second give-back is a no-op: the slots are all free again
	}
	if n := len(startSlots); n != 0 {
		t.Errorf("%d start slots taken after every start ended", n)
	}
}

// inits lists this process's children that are container inits (argv[0]
// initArg0: executed, and not yet the program), but for those in except.
func inits(except map[string]bool) map[string]bool {
	found := map[string]bool{}
	for _, pid := range childrenOf(os.Getpid()) {
		cmdline, err := os.ReadFile("/proc/" + pid + "/cmdline")
		if arg0, _, _ := strings.Cut(string(cmdline), "\x00"); err == nil && arg0 == initArg0 && !except[pid] {
			found[pid] = true
		}
	}
	return found
}

// threadWaits returns this process's threads that wait in a system call
// of os/exec's: a read of a pipe (Start, until the child has executed) or
// waitid or wait4 (Wait); each as its tid and the system call with its
// first argument, less those in before that still wait in the same call:
// a thread that waited so before a burst began is not one of its starts.
func threadWaits(before map[string]string) map[string]string {
	tasks, _ := os.ReadDir("/proc/self/task")
	waits := map[string]string{}
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + task.Name() + "/syscall")
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) < 2 {
			continue // "running"
		}
		call := f[0] + " " + f[1]
		switch f[0] {
		case strconv.Itoa(unix.SYS_WAITID), strconv.Itoa(unix.SYS_WAIT4):
		case strconv.Itoa(unix.SYS_READ):
			fd, err := strconv.ParseInt(strings.TrimPrefix(f[1], "0x"), 16, 32)
			if err != nil {
				continue
			}
			if l, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(fd))); !strings.HasPrefix(l, "pipe:") {
				continue
			}
		default:
			continue
		}
		if before[task.Name()] != call {
			waits[task.Name()] = call
		}
	}
	return waits
}
