package deploy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/guntainer/playground/internal/testenv"
)

var flagCache sync.Map // binary → its serve flags

// A real playground server, started from the binary the release builds.
type pgServer struct {
	name   string
	addr   string // 127.0.0.1:PORT
	cmd    *exec.Cmd
	mu     sync.Mutex
	log    bytes.Buffer
	exited chan struct{}
}

// serveFlags are the flags `playground serve` knows, from its --help.
func serveFlags(t testing.TB, bin string) map[string]bool {
	t.Helper()
	if f, ok := flagCache.Load(bin); ok {
		return f.(map[string]bool)
	}
	out, _ := exec.Command(bin, "serve", "--help").CombinedOutput() // --help exits 0 or 2 by flag package; the text is what counts
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+-{1,2}([a-z][a-z0-9-]*)`).FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if !flags["listen"] {
		t.Fatalf("playground serve --help lists no --listen:\n%s", out)
	}
	flagCache.Store(bin, flags)
	return flags
}

// startServer starts `playground serve` on a loopback port of its own,
// its containers named name, and waits until it serves.
func startServer(t *testing.T, bin, name string, extra ...string) *pgServer {
	t.Helper()
	state := stateDir(t)
	args := []string{"serve", "--listen=127.0.0.1:0", "--rootfs=host", "--hostname=" + name, "--state-dir=" + state, "--log-format=json"}
	if serveFlags(t, bin)["drain-timeout"] {
		// Stopping at the test's end need not wait for the drain; a
		// test that drains says how long (a later flag wins).
		args = append(args, "--drain-timeout=2s")
	}
	args = append(args, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+filepath.Dir(state))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &pgServer{name: name, cmd: cmd, exited: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			s.mu.Lock()
			s.log.Write(line)
			s.log.WriteByte('\n')
			s.mu.Unlock()
			var l struct{ URL string }
			if json.Unmarshal(line, &l) == nil && l.URL != "" {
				select {
				case urls <- l.URL:
				default:
				}
			}
		}
		_ = cmd.Wait() // its status is read from ProcessState
		close(s.exited)
	}()
	t.Cleanup(func() { s.stop(t) })
	select {
	case u := <-urls:
		s.addr = strings.TrimSuffix(strings.TrimPrefix(u, "http://"), "/")
	case <-s.exited:
		t.Fatalf("server %s exited: %v\n%s", name, cmd.ProcessState, s.logText())
	case <-time.After(60 * time.Second):
		t.Fatalf("server %s did not serve within 60 s:\n%s", name, s.logText())
	}
	return s
}

func (s *pgServer) logText() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// stop ends the server: SIGTERM (which drains, where the server drains),
// a second SIGTERM after 10 s (which ends the sessions left at once), and
// SIGKILL after 30 s more, which is a failure.
func (s *pgServer) stop(t testing.TB) {
	for _, wait := range []time.Duration{10 * time.Second, 30 * time.Second} {
		select {
		case <-s.exited:
			return
		default:
		}
		_ = s.cmd.Process.Signal(sigterm) // it may be gone already
		select {
		case <-s.exited:
			return
		case <-time.After(wait):
		}
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	t.Errorf("server %s did not stop within 40 s of two SIGTERMs", s.name)
}

// nginx runs Debian's nginx with conf (the http-level blocks) on its own
// prefix directory, in the foreground; it stops at the test's end.
func startNginx(t *testing.T, conf []byte) {
	t.Helper()
	bin := testenv.NeedCommand(t, "nginx")
	dir := t.TempDir()
	_ = os.Chmod(dir, 0o755) // nginx's workers run as nobody when it is root
	for _, d := range []string{"logs", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o777); err != nil {
			t.Fatal(err)
		}
		_ = os.Chmod(filepath.Join(dir, d), 0o777) // the workers write temp files
	}
	user := ""
	if os.Getuid() == 0 {
		user = "user nobody nogroup;"
	}
	main := fmt.Sprintf(`%s
daemon off;
master_process on;
worker_processes 1;
pid %[2]s/nginx.pid;
error_log %[2]s/logs/error.log info;
events { worker_connections 1024; }
http {
    access_log %[2]s/logs/access.log;
    client_body_temp_path %[2]s/tmp/body;
    proxy_temp_path %[2]s/tmp/proxy;
    fastcgi_temp_path %[2]s/tmp/fastcgi;
    uwsgi_temp_path %[2]s/tmp/uwsgi;
    scgi_temp_path %[2]s/tmp/scgi;
    include %[2]s/site.conf;
}
`, user, dir)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "site.conf"), conf, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-t", "-p", dir, "-c", filepath.Join(dir, "nginx.conf")).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s\n%s", err, out, conf)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }() // its end is checked by done
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGQUIT) // graceful: workers finish, then exit
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "logs/error.log"))
			t.Logf("nginx error log (last lines):\n%s", tail(b, 30))
		}
	})
}

// freePort returns a loopback port nobody listens on now.
func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close() // only its number was wanted
	return addr
}

// waitHTTP waits until url answers status.
func waitHTTP(t testing.TB, client *http.Client, url string, status int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == status {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %d within 20 s (last: %v %v)", url, status, resp, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A terminal session over the playground's WebSocket protocol.
type wsSession struct {
	conn    *websocket.Conn
	out     bytes.Buffer
	info    sessionInfo
	exit    []byte
	closeCo int
}

// sessionInfo is the SESSION message (an extension of the protocol).
type sessionInfo struct {
	ID     string `json:"id"`
	Resume string `json:"resume"`
	Route  string `json:"route"`
}

type dialOpts struct {
	url    string // ws://HOST:PORT/ws[?route=...]
	origin string
	tls    *tls.Config
	dial   func(ctx context.Context, network, addr string) (net.Conn, error)
	init   map[string]any
}

func dialSession(o dialOpts) (*wsSession, *http.Response, error) {
	d := websocket.Dialer{Subprotocols: []string{"tty"}, HandshakeTimeout: 20 * time.Second, TLSClientConfig: o.tls, NetDialContext: o.dial}
	h := http.Header{}
	if o.origin != "" {
		h.Set("Origin", o.origin)
	}
	c, resp, err := d.Dial(o.url, h)
	if err != nil {
		return nil, resp, err
	}
	init := map[string]any{"AuthToken": "", "columns": 100, "rows": 30}
	for k, v := range o.init {
		init[k] = v
	}
	b, _ := json.Marshal(init) // plain data
	if err := c.WriteMessage(websocket.TextMessage, b); err != nil {
		_ = c.Close()
		return nil, resp, err
	}
	return &wsSession{conn: c}, resp, nil
}

var errClosed = errors.New("session closed")

// readUntil reads frames until the output holds want, or fails.
func (s *wsSession) readUntil(want string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for !strings.Contains(s.out.String(), want) {
		_ = s.conn.SetReadDeadline(deadline)
		_, msg, err := s.conn.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				s.closeCo = ce.Code
				return fmt.Errorf("%w with %d %q before %q; output %q", errClosed, ce.Code, ce.Text, want, s.out.String())
			}
			return fmt.Errorf("waiting for %q: %v; output %q", want, err, s.out.String())
		}
		if len(msg) == 0 {
			continue
		}
		switch msg[0] {
		case '0':
			s.out.Write(msg[1:])
		case '7':
			_ = json.Unmarshal(msg[1:], &s.info) // an unparsable SESSION leaves info empty, which the tests see
		case '8':
			s.exit = msg[1:]
		}
	}
	return nil
}

func (s *wsSession) input(text string) error {
	return s.conn.WriteMessage(websocket.BinaryMessage, append([]byte{'0'}, text...))
}

// run types cmd and waits for a line holding marker.
func (s *wsSession) run(cmd, marker string) error {
	if err := s.input(cmd + "\n"); err != nil {
		return err
	}
	return s.readUntil(marker, 30*time.Second)
}

// drop ends the connection as a network failure would: no close frame.
func (s *wsSession) drop() { _ = s.conn.UnderlyingConn().Close() }

var sigterm = syscall.SIGTERM
