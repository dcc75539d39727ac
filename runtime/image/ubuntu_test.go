package image

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/guntainer/playground/runtime"
)

// fakeUbuntu is a small ubuntu-base-like tarball, with an incompressible
// MiB in it so that a download takes several reads.
func fakeUbuntu(t testing.TB) []byte {
	t.Helper()
	noise := make([]byte, 1<<20)
	_, _ = rand.Read(noise)
	return gzipOf(t, tarOf(t,
		ent{name: ".", typ: '5', mode: 0o755},
		dir("etc"), dir("etc/apt"), dir("etc/apt/apt.conf.d"),
		file("etc/os-release", "PRETTY_NAME=\"Ubuntu 24.04.3 LTS\"\nVERSION_ID=\"24.04\"\n"),
		file("etc/passwd", "root:x:0:0:root:/root:/bin/bash\n_apt:x:42:65534::/nonexistent:/usr/sbin/nologin\n"),
		dir("usr"), dir("usr/bin"), symlink("bin", "usr/bin"),
		file("usr/bin/noise", string(noise)),
	))
}

// mirror is a test stand-in for cdimage.ubuntu.com: it serves one file,
// and can fail in the ways a real one does.
type mirror struct {
	data     []byte
	mode     string // "", "404", "cut" (every time), "cut-once", "cut-once-no-range", "loop"
	requests atomic.Int32
	mu       sync.Mutex
	ranges   []string
	hold     chan struct{} // when set, the first request waits for it
}

func (m *mirror) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := m.requests.Add(1)
	m.mu.Lock()
	m.ranges = append(m.ranges, r.Header.Get("Range"))
	m.mu.Unlock()
	if m.hold != nil && n == 1 {
		<-m.hold
	}
	cut := func() {
		w.Header().Set("Content-Length", strconv.Itoa(len(m.data)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(m.data[:len(m.data)/2])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // the connection is cut mid-body
	}
	switch {
	case m.mode == "404":
		http.NotFound(w, r)
	case m.mode == "loop":
		next := "/loop/a"
		if strings.HasSuffix(r.URL.Path, "/a") {
			next = "/loop/b"
		}
		http.Redirect(w, r, next, http.StatusFound)
	case m.mode == "cut":
		cut()
	case strings.HasPrefix(m.mode, "cut-once") && n == 1:
		cut()
	case m.mode == "cut-once-no-range":
		w.Header().Set("Content-Length", strconv.Itoa(len(m.data)))
		_, _ = w.Write(m.data) // a server that does not resume: 200, all of it
	default:
		http.ServeContent(w, r, "ubuntu-base.tar.gz", testTime, bytes.NewReader(m.data))
	}
}

func (m *mirror) rangesSeen() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.ranges...)
}

// serveMirror starts the mirror and points c's pinned table at it.
func serveMirror(t testing.TB, c *Cache, m *mirror, sha string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)
	if sha == "" {
		sha = sha256Hex(m.data)
	}
	c.Releases = []Release{{Version: "24.04", Point: "24.04.3", Arch: c.Arch, URL: srv.URL + "/ubuntu-base-24.04.3-base-" + c.Arch + ".tar.gz", SHA256: sha}}
	return srv
}

func mustSource(t testing.TB, s string) Source {
	t.Helper()
	src, err := ParseSource(s)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// phases records the phases progress passes, and the last figure of each.
type phases struct {
	mu   sync.Mutex
	seen []Phase
	last map[Phase]Progress
}

func (p *phases) report(pr Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.last == nil {
		p.last = map[Phase]Progress{}
	}
	if len(p.seen) == 0 || p.seen[len(p.seen)-1] != pr.Phase {
		p.seen = append(p.seen, pr.Phase)
	}
	p.last[pr.Phase] = pr
}

func (p *phases) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var s []string
	for _, ph := range p.seen {
		s = append(s, string(ph))
	}
	return strings.Join(s, " ")
}

// TestUbuntuDownload: the pinned tarball is downloaded with progress,
// verified and unpacked once; a second start (a new process, here a new
// Cache on the same directory) makes no request and unpacks nothing.
func TestUbuntuDownload(t *testing.T) {
	c, _ := newCache(t)
	m := &mirror{data: fakeUbuntu(t)}
	serveMirror(t, c, m, "")
	var ph phases
	unpacked := unpacks.Load()
	img, err := c.Prepare(context.Background(), mustSource(t, "ubuntu"), ph.report)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if got, want := ph.String(), "preparing downloading verifying unpacking finishing ready"; got != want {
		t.Errorf("phases %q, want %q", got, want)
	}
	if d := ph.last[PhaseDownloading]; d.Done != int64(len(m.data)) || d.Total != int64(len(m.data)) {
		t.Errorf("download progress ended at %d of %d, want %d", d.Done, d.Total, len(m.data))
	}
	if got := unpacks.Load() - unpacked; got != 1 {
		t.Errorf("%d unpacks, want 1", got)
	}
	if img.Digest != "sha256:"+sha256Hex(m.data) || img.Name != "ubuntu" || img.Size < 1<<20 {
		t.Errorf("image %+v", img)
	}
	checkAptSetting(t, c, img.Dir)
	for p, want := range map[string]string{"etc/os-release": "VERSION_ID=\"24.04\""} {
		b, err := os.ReadFile(filepath.Join(img.Dir, p))
		if err != nil || !strings.Contains(string(b), want) {
			t.Errorf("%s: %q %v, want %q in it", p, b, err, want)
		}
	}
	if es, _ := os.ReadDir(c.path("downloads")); len(es) != 0 {
		t.Errorf("downloads left: %v", es)
	}

	// A second start.
	c2, err := OpenCache(c.Dir(), c.Log)
	if err != nil {
		t.Fatal(err)
	}
	c2.Releases = c.Releases
	requests, unpacked := m.requests.Load(), unpacks.Load()
	var ph2 phases
	img2, err := c2.Prepare(context.Background(), mustSource(t, "ubuntu:24.04"), ph2.report)
	if err != nil {
		t.Fatal(err)
	}
	defer img2.Close()
	if m.requests.Load() != requests || unpacks.Load() != unpacked {
		t.Fatalf("second start: %d requests, %d unpacks; want none", m.requests.Load()-requests, unpacks.Load()-unpacked)
	}
	if img2.Dir != img.Dir || ph2.String() != "preparing ready" {
		t.Fatalf("second start: dir %s (first %s), phases %q", img2.Dir, img.Dir, ph2.String())
	}
}

// TestUbuntuRefused: each bad download is refused with its reason, and
// leaves no tree behind.
func TestUbuntuRefused(t *testing.T) {
	for _, tc := range []struct {
		name, mode, sha, want string
		requests              int32
	}{
		{name: "wrong checksum", sha: strings.Repeat("ab", 32), want: "checksum mismatch: got sha256:", requests: 1},
		{name: "404", mode: "404", want: "GET: 404 Not Found", requests: 1},
		{name: "connection cut mid-body", mode: "cut", want: "connection cut after 512.", requests: 3},
		{name: "redirect loop", mode: "loop", want: "more than 5 redirects", requests: 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newCache(t)
			c.Retries = 2
			m := &mirror{data: fakeUbuntu(t), mode: tc.mode}
			srv := serveMirror(t, c, m, tc.sha)
			if tc.mode == "loop" {
				c.Releases[0].URL = srv.URL + "/loop/a"
			}
			_, err := c.Prepare(context.Background(), mustSource(t, "ubuntu"), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want an error with %q, got %v", tc.want, err)
			}
			if tc.sha != "" {
				var ce *ChecksumError
				if !errors.As(err, &ce) {
					t.Errorf("want a ChecksumError, got %T", err)
				}
				if es, _ := os.ReadDir(c.path("downloads")); len(es) != 0 {
					t.Errorf("a download with the wrong checksum was kept: %v", es)
				}
			}
			if n := m.requests.Load(); n != tc.requests {
				t.Errorf("%d requests, want %d", n, tc.requests)
			}
			for _, d := range []string{"rootfs", "tmp"} {
				if es, _ := os.ReadDir(c.path(d)); len(es) != 0 {
					t.Errorf("%s/ has %v after a refused download", d, es)
				}
			}
		})
	}
}

// TestUbuntuResume: a download cut mid-body is resumed with a Range
// request, in the same run or the next one; a server that does not
// resume gets the download restarted; a resumed file that does not match
// is downloaded again from the beginning.
func TestUbuntuResume(t *testing.T) {
	t.Run("same run", func(t *testing.T) {
		c, _ := newCache(t)
		m := &mirror{data: fakeUbuntu(t), mode: "cut-once"}
		serveMirror(t, c, m, "")
		img, err := c.Prepare(context.Background(), mustSource(t, "ubuntu"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer img.Close()
		if r := m.rangesSeen(); len(r) != 2 || r[1] != "bytes="+strconv.Itoa(len(m.data)/2)+"-" {
			t.Fatalf("ranges asked %q, want a resume from %d", r, len(m.data)/2)
		}
	})
	t.Run("next run", func(t *testing.T) {
		c, _ := newCache(t)
		c.Retries = 0
		m := &mirror{data: fakeUbuntu(t), mode: "cut-once"}
		serveMirror(t, c, m, "")
		if _, err := c.Prepare(context.Background(), mustSource(t, "ubuntu"), nil); err == nil || !strings.Contains(err.Error(), "connection cut") {
			t.Fatalf("want the cut reported, got %v", err)
		}
		if es, _ := os.ReadDir(c.path("rootfs")); len(es) != 0 {
			t.Fatalf("a cut download became a tree: %v", es)
		}
		img, err := c.Prepare(context.Background(), mustSource(t, "ubuntu"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer img.Close()
		if r := m.rangesSeen(); len(r) != 2 || r[1] != "bytes="+strconv.Itoa(len(m.data)/2)+"-" {
			t.Fatalf("ranges asked %q, want a resume", r)
		}
	})
	t.Run("server does not resume", func(t *testing.T) {
		c, logs := newCache(t)
		m := &mirror{data: fakeUbuntu(t), mode: "cut-once-no-range"}
		serveMirror(t, c, m, "")
		img, err := c.Prepare(context.Background(), mustSource(t, "ubuntu"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer img.Close()
		if !strings.Contains(logs.String(), "restarting from the beginning") || m.requests.Load() != 2 {
			t.Fatalf("want one restart; %d requests, log: %s", m.requests.Load(), logs)
		}
	})
	t.Run("resumed file does not match", func(t *testing.T) {
		c, _ := newCache(t)
		m := &mirror{data: fakeUbuntu(t)}
		serveMirror(t, c, m, "")
		key := "sha256-" + sha256Hex(m.data)
		if err := os.WriteFile(c.path("downloads", key+".part"), bytes.Repeat([]byte("x"), 1000), 0o600); err != nil {
			t.Fatal(err)
		}
		img, err := c.Prepare(context.Background(), mustSource(t, "ubuntu"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer img.Close()
		if r := m.rangesSeen(); len(r) != 2 || r[0] != "bytes=1000-" || r[1] != "" {
			t.Fatalf("ranges asked %q, want a resume from 1000 and then the whole file", r)
		}
	})
}

// TestAuto: auto is the cached Ubuntu without a request; with no Ubuntu
// to be had it is host, with one warning line that says how to get
// Ubuntu.
func TestAuto(t *testing.T) {
	c, logs := newCache(t)
	m := &mirror{data: fakeUbuntu(t), mode: "404"}
	serveMirror(t, c, m, "")
	img, err := c.Prepare(context.Background(), mustSource(t, "auto"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if img.Dir != runtime.HostRootfs || !strings.Contains(img.Warning, "playground rootfs pull ubuntu") || !strings.Contains(img.Warning, "404") {
		t.Fatalf("auto offline: dir %q, warning %q", img.Dir, img.Warning)
	}
	if n := strings.Count(logs.String(), "\n"); n != 1 || !strings.Contains(logs.String(), `"level":"warn"`) {
		t.Fatalf("want one warning line, got %d lines: %s", n, logs)
	}

	m.mode = ""
	img, err = c.Prepare(context.Background(), mustSource(t, "auto"), nil)
	if err != nil {
		t.Fatal(err)
	}
	img.Close()
	if img.Dir == runtime.HostRootfs || img.Name != "default" {
		t.Fatalf("auto online: %+v", img)
	}
	m.mode = "404"
	requests := m.requests.Load()
	img2, err := c.Prepare(context.Background(), mustSource(t, "auto"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer img2.Close()
	if img2.Dir != img.Dir || m.requests.Load() != requests {
		t.Fatalf("auto with Ubuntu cached: dir %s (want %s), %d requests", img2.Dir, img.Dir, m.requests.Load()-requests)
	}
}

// TestTwoProcesses: two processes preparing the same source on one cache
// at once download and unpack it once; the second waits for the first.
func TestTwoProcesses(t *testing.T) {
	c, _ := newCache(t)
	m := &mirror{data: fakeUbuntu(t), hold: make(chan struct{})}
	srv := serveMirror(t, c, m, "")
	release := sync.OnceFunc(func() { close(m.hold) })
	defer release()
	type result struct {
		lines []string
		err   error
	}
	waiting := make(chan struct{}, 2)
	results := make(chan result, 2)
	for range 2 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "PLAYGROUND_IMAGE_TEST_HELPER=prepare", "HELPER_CACHE="+c.Dir(),
			"HELPER_URL="+srv.URL+"/ubuntu-base.tar.gz", "HELPER_SHA256="+sha256Hex(m.data))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() {
			var lines []string
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines = append(lines, sc.Text())
				if sc.Text() == "phase waiting" {
					waiting <- struct{}{}
				}
			}
			results <- result{lines, cmd.Wait()}
		}()
	}
	// One process holds the lock and its request is held; once the other
	// says it waits for the lock, the first may go on.
	select {
	case <-waiting:
	case <-time.After(2 * time.Minute):
		t.Fatal("neither process waited for the other")
	}
	release()
	var dirs []string
	total := 0
	for range 2 {
		r := <-results
		if r.err != nil {
			t.Fatalf("helper: %v: %q", r.err, r.lines)
		}
		last := strings.Fields(r.lines[len(r.lines)-1])
		if len(last) != 3 || last[0] != "dir" {
			t.Fatalf("helper said %q", r.lines)
		}
		dirs = append(dirs, last[1])
		n, _ := strconv.Atoi(last[2])
		total += n
	}
	if total != 1 {
		t.Fatalf("%d unpacks in the two processes, want 1", total)
	}
	if n := m.requests.Load(); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}
	if dirs[0] != dirs[1] {
		t.Fatalf("two trees: %v", dirs)
	}
}
