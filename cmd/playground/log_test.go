package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
)

// TestLogFormat: by default (auto) the server logs for a person when its
// stderr is a terminal, and JSON lines, without a colour code, into a
// file; a format asked for is kept, and console into a file has no colour
// codes either.
func TestLogFormat(t *testing.T) {
	t.Run("auto on a terminal", func(t *testing.T) {
		cmd := playground(t, "--listen", "127.0.0.1:0")
		f, err := pty.Start(cmd)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		out := readAllAsync(f)
		out.waitFor(t, "serving")
		stopServer(t, cmd)
		line := lineWith(out.String(), "serving")
		if strings.HasPrefix(strings.TrimSpace(line), "{") || !strings.Contains(line, "INF") || !strings.Contains(line, "url=") {
			t.Errorf("want a console line, got %q", line)
		}
		if !strings.Contains(out.String(), "\x1b[") {
			t.Errorf("want colour on a terminal, got %q", out.String())
		}
	})
	for _, tt := range []struct {
		name string
		args []string
		json bool
	}{
		{"auto into a file", nil, true},
		{"json into a file", []string{"--log-format", "json"}, true},
		{"console into a file", []string{"--log-format", "console"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			logFile := filepath.Join(t.TempDir(), "log")
			f, err := os.Create(logFile)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			cmd := playground(t, append([]string{"--listen", "127.0.0.1:0"}, tt.args...)...)
			cmd.Stderr = f
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(30 * time.Second)
			for b, _ := os.ReadFile(logFile); !strings.Contains(string(b), "serving"); b, _ = os.ReadFile(logFile) {
				if time.Now().After(deadline) {
					_ = cmd.Process.Kill()
					t.Fatalf("no serving line in\n%s", b)
				}
				time.Sleep(20 * time.Millisecond)
			}
			stopServer(t, cmd)
			b, _ := os.ReadFile(logFile)
			if strings.Contains(string(b), "\x1b") {
				t.Errorf("escape codes in a file:\n%q", b)
			}
			sc := bufio.NewScanner(strings.NewReader(string(b)))
			for sc.Scan() {
				var m map[string]any
				isJSON := json.Unmarshal(sc.Bytes(), &m) == nil
				if isJSON != tt.json {
					t.Errorf("line %q: JSON %v, want %v", sc.Text(), isJSON, tt.json)
				}
				if _, ok := m["check_ms"]; isJSON && m["message"] == "containers work" && !ok {
					t.Errorf("the check's duration is not check_ms: %s", sc.Text())
				}
			}
		})
	}
}

func lineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}

// stopServer ends a server with SIGTERM and waits for it.
func stopServer(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("server exit: %v", err)
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("server did not end on SIGTERM")
	}
}

// TestListenURLs: the URLs a listener is announced at.
func TestListenURLs(t *testing.T) {
	ifaces := func() ([]net.Addr, error) {
		return []net.Addr{
			&net.IPNet{IP: net.ParseIP("127.0.0.1"), Mask: net.CIDRMask(8, 32)},
			&net.IPNet{IP: net.ParseIP("::1"), Mask: net.CIDRMask(128, 128)},
			&net.IPNet{IP: net.ParseIP("2001:db8::7"), Mask: net.CIDRMask(64, 128)},
			&net.IPNet{IP: net.ParseIP("fe80::1"), Mask: net.CIDRMask(64, 128)},
			&net.IPNet{IP: net.ParseIP("192.0.2.7"), Mask: net.CIDRMask(24, 32)},
			&net.IPNet{IP: net.ParseIP("169.254.1.1"), Mask: net.CIDRMask(16, 32)},
			&net.IPNet{IP: net.ParseIP("10.1.2.3"), Mask: net.CIDRMask(8, 32)},
		}, nil
	}
	all := []string{"http://localhost:8080/", "http://192.0.2.7:8080/", "http://10.1.2.3:8080/", "http://[2001:db8::7]:8080/"}
	tests := []struct {
		listen string
		addr   *net.TCPAddr
		want   []string
	}{
		{"0.0.0.0:8080", &net.TCPAddr{IP: net.IPv6unspecified, Port: 8080}, all},
		{":8080", &net.TCPAddr{IP: net.IPv6unspecified, Port: 8080}, all},
		{"[::]:8080", &net.TCPAddr{IP: net.IPv6unspecified, Port: 8080}, all},
		{"127.0.0.1:0", &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 41234}, []string{"http://127.0.0.1:41234/"}},
		{"[::1]:8080", &net.TCPAddr{IP: net.ParseIP("::1"), Port: 8080}, []string{"http://[::1]:8080/"}},
		{"localhost:8080", &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 8080}, []string{"http://localhost:8080/"}},
		{"192.0.2.7:80", &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 80}, []string{"http://192.0.2.7:80/"}},
	}
	for _, tt := range tests {
		if got := listenURLs(tt.listen, tt.addr, ifaces); !slices.Equal(got, tt.want) {
			t.Errorf("%s:\n-want %q\n+got  %q", tt.listen, tt.want, got)
		}
	}
	broken := func() ([]net.Addr, error) { return nil, errors.New("no interfaces") }
	if got := listenURLs(":8080", &net.TCPAddr{IP: net.IPv6unspecified, Port: 8080}, broken); !slices.Equal(got, []string{"http://localhost:8080/"}) {
		t.Errorf("without interfaces: got %q", got)
	}
}

// TestServeOnEveryInterface: `--listen 0.0.0.0:PORT` is announced as the
// URLs a class can open (localhost and each address of the machine), not
// as http://[::]:PORT/, each with the access token, which a server beyond
// loopback needs. The machine is a network namespace of the test's own,
// with addresses of the documentation ranges.
func TestServeOnEveryInterface(t *testing.T) {
	cmd := inUserNS(t, "ip addr add 192.0.2.7/32 dev lo && ip -6 addr add 2001:db8::7/128 dev lo nodad && ip link set lo up &&", "--listen", "0.0.0.0:0", "--token", "class-3b")
	cmd.Args = append(cmd.Args[:1], append([]string{"--net"}, cmd.Args[1:]...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	lines := make(chan map[string]any, 100)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				lines <- m
			} else {
				t.Logf("stderr: %s", sc.Text())
			}
		}
		close(lines)
	}()
	for {
		select {
		case m, ok := <-lines:
			if !ok {
				t.Fatal("server ended before serving")
			}
			if m["message"] != "serving" {
				continue
			}
			url, _ := m["url"].(string)
			base := strings.TrimSuffix(url, "/?token=class-3b")
			port := base[strings.LastIndexByte(base, ':')+1:]
			want := []any{"http://localhost:" + port + "/?token=class-3b", "http://192.0.2.7:" + port + "/?token=class-3b", "http://[2001:db8::7]:" + port + "/?token=class-3b"}
			if got, _ := m["urls"].([]any); !slices.Equal(got, want) || url != want[0] {
				t.Errorf("serving: url %q, urls %q; want %q", url, got, want)
			}
			return
		case <-time.After(60 * time.Second):
			t.Fatal("server did not start")
		}
	}
}
