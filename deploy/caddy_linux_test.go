package deploy

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/guntainer/playground/internal/testenv"
)

// TestCaddySnippet: the one-machine Caddyfile, with its name, port and
// backend changed and the test's certificate in place of Caddy's own
// (ACME needs the internet), proxies a WebSocket session over TLS to a
// real server on loopback.
func TestCaddySnippet(t *testing.T) {
	needUserNamespaces(t)
	caddy := testenv.NeedCommand(t, "caddy")
	bin := playgroundBinary(t)
	flags := serveFlags(t, bin)
	const name = "playground.test"
	var extra []string
	if flags["allowed-host"] {
		extra = append(extra, "--allowed-host="+name)
	}
	if flags["trusted-proxies"] {
		extra = append(extra, "--trusted-proxies=127.0.0.1")
	}
	srv := startServer(t, bin, "pg-caddy", extra...)
	cert, key, pool := selfSigned(t, name)
	listen := freePort(t)
	_, port, _ := net.SplitHostPort(listen)

	conf := string(readShipped(t, "caddy/Caddyfile"))
	conf = replaceOnce(t, conf, "playground.example.org {", "https://"+name+":"+port+" {\n\tbind 127.0.0.1\n\ttls "+cert+" "+key)
	conf = replaceOnce(t, conf, "reverse_proxy 127.0.0.1:8080", "reverse_proxy "+srv.addr)
	dir := t.TempDir()
	// Caddy's own state, and no admin endpoint, no trust store, no redirect
	// listener on port 80.
	global := "{\n\tadmin off\n\tskip_install_trust\n\tauto_https disable_redirects\n\tstorage file_system " + filepath.Join(dir, "data") + "\n}\n"
	file := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(file, []byte(global+conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(caddy, "validate", "--adapter", "caddyfile", "--config", file).CombinedOutput(); err != nil {
		t.Fatalf("caddy validate: %v\n%s", err, out)
	}
	cmd := exec.Command(caddy, "run", "--adapter", "caddyfile", "--config", file)
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }() // its end is checked by done
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM) // it may have exited
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("caddy's log:\n%s", tail(out.Bytes(), 30))
		}
	})

	public := "https://" + name + ":" + port
	dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, listen)
	}
	tlsConf := &tls.Config{RootCAs: pool, ServerName: name}
	client := &http.Client{Transport: &http.Transport{DialContext: dial, TLSClientConfig: tlsConf}, Timeout: 10 * time.Second}
	waitHTTP(t, client, public+"/", http.StatusOK)
	s, resp, err := dialSession(dialOpts{url: strings.Replace(public, "https", "wss", 1) + "/ws", origin: public, tls: tlsConf, dial: dial})
	if err != nil {
		t.Fatalf("WebSocket through Caddy: %v (%+v)", err, resp)
	}
	defer s.drop()
	if err := s.run("echo $((6*7))", "42\r"); err != nil {
		t.Fatalf("a session through Caddy over TLS: %v", err)
	}
	if got, err := s.whoami(); err != nil || got != "pg-caddy" {
		t.Fatalf("the session's host: %q, %v", got, err)
	}
}
