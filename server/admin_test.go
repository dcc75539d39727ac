package server

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/guntainer/playground/runtime"
)

func TestAdminAPI(t *testing.T) {
	const admin = "admin-2b7e"
	s := newTestServer(t, Config{AdminToken: admin})
	c := s.open(t, "", nil)
	si := c.session()
	c.input("echo $((6*7))\r")
	c.waitLine("42")

	var e struct {
		Error  string
		Status int
	}
	if code := s.apiGet(t, "/api/sessions", "", &e); code != http.StatusUnauthorized || e.Status != 401 || e.Error == "" {
		t.Errorf("without the token: %d %+v, want 401 as JSON", code, e)
	}
	if code := s.apiGet(t, "/api/sessions", "wrong", &e); code != http.StatusUnauthorized {
		t.Errorf("with a wrong token: %d, want 401", code)
	}
	if code := s.apiGet(t, "/api/nope", admin, &e); code != http.StatusNotFound || e.Status != 404 {
		t.Errorf("unknown path: %d %+v, want 404 as JSON", code, e)
	}
	if code := s.apiGet(t, "/api/sessions/NOSUCH", admin, &e); code != http.StatusNotFound || !strings.Contains(e.Error, "NOSUCH") {
		t.Errorf("unknown session: %d %+v, want 404", code, e)
	}

	var list struct{ Sessions []SessionInfo }
	// The input's count is added once the write to the terminal has
	// returned, which may come just after the shell's answer: wait for it.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if code := s.apiGet(t, "/api/sessions", admin, &list); code != http.StatusOK || len(list.Sessions) != 1 {
			t.Fatalf("list: %d %+v", code, list)
		}
		if list.Sessions[0].BytesIn == int64(len("echo $((6*7))\r")) || time.Now().After(deadline) {
			break
		}
	}
	got := list.Sessions[0]
	if got.ID != si.ID || got.Client != "127.0.0.1" || got.Container == "" || !got.Attached || got.Started.IsZero() ||
		got.BytesIn != int64(len("echo $((6*7))\r")) || got.BytesOut == 0 || got.Columns != 80 || got.Rows != 24 || got.Idle < 0 {
		t.Errorf("session %+v", got)
	}
	// A container counts its processes and memory (runtime's Stats).
	if got.Processes == nil || *got.Processes < 1 || got.Memory == nil || *got.Memory <= 0 {
		t.Errorf("session processes %v, memory %v: want the container's", got.Processes, got.Memory)
	}
	var one SessionInfo
	if code := s.apiGet(t, "/api/sessions/"+si.ID, admin, &one); code != http.StatusOK || one.ID != si.ID {
		t.Errorf("get: %d %+v", code, one)
	}

	// A teacher watches with the watch key the API hands out.
	var w struct{ Watch, Path string }
	if code := s.apiGet(t, "/api/sessions/"+si.ID+"/watch", admin, &w); code != http.StatusOK || w.Watch != si.Watch || !strings.HasPrefix(w.Path, "/?watch="+si.Watch) {
		t.Errorf("watch: %d %+v, want the session's watch key", code, w)
	}
	watcher := s.open(t, initWith("watch", w.Watch), nil)
	watcher.waitOutput("42")

	// End it, with a reason its user sees.
	var ended struct{ Ended, Reason string }
	if code := s.api(t, http.MethodDelete, "/api/sessions/"+si.ID, admin, `{"reason": "class is over"}`, &ended); code != http.StatusOK || ended.Ended != si.ID {
		t.Errorf("end: %d %+v", code, ended)
	}
	checkLimitEnd(t, c, "session ended by an administrator: class is over", "ended by an administrator: class is over")
	watcher.waitClose()
	s.waitSessions(t, 0)
	if code := s.api(t, http.MethodPost, "/api/sessions/"+si.ID+"/end", admin, "", &e); code != http.StatusNotFound {
		t.Errorf("end an ended session: %d, want 404", code)
	}
	if code := s.api(t, http.MethodDelete, "/api/sessions/x", admin, `not json`, &e); code != http.StatusNotFound {
		t.Errorf("end with bad JSON of an unknown session: %d, want 404", code)
	}
}

func TestAdminAPIOff(t *testing.T) {
	s := newTestServer(t, Config{}, withStart(plainStart(t)))
	var e struct {
		Error  string
		Status int
	}
	if code := s.apiGet(t, "/api/sessions", "anything", &e); code != http.StatusForbidden || !strings.Contains(e.Error, "--admin-token") {
		t.Errorf("admin API without --admin-token: %d %+v, want 403 saying how to turn it on", code, e)
	}
}

// statsTerminal is a Terminal that reports processes and memory, as a
// container does with its cgroup (runtime.Stats). The numbers are made
// up, since a plain pty has no cgroup; the admin API's handling of them
// is what is tested.
type statsTerminal struct{ Terminal }

func (statsTerminal) Stats() (runtime.Stats, error) {
	return runtime.Stats{Processes: 3, MemoryBytes: 12 << 20}, nil
}

func TestAdminStats(t *testing.T) {
	start := plainStart(t)
	s := newTestServer(t, Config{AdminToken: "a"}, withStart(func(ctx context.Context, req StartRequest) (Terminal, error) {
		term, err := start(ctx, req)
		if err != nil {
			return nil, err
		}
		return statsTerminal{term}, nil
	}))
	c := s.open(t, "", nil)
	c.waitOutput("$ ")
	var list struct{ Sessions []SessionInfo }
	s.apiGet(t, "/api/sessions", "a", &list)
	if len(list.Sessions) != 1 || list.Sessions[0].Processes == nil || *list.Sessions[0].Processes != 3 || *list.Sessions[0].Memory != 12<<20 {
		t.Errorf("sessions %+v: want processes 3 and memory 12 MiB", list.Sessions)
	}
	// A terminal without Stats has none to show.
	term, err := start(context.Background(), StartRequest{Cols: 80, Rows: 24})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = term.Close(); _, _ = term.Wait() }()
	if p, m, ok := terminalStats(term); ok {
		t.Errorf("terminalStats of a terminal without Stats: %d %d %v", p, m, ok)
	}
}
