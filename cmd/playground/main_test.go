package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/gorilla/websocket"

	"github.com/guntainer/playground/internal/testenv"
	"github.com/guntainer/playground/runtime"
)

// The test binary doubles as the playground command: run with
// PLAYGROUND_TEST_MAIN=1 it is main, so the tests drive the real CLI,
// containers and all, without building a second binary.
func TestMain(m *testing.M) {
	runtime.MaybeInit()
	if os.Getenv("PLAYGROUND_TEST_MAIN") == "1" {
		os.Exit(mainArgs(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// playground returns the command line `playground args...`.
func playground(t testing.TB, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	state := filepath.Join(t.TempDir(), "state")
	// The test's own state dir and cache, neither made yet: a usage error
	// must leave them so.
	// The host rootfs, not the default auto, which would download Ubuntu
	// into every test's cache where the machine is online: the tests of
	// auto (envs_test.go) point it at a mirror of their own.
	cmd.Env = append(os.Environ(), "PLAYGROUND_TEST_MAIN=1", "PLAYGROUND_STATE_DIR="+state, "XDG_RUNTIME_DIR="+filepath.Dir(state),
		"PLAYGROUND_CACHE="+filepath.Join(filepath.Dir(state), "cache"), "PLAYGROUND_ROOTFS=host")
	if os.Getuid() == 0 {
		// A pool uid must reach its mount point.
		_ = os.Chmod(filepath.Dir(state), 0o711)
		_ = os.Chmod(filepath.Dir(filepath.Dir(state)), 0o711)
	}
	return cmd
}

func TestRunIDUnderAPty(t *testing.T) {
	cmd := playground(t, "run", "--", "id")
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: 100, Rows: 30})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := readUntilEOF(t, f)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("playground run -- id: %v\n%s", err, out)
	}
	if !strings.Contains(out, "uid=0(root) gid=0(root)") {
		t.Errorf("got %q, want uid=0(root)", out)
	}
}

func readUntilEOF(t *testing.T, f *os.File) string {
	t.Helper()
	done := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(f) // ends with EIO when the last slave closes
		done <- b
	}()
	select {
	case b := <-done:
		return string(b)
	case <-time.After(20 * time.Second):
		t.Fatal("no EOF from the pty")
		return ""
	}
}

func TestRunOnATerminal(t *testing.T) {
	cmd := playground(t, "run", "--hostname", "box", "--env", "GREETING=hi")
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: 111, Rows: 33})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// The container's terminal gets our size, its own changes, and raw
	// keys: the shell echoes what we type, not our terminal driver.
	lines := make(chan string, 100)
	go func() {
		r := bufio.NewReader(f)
		for {
			l, err := r.ReadString('\n')
			lines <- l
			if err != nil {
				close(lines)
				return
			}
		}
	}()
	expect := func(want string) {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("EOF before %q", want)
				}
				if strings.Contains(l, want) {
					return
				}
			case <-timeout:
				t.Fatalf("timed out waiting for %q", want)
			}
		}
	}
	_, _ = f.Write([]byte("echo $GREETING-$(hostname)-$(stty size)\r"))
	expect("hi-box-33 111")
	if err := pty.Setsize(f, &pty.Winsize{Cols: 90, Rows: 20}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // SIGWINCH travels through us to the container
	_, _ = f.Write([]byte("stty size; exit 7\r"))
	expect("20 90")
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 7 {
		t.Errorf("exit: got %v, want exit code 7", err)
	}
}

// TestServeEndToEnd starts the real server, runs a command in a session,
// then stops the server with SIGTERM, which drains (the session gets a
// NOTICE and goes on), and a second SIGTERM: the session is closed with
// 1001, its container torn down, and the server exits 0 leaving nothing
// behind.
func TestServeEndToEnd(t *testing.T) {
	cmd, url, logs := startServer(t)
	wsURL := "ws" + strings.TrimPrefix(url, "http") + "ws"
	conn, _, err := (&websocket.Dialer{Subprotocols: []string{"tty"}}).Dial(wsURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.WriteMessage(websocket.TextMessage, []byte(`{"AuthToken":"","columns":80,"rows":24}`))
	_ = conn.WriteMessage(websocket.BinaryMessage, []byte("0echo $((6*7))\r"))
	var out strings.Builder
	_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	for !strings.Contains(out.String(), "\n42\r\n") && !strings.Contains(out.String(), "\r42\r\n") {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("read: %v; output so far %q", err, out.String())
		}
		if len(msg) > 0 && msg[0] == '0' {
			out.Write(msg[1:])
		}
	}

	// The first SIGTERM drains: the session is told and goes on; the
	// second ends it.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("read while draining: %v", err)
		}
		if len(msg) > 0 && msg[0] == '9' && strings.Contains(string(msg), "maintenance") {
			break // the NOTICE
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var ce *websocket.CloseError
	for {
		_, _, err := conn.ReadMessage()
		if err != nil {
			if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
				t.Errorf("close: got %v, want 1001", err)
			}
			break
		}
	}
	waited := make(chan error, 1)
	go func() {
		for range logs { // drain
		}
		waited <- cmd.Wait()
	}()
	select {
	case err := <-waited:
		if err != nil {
			t.Errorf("server exit: %v, want 0", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("server did not exit after SIGTERM")
	}
	if pidAlive(cmd.Process.Pid) {
		t.Error("server process still there")
	}
	state := envOf(cmd, "PLAYGROUND_STATE_DIR")
	left, _ := filepath.Glob(filepath.Join(state, "c-*"))
	if len(left) > 0 {
		t.Errorf("mount points left: %v", left)
	}
}

func envOf(cmd *exec.Cmd, name string) string {
	v := ""
	for _, kv := range cmd.Env {
		if s, ok := strings.CutPrefix(kv, name+"="); ok {
			v = s
		}
	}
	return v
}

// startServer runs `playground serve` on a free loopback port and returns
// it, its URL and its decoded JSON log lines.
func startServer(t testing.TB, args ...string) (*exec.Cmd, string, chan map[string]any) {
	t.Helper()
	cmd := playground(t, append([]string{"--listen", "127.0.0.1:0"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	logs := make(chan map[string]any, 1000)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				t.Errorf("log line is not JSON: %s", sc.Text())
				continue
			}
			select {
			case logs <- m:
			default: // nobody reads them any more
			}
		}
		close(logs)
	}()
	for {
		select {
		case m, ok := <-logs:
			if !ok {
				t.Fatal("server exited before serving")
			}
			if m["message"] == "serving" {
				url, _ := m["url"].(string)
				return cmd, url, logs
			}
		case <-time.After(20 * time.Second):
			t.Fatal("server did not start")
		}
	}
}

func lookPath(name string) (string, error) { return exec.LookPath(name) }

// inUserNS returns a command that runs `playground args...` as root of a
// new user namespace (util-linux's unshare), after the shell snippet pre.
func inUserNS(t *testing.T, pre string, args ...string) *exec.Cmd {
	t.Helper()
	unshare := testenv.NeedCommand(t, "unshare")
	cmd := playground(t, args...)
	script := pre + ` exec "$0" "$@"`
	cmd.Args = append([]string{unshare, "--user", "--map-root-user", "/bin/sh", "-c", script, cmd.Path}, args...)
	cmd.Path = unshare
	return cmd
}

// TestNoUserNamespaces: on a machine where no user namespace can be made,
// run and serve fail with one line that says why, exit 1, leave nothing.
func TestNoUserNamespaces(t *testing.T) {
	for _, args := range [][]string{{"run", "--", "id"}, {"--listen", "127.0.0.1:0"}} {
		cmd := inUserNS(t, "echo 0 > /proc/sys/user/max_user_namespaces &&", args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("%v: got %v, want exit code 1; stderr:\n%s", args, err, stderr.String())
		}
		want := "create namespaces: no space left on device (the user namespace limit is reached: sysctl user.max_user_namespaces)"
		if got := strings.TrimSpace(stderr.String()); !strings.HasSuffix(got, want) || strings.Count(got, "\n") != 0 {
			t.Errorf("%v: stderr: want one line ending in %q, got\n%s", args, want, got)
		}
	}
}

// TestRootInAUserNamespace: root inside a user namespace (a rootless
// container) is an ordinary user to the host, and runs containers as one.
func TestRootInAUserNamespace(t *testing.T) {
	out, err := inUserNS(t, "", "run", "--", "id").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "uid=0(root)") {
		t.Errorf("got %v, %q; want uid=0(root)", err, out)
	}
}
