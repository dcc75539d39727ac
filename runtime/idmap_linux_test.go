package runtime

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/guntainer/playground/internal/testenv"
	"golang.org/x/sys/unix"
)

// TestIDPoolBetweenServers: two servers' pools on one state dir (two
// Hosts, each with its own pool and its own lock files' open file
// descriptions, as two processes have) both start their search at the
// same range, and start containers at once: the ranges their inits run in,
// read from /proc, are all different. Then a server's death is played (its
// flock dropped, as the kernel drops it when the process dies) while its
// container lives: the other server passes over that range while the
// container's init exists, and takes it once it has been reaped.
func TestIDPoolBetweenServers(t *testing.T) {
	if os.Getuid() != 0 {
		t.Log("as an ordinary user containers get the subordinate ids or the single-id map, not the pool: covered by the root run (TestIDPoolReuse runs for both)")
		return
	}
	state := testStateDir(t)
	hosts := make([]*Host, 2)
	for i := range hosts {
		h, err := NewHost(HostOptions{StateDir: state, NoCgroups: true})
		if err != nil {
			t.Fatalf("NewHost: %v", err)
		}
		t.Cleanup(func() { _ = h.Close() })
		if h.pool == nil {
			t.Fatalf("as root, no id pool: %s", h.ModeLines())
		}
		hosts[i] = h
	}
	setNext := func(h *Host, n int) { // range n first, not what h let go
		h.pool.mu.Lock()
		h.pool.next, h.pool.let = n, nil
		h.pool.mu.Unlock()
	}
	// Far from where the tests' other Hosts start (pid-based).
	first := (int(uint(os.Getpid()*7919))%poolSlots + poolSlots/2) % poolSlots
	setNext(hosts[0], first)
	setNext(hosts[1], first)

	const each = 4
	type started struct {
		c   *Container
		err error
	}
	res := make(chan started, 2*each)
	for i := 0; i < each; i++ {
		for _, h := range hosts {
			go func() {
				c, err := Start(Spec{Host: h, StateDir: state, Args: sh("read x")})
				res <- started{c, err}
			}()
		}
	}
	var cs []*Container
	for i := 0; i < 2*each; i++ {
		r := <-res
		if r.err != nil {
			t.Errorf("Start: %v", r.err)
			continue
		}
		t.Cleanup(func() { _ = r.c.Close() })
		cs = append(cs, r.c)
	}
	if t.Failed() {
		return
	}
	byUID := map[int]int{}
	for _, c := range cs {
		byUID[hostUID(t, c.Pid())]++
	}
	for uid, n := range byUID {
		if n > 1 {
			t.Errorf("%d containers of two servers share the range at host uid %d: %v", n, uid, byUID)
		}
	}
	t.Logf("%d containers of two servers, starting at the same range, got %d ranges", len(cs), len(byUID))

	// Server 0 "dies": its flock on c's range goes, c's init lives on.
	c := cs[0]
	for _, o := range cs[1:] {
		_ = o.Close() // their ranges are free again: only c's is in the way
	}
	uid := hostUID(t, c.Pid())
	n := (uid - poolBase) / rangeSize
	if err := unix.Flock(int(c.ids.lock.Fd()), unix.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	other := hosts[1]
	if c.host == other {
		other = hosts[0]
	}
	setNext(other, n)
	d, err := Start(Spec{Host: other, StateDir: state, Args: sh("read x")})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if got := hostUID(t, d.Pid()); got == uid {
		t.Errorf("a new container took host uid %d, the range of a container whose init is alive (pid %d)", got, c.Pid())
	}
	_ = d.Close()
	_ = c.Close() // init killed and reaped: its range is free
	setNext(other, n)
	e, err := Start(Spec{Host: other, StateDir: state, Args: sh("read x")})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer e.Close()
	if got := hostUID(t, e.Pid()); got != uid {
		t.Errorf("after its init was reaped, range %d (host uid %d) was not taken again: got host uid %d", n, uid, got)
	}
}

// TestIDPoolReuse follows one range of two pools on one directory (two
// servers) through a container's life, with a real process as its init:
// while the first server holds the range's flock the second passes over
// it; after the first server is gone (its flock dropped) the range still
// names the living init and is passed over; after that init has exited
// but is not yet reaped (a zombie) still; and once it is reaped, the range
// is taken.
func TestIDPoolReuse(t *testing.T) {
	sleep := "/bin/sleep"
	if _, err := os.Stat(sleep); err != nil {
		testenv.Skipf(t, "no /bin/sleep on the host: %v", err)
	}
	dir := t.TempDir()
	a := &idPool{dir: dir, held: map[int]bool{}}
	b := &idPool{dir: dir, held: map[int]bool{}}
	const n = 7
	take := func(what string) int {
		t.Helper()
		b.mu.Lock()
		b.next, b.let = n, nil // range n first, not what b let go
		b.mu.Unlock()
		s, err := b.acquire()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		s.release()
		return s.n
	}

	a.next = n
	s, err := a.acquire()
	if err != nil || s.n != n {
		t.Fatalf("first server: range %v, %v; want %d", s, err, n)
	}
	if got := take("flock held"); got == n {
		t.Fatalf("the second server took range %d while the first holds its flock", n)
	}

	init := exec.Command(sleep, "1000")
	if err := init.Start(); err != nil {
		t.Fatal(err)
	}
	reaped := false
	defer func() {
		if !reaped {
			_ = init.Process.Kill()
			_ = init.Wait()
		}
	}()
	if err := s.claim(init.Process.Pid); err != nil {
		t.Fatal(err)
	}
	s.release() // the first server is gone: its lock file closed, the flock with it
	if got := take("init alive"); got == n {
		t.Errorf("range %d taken while its init (pid %d) is alive", n, init.Process.Pid)
	}

	if err := init.Process.Signal(unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Wait for its exit without reaping it: a zombie.
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PID, init.Process.Pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
		t.Fatal(err)
	}
	if st := procState(init.Process.Pid); st != "Z" {
		t.Fatalf("init's state %q, want a zombie", st)
	}
	if got := take("init a zombie"); got == n {
		t.Errorf("range %d taken while its init (pid %d) is a zombie, not yet reaped", n, init.Process.Pid)
	}

	_ = init.Wait() // reaped: killed, as it should be
	reaped = true
	if got := take("init reaped"); got != n {
		t.Errorf("range %d not taken after its init was reaped: got %d", n, got)
	}
}

// TestIDPoolTakesBackWhatItLetGo checks that a pool tries the ranges it
// let go first, the latest first, and so makes a lock file only for the
// most ranges it held at once: 50 starts and ends, two at a time, leave
// two lock files, where going round the pool left one per start.
func TestIDPoolTakesBackWhatItLetGo(t *testing.T) {
	dir := t.TempDir()
	p := &idPool{dir: dir, held: map[int]bool{}}
	a, err := p.acquire()
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.acquire()
	if err != nil {
		t.Fatal(err)
	}
	if a.n == b.n {
		t.Fatalf("two holders of range %d", a.n)
	}
	for i := range 50 {
		old := a
		old.release()
		if a, err = p.acquire(); err != nil {
			t.Fatal(err)
		}
		if a.n != old.n {
			t.Fatalf("start %d: range %d, want %d, the one just let go", i, a.n, old.n)
		}
		a, b = b, a
	}
	a.release()
	b.release()
	if c, err := p.acquire(); err != nil || c.n != b.n {
		t.Fatalf("after both were let go: %v, %v; want range %d, the latest", c, err, b.n)
	} else {
		c.release()
	}
	files, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 {
		t.Errorf("lock files after 52 starts, at most two at once: %d, want 2", len(files))
	}

	// A range another server holds is passed over, and not tried first
	// again after that.
	other := &idPool{dir: dir, held: map[int]bool{}}
	o, err := other.acquire()
	if err != nil {
		t.Fatal(err)
	}
	defer o.release()
	p.mu.Lock()
	p.let = []int{o.n}
	p.mu.Unlock()
	s, err := p.acquire()
	if err != nil {
		t.Fatal(err)
	}
	defer s.release()
	if s.n == o.n {
		t.Fatalf("took range %d, which the other server holds", s.n)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.let) != 0 {
		t.Errorf("ranges to try first after passing over a held one: %v, want none", p.let)
	}
}

// procState is a process's state letter from /proc/PID/stat, "" if none.
func procState(pid int) string {
	st, _ := procStat(pid)
	return st.State
}

// lockFiles lists the ranges whose lock files dir has.
func lockFiles(t *testing.T, dir string) []int {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var ns []int
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			t.Fatalf("%s in the pool's directory", e.Name())
		}
		ns = append(ns, n)
	}
	slices.Sort(ns)
	return ns
}

// TestIDPoolPreparesItsRanges: prepare makes the lock files of the ranges
// the pool tries first, round the end of the pool, and leaves one that
// exists as it was; the acquires after it take those ranges and make no
// file.
func TestIDPoolPreparesItsRanges(t *testing.T) {
	dir := t.TempDir()
	const had = "a range's lock file naming a pid\n"
	if err := os.WriteFile(filepath.Join(dir, strconv.Itoa(poolSlots-2)), []byte(had), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &idPool{dir: dir, held: map[int]bool{}, next: poolSlots - 3}
	p.prepare(6)
	p.preparing.Wait()
	want := []int{0, 1, 2, poolSlots - 3, poolSlots - 2, poolSlots - 1}
	if got := lockFiles(t, dir); !slices.Equal(got, want) {
		t.Fatalf("lock files after prepare(6) from %d: %v, want %v", poolSlots-3, got, want)
	}
	if b, err := os.ReadFile(filepath.Join(dir, strconv.Itoa(poolSlots-2))); err != nil || string(b) != had {
		t.Errorf("the lock file that existed: %q, %v; want it untouched", b, err)
	}
	fi, err := os.Stat(filepath.Join(dir, "0"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("a prepared lock file: %v, %v; want mode 0600", fi, err)
	}
	var took []int
	for range 6 {
		s, err := p.acquire()
		if err != nil {
			t.Fatal(err)
		}
		defer s.release()
		took = append(took, s.n)
	}
	slices.Sort(took)
	if !slices.Equal(took, want) {
		t.Errorf("ranges acquired: %v, want the prepared %v", took, want)
	}
	if got := lockFiles(t, dir); !slices.Equal(got, want) {
		t.Errorf("lock files after six acquires: %v, want only the prepared %v", got, want)
	}
	p.stopPreparing() // after its goroutine ended: nothing to stop, no panic
}

// TestHostPreparesIDRanges: a server's Host, as root, makes its id ranges'
// lock files in the background, and Close stops that at once, however many
// it was asked for, so that the state dir can be removed; as an ordinary
// user there is no pool, and nothing is made.
func TestHostPreparesIDRanges(t *testing.T) {
	state := testStateDir(t)
	h, err := NewHost(HostOptions{StateDir: state, NoCgroups: true, PrepareIDs: 40})
	if err != nil {
		t.Fatal(err)
	}
	ids := filepath.Join(state, "ids")
	if h.pool == nil {
		_ = h.Close()
		if os.Getuid() == 0 && initialUserNS() {
			t.Fatal("root without an id pool")
		}
		if _, err := os.Stat(ids); !os.IsNotExist(err) {
			t.Errorf("an ordinary user's Host made %s: %v", ids, err)
		}
		return
	}
	h.pool.preparing.Wait()
	if got := lockFiles(t, ids); len(got) < 40 {
		t.Errorf("lock files after PrepareIDs 40: %d (%v)", len(got), got)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}

	state2 := testStateDir(t)
	h2, err := NewHost(HostOptions{StateDir: state2, NoCgroups: true, PrepareIDs: poolSlots})
	if err != nil {
		t.Fatal(err)
	}
	if err := h2.RemoveStateDir(); err != nil {
		t.Fatalf("RemoveStateDir while the ranges were being prepared: %v", err)
	}
	if _, err := os.Stat(state2); !os.IsNotExist(err) {
		t.Errorf("state dir after RemoveStateDir: %v", err)
	}
}

// TestClaimOverwritesInPlace: a claim writes its record over the one
// before, without truncating the lock file (which made ext4 write out the
// file's blocks within a start), and leaves nothing of a longer record.
func TestClaimOverwritesInPlace(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("4194304 18446744073709551615\n"); err != nil { // the longest record of the format before
		t.Fatal(err)
	}
	s := &idSlot{lock: f}
	for range 2 {
		if err := s.claim(os.Getpid()); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	start, err := processStart(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	var got uint64
	if n, err := fmt.Sscanf(string(b), "%d %d", &pid, &got); n != 2 || err != nil || pid != os.Getpid() || got != start || len(b) != slotRecordSize || !strings.HasSuffix(string(b), " \n") {
		t.Errorf("lock file %q (%d bytes): want this process's pid %d and start %d, padded to %d bytes", b, len(b), os.Getpid(), start, slotRecordSize)
	}
	if !slotInitAlive(f) {
		t.Error("slotInitAlive: the claimed process (this one) is not seen alive")
	}
}
