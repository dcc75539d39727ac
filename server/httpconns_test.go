package server

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"testing/fstest"
)

// serveHTTPServer serves a Server with the http.Server the command uses.
func serveHTTPServer(t *testing.T) *httptest.Server {
	srv, err := New(Config{}, Deps{Log: zerolog.New(zerolog.NewTestWriter(t)), Start: testStart(t), Static: fstest.MapFS{"index.html": {Data: []byte(testIndex)}}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(srv)
	ts.Config = srv.HTTPServer(nil)
	ts.Start()
	t.Cleanup(ts.Close)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return ts
}

// TestHeaderBytesBounded: 300 connections of one client, each sending 1 MB
// of headers (net/http's default bound) without their end, held 318 MB of
// the server's memory; headers beyond MaxHeaderBytes are refused with 431,
// and a page's are far below it.
func TestHeaderBytesBounded(t *testing.T) {
	ts := serveHTTPServer(t)
	get := func(header int) int {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+"/healthz", nil)
		req.Header.Set("X-Pad", strings.Repeat("a", header))
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatalf("GET with %d bytes of header: %v", header, err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(16 << 10); code != http.StatusOK {
		t.Errorf("16 KiB of headers: %d, want 200", code)
	}
	if code := get(MaxHeaderBytes + 8<<10); code != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("%d bytes of headers: %d, want 431", MaxHeaderBytes+8<<10, code)
	}
}

// TestIdleConnsPerPeer: a client that opened 5,000 connections, made one
// request on each and kept them, had all 5,000 kept open, with no end (97 MB
// of the server's memory and 5,000 fds). The server the command serves with
// (HTTPServer) keeps at most MaxIdleConnsPerPeer of one address between
// requests, closes idle ones after HTTPIdleTimeout, and another address is
// not held back.
func TestIdleConnsPerPeer(t *testing.T) {
	ts := serveHTTPServer(t)
	if ts.Config.IdleTimeout <= 0 || ts.Config.IdleTimeout > 5*time.Minute || ts.Config.ReadHeaderTimeout <= 0 {
		t.Errorf("IdleTimeout %v, ReadHeaderTimeout %v: want both set, the idle one at most 5 minutes", ts.Config.IdleTimeout, ts.Config.ReadHeaderTimeout)
	}
	addr := ts.Listener.Addr().String()
	get := func(c net.Conn) error {
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: "+addr+"\r\n\r\n"); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	}
	open := func(local string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		if err := get(c); err != nil {
			t.Fatalf("GET /healthz: %v", err)
		}
		return c
	}
	// stillOpen reports which connections the server has not closed:
	// a read that times out finds one open, EOF one closed.
	stillOpen := func(conns []net.Conn) []bool {
		open := make([]bool, len(conns))
		var wg sync.WaitGroup
		for i, c := range conns {
			wg.Go(func() {
				_ = c.SetReadDeadline(time.Now().Add(time.Second))
				_, err := c.Read(make([]byte, 1))
				open[i] = errors.Is(err, os.ErrDeadlineExceeded)
				_ = c.SetReadDeadline(time.Time{})
			})
		}
		wg.Wait()
		return open
	}

	const over = 16
	var conns []net.Conn
	for range MaxIdleConnsPerPeer + over {
		conns = append(conns, open("127.0.0.1"))
	}
	other := open("127.0.0.2")
	kept := 0
	for _, o := range stillOpen(conns) {
		if o {
			kept++
		}
	}
	if kept != MaxIdleConnsPerPeer {
		t.Errorf("%d idle connections of one address kept open, want %d", kept, MaxIdleConnsPerPeer)
	}
	if o := stillOpen([]net.Conn{other}); !o[0] {
		t.Error("another address's idle connection was closed")
	}
	// One kept is still served, and kept again after its request.
	for i, o := range stillOpen(conns) {
		if o {
			if err := get(conns[i]); err != nil {
				t.Errorf("a second request on a kept connection: %v", err)
			} else if !stillOpen(conns[i : i+1])[0] {
				t.Error("a kept connection was closed after its second request")
			}
			break
		}
	}
}
