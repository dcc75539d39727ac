package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/guntainer/playground/internal/testenv"
	"github.com/guntainer/playground/runtime"
	"github.com/guntainer/playground/runtime/image"
)

// The environments wired into serve: these tests run the real serve
// (serve(), in this process, so that the pinned Ubuntu table can point at
// a test mirror) on a loopback port, with real containers, and talk to it
// over real WebSockets and HTTP.

// logLines collects a server's JSON log lines.
type logLines struct {
	mu    sync.Mutex
	lines []map[string]any
	raw   bytes.Buffer
	more  chan struct{}
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.raw.Write(p)
	for _, line := range bytes.Split(bytes.TrimSpace(p), []byte("\n")) {
		var m map[string]any
		if json.Unmarshal(line, &m) == nil {
			l.lines = append(l.lines, m)
		}
	}
	select {
	case l.more <- struct{}{}:
	default:
	}
	return len(p), nil
}

// find returns the first line whose message contains msg, or nil.
func (l *logLines) find(msg string) map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range l.lines {
		if s, _ := m["message"].(string); strings.Contains(s, msg) {
			return m
		}
	}
	return nil
}

// withKey returns the first line that has key, or nil.
func (l *logLines) withKey(key string) map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range l.lines {
		if _, ok := m[key]; ok {
			return m
		}
	}
	return nil
}

func (l *logLines) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.lines {
		if s, _ := m["message"].(string); strings.Contains(s, msg) {
			n++
		}
	}
	return n
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.raw.String()
}

// liveServer is serve() running in this process.
type liveServer struct {
	url      string
	logs     *logLines
	started  time.Time
	stateDir string
	stop     func()
}

// serveEnvs runs serve with the test's own state dir and cache (cfg may
// change them, and must set Rootfs), JSON logs, no warm pool and no drain
// unless cfg says so, until the test ends.
func serveEnvs(t *testing.T, setup func(cfg *serveConfig)) *liveServer {
	t.Helper()
	dir := subIDTempDir(t)
	// Container root, another uid than ours (a pool range, subordinate
	// ids), must reach its mount point in the state dir.
	_ = os.Chmod(dir, 0o711)
	_ = os.Chmod(filepath.Dir(dir), 0o711)
	cfg := defaultServeConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.Cache = filepath.Join(dir, "cache")
	cfg.Warm = 0
	cfg.DrainTimeout = 0
	cfg.Grace = 10 * time.Second
	setup(&cfg)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	logs := &logLines{more: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var serveErr error
	s := &liveServer{logs: logs, started: time.Now(), stateDir: cfg.StateDir}
	go func() {
		defer close(done)
		serveErr = serve(ctx, cfg, newLogger(logJSON, "debug", logs))
	}()
	s.stop = sync.OnceFunc(func() {
		cancel()
		select {
		case <-done:
			if serveErr != nil && s.url != "" {
				t.Errorf("serve: %v", serveErr)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("serve did not return after its context ended")
		}
	})
	t.Cleanup(s.stop)
	deadline := time.After(60 * time.Second)
	for {
		if m := logs.find("serving"); m != nil {
			s.url, _ = m["url"].(string)
			return s
		}
		select {
		case <-done:
			if errors.Is(serveErr, runtime.ErrUnsupported) {
				testenv.Skipf(t, "no containers here: %v", serveErr)
			}
			t.Fatalf("serve ended before serving: %v\n%s", serveErr, logs)
		case <-logs.more:
		case <-deadline:
			t.Fatalf("serve did not start:\n%s", logs)
		}
	}
}

// subIDTempDir is t.TempDir, which an ordinary user's server may fill
// with trees of its subordinate ids (the cache's, the prepared host root
// in the state dir): those are removed through the ids at the end, as the
// user cannot remove them itself.
func subIDTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if os.Getuid() != 0 {
		if s, err := runtime.LookupSubIDs(); err == nil {
			t.Cleanup(func() {
				if err := s.RemoveTree(dir); err != nil {
					t.Errorf("remove %s through the subordinate ids: %v", dir, err)
				}
			})
		}
	}
	return dir
}

// get fetches path; it returns the status and body.
func (s *liveServer) get(t testing.TB, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(s.url + strings.TrimPrefix(path, "/"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitReady polls /readyz until it says 200, and returns when that was.
func (s *liveServer) waitReady(t testing.TB, d time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		code, body := s.get(t, "/readyz")
		if code == http.StatusOK {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d %q after %s; the log:\n%s", code, body, d, s.logs)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition
	}
}

// wsClient is a session's WebSocket, read on its own goroutine.
type wsClient struct {
	t       testing.TB
	ws      *websocket.Conn
	mu      sync.Mutex
	out     bytes.Buffer
	notices []string
	exit    string // the EXIT frame's payload, once one came
	closed  *websocket.CloseError
	done    chan struct{}
	more    chan struct{}
}

// open starts a session with init's extra fields (JSON members, may be
// empty).
func (s *liveServer) open(t testing.TB, extra string) *wsClient {
	t.Helper()
	u := "ws" + strings.TrimPrefix(s.url, "http") + "ws"
	ws, _, err := (&websocket.Dialer{Subprotocols: []string{"tty"}}).Dial(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	init := `{"AuthToken":"","columns":100,"rows":30`
	if extra != "" {
		init += "," + extra
	}
	if err := ws.WriteMessage(websocket.TextMessage, []byte(init+"}")); err != nil {
		t.Fatal(err)
	}
	c := &wsClient{t: t, ws: ws, done: make(chan struct{}), more: make(chan struct{}, 1)}
	t.Cleanup(func() { _ = ws.Close(); <-c.done })
	go c.read()
	return c
}

func (c *wsClient) read() {
	defer close(c.done)
	for {
		_, msg, err := c.ws.ReadMessage()
		c.mu.Lock()
		if err != nil {
			errors.As(err, &c.closed)
			c.mu.Unlock()
			c.kick()
			return
		}
		if len(msg) > 0 {
			switch msg[0] {
			case '0':
				c.out.Write(msg[1:])
			case '9':
				var n struct{ Level, Text string }
				_ = json.Unmarshal(msg[1:], &n)
				c.notices = append(c.notices, n.Level+": "+n.Text)
			case '8':
				c.exit = string(msg[1:])
			}
		}
		c.mu.Unlock()
		c.kick()
	}
}

func (c *wsClient) kick() {
	select {
	case c.more <- struct{}{}:
	default:
	}
}

func (c *wsClient) input(s string) {
	c.t.Helper()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, []byte("0"+s)); err != nil {
		c.t.Fatal(err)
	}
}

// waitFor waits until cond holds of the output and notices.
func (c *wsClient) waitFor(what string, d time.Duration, cond func(out string, notices []string) bool) {
	c.t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		ok := cond(c.out.String(), c.notices)
		out, notices, closed := c.out.String(), strings.Join(c.notices, "\n"), c.closed
		c.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-c.more:
		case <-c.done:
			c.mu.Lock()
			ok = cond(c.out.String(), c.notices)
			c.mu.Unlock()
			if !ok {
				c.t.Fatalf("connection ended (%v) before %s; output:\n%s\nnotices:\n%s", closed, what, out, notices)
			}
			return
		case <-deadline.C:
			c.t.Fatalf("no %s after %s; output:\n%s\nnotices:\n%s", what, d, out, notices)
		}
	}
}

func (c *wsClient) waitOutput(want string) {
	c.t.Helper()
	c.waitFor(fmt.Sprintf("output %q", want), 60*time.Second, func(out string, _ []string) bool { return strings.Contains(out, want) })
}

func (c *wsClient) waitNotice(want string) {
	c.t.Helper()
	c.waitFor(fmt.Sprintf("notice %q", want), 60*time.Second, func(_ string, ns []string) bool {
		for _, n := range ns {
			if strings.Contains(n, want) {
				return true
			}
		}
		return false
	})
}

func (c *wsClient) waitClose() *websocket.CloseError {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		c.t.Fatal("connection not closed")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// envStatus is /api/envs.
type envStatus struct {
	Envs         []string
	Default      string
	Environments []struct{ Name, Source, State, Detail string }
}

func (s *liveServer) envs(t testing.TB) envStatus {
	t.Helper()
	code, body := s.get(t, "/api/envs")
	var st envStatus
	if err := json.Unmarshal([]byte(body), &st); code != http.StatusOK || err != nil {
		t.Fatalf("/api/envs: %d %q: %v", code, body, err)
	}
	return st
}

func (st envStatus) state(name string) string {
	for _, e := range st.Environments {
		if e.Name == name {
			return e.State
		}
	}
	return ""
}

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// writeArchive writes b to a file readable by a pool uid (root mode).
func writeArchive(t testing.TB, name string, b []byte) string {
	t.Helper()
	dir := t.TempDir()
	_ = os.Chmod(dir, 0o755)
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestServeTwoEnvironments: the host and a course's archive side by side;
// the init's env picks each, the default is the first; an unknown name
// is refused with 1008 and the names; /api/envs lists both, ready.
func TestServeTwoEnvironments(t *testing.T) {
	archive := writeArchive(t, "course.tar.gz", gzipBytes(t, busyboxTarWith(t, map[string]string{"etc/marker": "course environment\n"})))
	s := serveEnvs(t, func(cfg *serveConfig) {
		cfg.Rootfs = sourceList{list: []string{"host", "course=" + archive}}
	})
	s.waitReady(t, 60*time.Second)

	const probe = "cat /etc/marker 2>/dev/null || echo no marker; test -d /usr/lib && echo usr-lib-$((6*7))\r"
	for _, tt := range []struct {
		name, init   string
		want, absent string
	}{
		{"default", ``, "usr-lib-42", "course environment"},
		{"host by name", `"env":"host"`, "usr-lib-42", "course environment"},
		{"course", `"env":"course"`, "course environment", "usr-lib-42"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := s.open(t, tt.init)
			c.input(probe + "exit\r")
			c.waitClose()
			c.mu.Lock()
			out := c.out.String()
			c.mu.Unlock()
			if !strings.Contains(out, tt.want) || strings.Contains(out, tt.absent+"\r") {
				t.Errorf("want %q and no %q; output:\n%s", tt.want, tt.absent, out)
			}
		})
	}

	c := s.open(t, `"env":"nope"`)
	ce := c.waitClose()
	if ce == nil || ce.Code != websocket.ClosePolicyViolation || !strings.Contains(ce.Text, "host, course") {
		t.Errorf("unknown environment: close %v, want 1008 listing host, course", ce)
	}

	st := s.envs(t)
	if strings.Join(st.Envs, ",") != "host,course" || st.Default != "host" || st.state("host") != "ready" || st.state("course") != "ready" {
		t.Errorf("/api/envs: %+v", st)
	}
	if m := s.logs.find("environment ready"); m == nil {
		t.Errorf("no \"environment ready\" line:\n%s", s.logs)
	}
}

// ubuntuMirror is a stand-in for cdimage.ubuntu.com: it serves one
// tarball, counts requests, and can hold the first until released.
type ubuntuMirror struct {
	data     []byte
	requests atomic.Int32
	hold     chan struct{}
}

func (m *ubuntuMirror) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if m.requests.Add(1) == 1 && m.hold != nil {
		select {
		case <-m.hold:
		case <-r.Context().Done():
			return
		}
	}
	http.ServeContent(w, r, "ubuntu-base.tar.gz", time.Time{}, bytes.NewReader(m.data))
}

// pinUbuntu points the pinned Ubuntu table at url, serving data, for the
// test's length.
func pinUbuntu(t *testing.T, url string, data []byte) {
	t.Helper()
	sum := sha256.Sum256(data)
	old := image.UbuntuReleases
	arch := goruntime.GOARCH
	image.UbuntuReleases = []image.Release{{Version: image.DefaultUbuntu, Point: image.DefaultUbuntu + ".3", Arch: arch, URL: url, SHA256: hex.EncodeToString(sum[:])}}
	t.Cleanup(func() { image.UbuntuReleases = old })
}

// fakeUbuntu is a small Ubuntu stand-in that a shell runs in: busybox,
// and Ubuntu's os-release.
func fakeUbuntu(t *testing.T) []byte {
	return gzipBytes(t, busyboxTarWith(t, map[string]string{
		"etc/os-release": "PRETTY_NAME=\"Ubuntu 24.04.3 LTS\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"24.04\"\nID=ubuntu\n",
		"etc/apt/":       "",
	}))
}

// TestServeWaitsForUbuntu is auto's download path through serve, against
// a test mirror that holds the download back: /readyz says 503 with the
// environment's progress, no warm container is started, a session waits
// with a NOTICE of progress; once the download is let go the server is
// ready, the session gets its shell in Ubuntu, and the pool fills. A
// second start on the same cache makes no request and is ready at once.
func TestServeWaitsForUbuntu(t *testing.T) {
	m := &ubuntuMirror{data: fakeUbuntu(t), hold: make(chan struct{})}
	mirror := httptest.NewServer(m)
	defer mirror.Close()
	release := sync.OnceFunc(func() { close(m.hold) })
	defer release()
	pinUbuntu(t, mirror.URL+"/ubuntu-base-24.04.3-base.tar.gz", m.data)
	cache := filepath.Join(subIDTempDir(t), "cache")
	s := serveEnvs(t, func(cfg *serveConfig) {
		cfg.Rootfs = sourceList{list: []string{"auto"}}
		cfg.Cache = cache
		cfg.Warm = 1
	})

	code, body := s.get(t, "/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "environment default") {
		t.Errorf("/readyz while the download is held: %d %q, want 503 naming the environment", code, body)
	}
	if st := s.envs(t); st.state("default") != "preparing" {
		t.Errorf("/api/envs while preparing: %+v", st)
	}
	c := s.open(t, "")
	c.waitNotice("preparing the environment: default")
	if got := s.metric(t, "playground_pool_warm"); got != 0 {
		t.Errorf("warm containers while the default environment prepares: %v, want 0", got)
	}

	release()
	ready := s.waitReady(t, 2*time.Minute)
	c.input("cat /etc/os-release; echo id-$((6*7))\r")
	c.waitOutput("id-42")
	c.waitOutput(`PRETTY_NAME="Ubuntu 24.04.3 LTS"`)
	if n := m.requests.Load(); n != 1 {
		t.Errorf("mirror requests: %d, want 1", n)
	}
	for s.metric(t, "playground_pool_warm") != 1 {
		select {
		case <-time.After(60 * time.Second):
			t.Fatal("the pool did not fill once the environment was ready")
		case <-time.After(20 * time.Millisecond): // polling a condition
		}
	}
	t.Logf("start to ready with a download (held, then served from loopback): %s", ready.Sub(s.started).Round(time.Millisecond))
	s.stop()

	// The same cache again: no request, nothing unpacked, ready at once.
	s2 := serveEnvs(t, func(cfg *serveConfig) {
		cfg.Rootfs = sourceList{list: []string{"auto"}}
		cfg.Cache = cache
	})
	ready = s2.waitReady(t, time.Minute)
	t.Logf("cached start to ready: %s", ready.Sub(s2.started).Round(time.Millisecond))
	if n := m.requests.Load(); n != 1 {
		t.Errorf("mirror requests after a cached start: %d, want still 1", n)
	}
	c = s2.open(t, "")
	c.input("grep PRETTY /etc/os-release; echo id-$((6*7))\r")
	c.waitOutput("id-42")
	c.waitOutput("Ubuntu 24.04.3 LTS")
}

// metric reads one sample of /metrics.
func (s *liveServer) metric(t testing.TB, name string) float64 {
	t.Helper()
	_, body := s.get(t, "/metrics")
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("metric %s: %q", name, line)
			}
			return v
		}
	}
	t.Fatalf("no metric %s in:\n%s", name, body)
	return 0
}

// TestServeAutoOffline: auto where the Ubuntu mirror cannot be reached
// (its name does not resolve, as on a machine without network) serves
// the host rootfs, ready at once, with one warning line that says how to
// get Ubuntu.
func TestServeAutoOffline(t *testing.T) {
	pinUbuntu(t, "https://ubuntu-mirror.invalid/ubuntu-base-24.04.3-base.tar.gz", []byte("never fetched"))
	s := serveEnvs(t, func(cfg *serveConfig) { cfg.Rootfs = sourceList{list: []string{"auto"}} })
	ready := s.waitReady(t, 30*time.Second)
	t.Logf("offline start to ready: %s", ready.Sub(s.started).Round(time.Millisecond))
	warn := s.logs.find("could not be had")
	if warn == nil || warn["level"] != "warn" || !strings.Contains(warn["message"].(string), "playground rootfs pull ubuntu") {
		t.Fatalf("want a warning that says how to get Ubuntu; the log:\n%s", s.logs)
	}
	if n := s.logs.count("could not be had"); n != 1 {
		t.Errorf("the warning is logged %d times, want once:\n%s", n, s.logs)
	}
	c := s.open(t, "")
	c.input("test -d /usr/lib && echo host-$((6*7))\r")
	c.waitOutput("host-42")
	if st := s.envs(t); st.state("default") != "ready" || !strings.Contains(st.Environments[0].Detail, "host") {
		t.Errorf("/api/envs: %+v", st)
	}
}

// TestRunDefaultIsAuto: run's default environment is auto, as serve's:
// offline it runs on the host with the warning, and where the mirror
// answers it runs in the Ubuntu it downloaded.
func TestRunDefaultIsAuto(t *testing.T) {
	dir := subIDTempDir(t)
	_ = os.Chmod(dir, 0o711)
	_ = os.Chmod(filepath.Dir(dir), 0o711)
	t.Setenv("PLAYGROUND_STATE_DIR", filepath.Join(dir, "state"))
	t.Setenv("PLAYGROUND_CACHE", filepath.Join(dir, "cache"))
	t.Setenv("PLAYGROUND_ROOTFS", "")
	run := func(args ...string) (string, string, error) {
		var stdout, stderr bytes.Buffer
		err := runMain(func() {}, args, strings.NewReader(""), &stdout, &stderr)
		return stdout.String(), stderr.String(), err
	}

	pinUbuntu(t, "https://ubuntu-mirror.invalid/ubuntu-base-24.04.3-base.tar.gz", []byte("never fetched"))
	out, errs, err := run("--", "sh", "-c", "test -d /usr/lib && echo on the host")
	if err != nil || out != "on the host\n" {
		t.Fatalf("offline: %v, stdout %q, stderr:\n%s", err, out, errs)
	}
	if !strings.Contains(errs, "playground rootfs pull ubuntu") || strings.Count(strings.TrimSpace(errs), "\n") != 0 {
		t.Errorf("offline: want one warning line that says how to get Ubuntu, got:\n%s", errs)
	}

	m := &ubuntuMirror{data: fakeUbuntu(t)}
	mirror := httptest.NewServer(m)
	defer mirror.Close()
	pinUbuntu(t, mirror.URL+"/ubuntu-base-24.04.3-base.tar.gz", m.data)
	out, errs, err = run("--", "cat", "/etc/os-release")
	if err != nil || !strings.Contains(out, `PRETTY_NAME="Ubuntu 24.04.3 LTS"`) {
		t.Fatalf("online: %v, stdout %q, stderr:\n%s", err, out, errs)
	}
	if n := m.requests.Load(); n != 1 {
		t.Errorf("mirror requests: %d, want 1", n)
	}
}

// TestServeDebianKeepsOwners: a real Debian rootfs (debootstrap minbase,
// .tar.zst) served as an environment keeps its archive's owners inside
// the session where the server has an id range: as root (the pool and an
// id-mapped mount), and as an ordinary user with /etc/subuid (the cache
// unpacks through the subordinate ids). shadow, utmp and mail groups and
// setuid and setgid bits are there; apt drops to _apt for a local
// repository's update, with no apt-as-root setting in the tree; and
// dpkg -i installs a package (built in the session with dpkg-deb: no
// Debian mirror is reachable here to apt-get download one).
func TestServeDebianKeepsOwners(t *testing.T) {
	if testing.Short() {
		testenv.Skipf(t, "unpacks a 200 MB rootfs: left out under -short")
	}
	tarball := testenv.DebianTarball(t)
	if os.Getuid() != 0 {
		if _, err := runtime.LookupSubIDs(); err != nil {
			testenv.Skipf(t, "an ordinary user without subordinate ids has no id range: %v", err)
		}
	}
	s := serveEnvs(t, func(cfg *serveConfig) { cfg.Rootfs = sourceList{list: []string{"debian=" + tarball}} })
	s.waitReady(t, 5*time.Minute)
	if m := s.logs.find("environment ready"); m != nil {
		t.Logf("ready: %v", m)
	}

	const script = `set -e
stat -c '%n %U:%G %a' /etc/shadow /usr/bin/chage /var/mail /var/log/wtmp /usr/bin/passwd
echo "uid_map $(cat /proc/self/uid_map)"
test -e /etc/apt/apt.conf.d/99playground-sandbox && echo "apt setting present" || echo "no apt setting"
mkdir -p /tmp/repo /tmp/parts && : > /tmp/repo/Packages
echo 'deb [trusted=yes] file:/tmp/repo ./' > /tmp/parts/local.list
apt-get -q -o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts=/tmp/parts update >/tmp/apt.log 2>&1 || { cat /tmp/apt.log; exit 1; }
echo "apt partial $(stat -c %U /var/lib/apt/lists/partial)"
mkdir -p /tmp/pkg/DEBIAN /tmp/pkg/usr/share/hello-playground
printf 'Package: hello-playground\nVersion: 1.0\nArchitecture: all\nMaintainer: test <test@example.org>\nDescription: a test package\n' > /tmp/pkg/DEBIAN/control
echo hello > /tmp/pkg/usr/share/hello-playground/greeting
dpkg-deb --root-owner-group --build /tmp/pkg /tmp/hello.deb >/dev/null
dpkg -i /tmp/hello.deb >/tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; exit 1; }
dpkg -s hello-playground | grep Status
echo "script done"
`
	c := s.open(t, "")
	c.input("bash -c \"$(echo " + base64Std(script) + " | base64 -d)\"; echo exit-$?\r")
	c.waitFor("the script's end", 3*time.Minute, func(out string, _ []string) bool {
		return strings.Contains(out, "script done") || regexpExit.MatchString(out)
	})
	c.mu.Lock()
	out := strings.ReplaceAll(c.out.String(), "\r\n", "\n")
	c.mu.Unlock()
	for _, want := range []string{
		"/etc/shadow root:shadow 640\n",
		"/usr/bin/chage root:shadow 2755\n",
		"/var/mail root:mail 2775\n",
		"/var/log/wtmp root:utmp 664\n",
		"/usr/bin/passwd root:root 4755\n",
		"no apt setting\n",
		"apt partial _apt\n",
		"Status: install ok installed\n",
		"script done\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("want %q in the session's output:\n%s", want, out)
		}
	}
	if m := regexpUIDMap.FindStringSubmatch(out); m == nil || m[1] != "65536" {
		t.Errorf("the session's uid map is not a 65536-id range:\n%s", out)
	}
}

var (
	regexpExit   = regexp.MustCompile(`exit-[1-9][0-9]*`)
	regexpUIDMap = regexp.MustCompile(`uid_map +0 +[0-9]+ +([0-9]+)`)
)

func base64Std(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
