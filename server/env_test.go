package server

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/websocket"
)

func TestEnvs(t *testing.T) {
	start := plainStart(t)
	var mu sync.Mutex
	var got []string
	s := newTestServer(t, Config{}, withStart(func(ctx context.Context, req StartRequest) (Terminal, error) {
		mu.Lock()
		got = append(got, req.Env)
		mu.Unlock()
		return start(ctx, req)
	}), func(d *Deps) { d.Envs = []string{"ubuntu", "python"} })
	for _, env := range []string{"", "ubuntu", "python"} {
		c := s.open(t, initWith("env", env), nil)
		c.input("echo $((6*7))\r")
		c.waitLine("42")
	}
	mu.Lock()
	if strings.Join(got, ",") != ",,python" {
		t.Errorf("StartRequest.Env %q, want the default as \"\" and python by name", got)
	}
	mu.Unlock()
	c := s.open(t, initWith("env", "nope"), nil)
	if code, text, _ := c.waitClose(); code != websocket.ClosePolicyViolation || !strings.Contains(text, "ubuntu, python") {
		t.Errorf("unknown env: close %d %q, want 1008 listing the names", code, text)
	}
	var envs struct {
		Envs    []string
		Default string
	}
	if code := s.apiGet(t, "/api/envs", "", &envs); code != http.StatusOK || strings.Join(envs.Envs, ",") != "ubuntu,python" || envs.Default != "ubuntu" {
		t.Errorf("/api/envs: %d %+v", code, envs)
	}
}

func TestNoEnvs(t *testing.T) {
	s := newTestServer(t, Config{}, withStart(plainStart(t)))
	c := s.open(t, initWith("env", "ubuntu"), nil)
	if code, text, _ := c.waitClose(); code != websocket.ClosePolicyViolation || !strings.Contains(text, "only the default") {
		t.Errorf("env without Deps.Envs: close %d %q, want 1008", code, text)
	}
	if n := s.starts.calls.Load(); n != 0 {
		t.Errorf("%d terminals started", n)
	}
}
