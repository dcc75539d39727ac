package deploy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/guntainer/playground/internal/testenv"
)

// selfSigned writes a certificate and key for name and returns their
// paths and a pool that trusts the certificate.
func selfSigned(t *testing.T, name string) (certPath, keyPath string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		DNSNames:              []string{name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	_ = os.Chmod(dir, 0o755) // nginx's master reads them as root; fine either way
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der) // just made
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certPath, keyPath, pool
}

// replaceOnce replaces old with new in s, failing unless old occurs exactly
// once: the snippet under test has changed shape.
func replaceOnce(t *testing.T, s, old, new string) string {
	t.Helper()
	if n := strings.Count(s, old); n != 1 {
		t.Fatalf("nginx/playground.conf has %q %d times, want once: update this test with the snippet", old, n)
	}
	return strings.Replace(s, old, new, 1)
}

// TestNginxTLSSnippet: the one-machine snippet (nginx/playground.conf),
// with only its name, certificate, port and backend changed, proxies the
// page and a WebSocket session over TLS to a real server on loopback.
func TestNginxTLSSnippet(t *testing.T) {
	needUserNamespaces(t)
	testenv.NeedCommand(t, "nginx")
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
	srv := startServer(t, bin, "pg-tls", extra...)
	cert, key, pool := selfSigned(t, name)
	listen := freePort(t)

	conf := string(readShipped(t, "nginx/playground.conf"))
	conf = replaceOnce(t, conf, "listen 443 ssl;", "listen "+listen+" ssl;")
	conf = replaceOnce(t, conf, "listen [::]:443 ssl;\n", "")
	conf = replaceOnce(t, conf, "ssl_certificate     /etc/ssl/playground/fullchain.pem;", "ssl_certificate "+cert+";")
	conf = replaceOnce(t, conf, "ssl_certificate_key /etc/ssl/playground/privkey.pem;", "ssl_certificate_key "+key+";")
	conf = replaceOnce(t, conf, "proxy_pass http://127.0.0.1:8080;", "proxy_pass http://"+srv.addr+";")
	conf = strings.ReplaceAll(conf, "server_name playground.example.org;", "server_name "+name+";")
	// The port 80 redirect: the test has no port 80.
	i := strings.LastIndex(conf, "server {\n    listen 80;")
	if i < 0 {
		t.Fatal("nginx/playground.conf has no port 80 server: update this test with the snippet")
	}
	startNginx(t, []byte(conf[:i]))

	_, port, _ := net.SplitHostPort(listen)
	public := "https://" + name + ":" + port
	dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, listen)
	}
	tlsConf := &tls.Config{RootCAs: pool, ServerName: name}
	client := &http.Client{Transport: &http.Transport{DialContext: dial, TLSClientConfig: tlsConf}, Timeout: 10 * time.Second}
	waitHTTP(t, client, public+"/", http.StatusOK)
	resp, err := client.Get(public + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if !strings.Contains(strings.ToLower(string(page)), "<html") {
		t.Errorf("the page through nginx: %s", page)
	}

	s, resp, err := dialSession(dialOpts{url: "wss://" + name + ":" + port + "/ws", origin: public, tls: tlsConf, dial: dial})
	if err != nil {
		t.Fatalf("WebSocket through nginx: %v (%+v)", err, resp)
	}
	defer s.drop()
	if err := s.run("echo $((6*7))", "42\r"); err != nil {
		t.Fatalf("a session through nginx over TLS: %v", err)
	}
	if got, err := s.whoami(); err != nil || got != "pg-tls" {
		t.Fatalf("the session's host: %q, %v", got, err)
	}
	// A foreign page's origin gets no session through the proxy either.
	if _, resp, err := dialSession(dialOpts{url: "wss://" + name + ":" + port + "/ws", origin: "https://evil.example", tls: tlsConf, dial: dial}); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("a foreign origin through nginx: %v, %+v; want 403", err, resp)
	}
}
