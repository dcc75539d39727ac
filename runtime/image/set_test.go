package image

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestSet prepares three environments side by side, as a server does at
// start: the default one (Ubuntu, its download held back) is not ready
// and /readyz says why; an image from a registry is ready meanwhile; an
// archive that is truncated fails with its name and an entry's, and the
// others keep working; a session asking for the default waits with
// progress notices and gets it once it is ready.
func TestSet(t *testing.T) {
	c, _ := newCache(t)
	m := &mirror{data: fakeUbuntu(t), hold: make(chan struct{})}
	serveMirror(t, c, m, "")
	release := sync.OnceFunc(func() { close(m.hold) })
	defer release()
	reg := newRegistry(t)
	reg.push(t, "course/env:1", v1.Config{Cmd: []string{"/bin/bash"}}, courseLayers...)
	bad := filepath.Join(t.TempDir(), "bad.tar.gz")
	noise := make([]byte, 100000)
	_, _ = rand.Read(noise)
	good := gzipOf(t, tarOf(t, dir("etc"), file("etc/os-release", "ID=bad\n"), file("etc/big", string(noise))))
	if err := os.WriteFile(bad, good[:len(good)/2], 0o644); err != nil {
		t.Fatal(err)
	}

	var rep phases
	s, err := NewSet(c, []string{"ubuntu", "course=docker://" + reg.host + "/course/env:1", bad}, rep.report)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := strings.Join(s.Names(), " "); got != "ubuntu course bad" || s.Default() != "ubuntu" {
		t.Fatalf("names %q, default %q", got, s.Default())
	}
	s.Start()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	course, err := s.Get(ctx, "course", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(course.Dir, "/root") || course.Config.Shell[0] != "/bin/bash" {
		t.Fatalf("course: %+v", course)
	}
	_, err = s.Get(ctx, "bad", nil)
	if err == nil || !strings.Contains(err.Error(), "unpack bad.tar.gz") || !strings.Contains(err.Error(), `"etc/big"`) {
		t.Fatalf("bad: want the archive and the entry named, got %v", err)
	}
	if err := s.Ready(); err == nil || !strings.HasPrefix(err.Error(), "environment ubuntu: ") {
		t.Fatalf("ready while the default is held: %v", err)
	}
	if _, err := s.Get(ctx, "nope", nil); err == nil || !strings.Contains(err.Error(), "there are: ubuntu, course, bad") {
		t.Fatalf("unknown name: %v", err)
	}

	// A session waits for the default, with notices.
	var mu sync.Mutex
	var notices []string
	got := make(chan error, 1)
	go func() {
		img, err := s.Get(ctx, "", func(p Progress) {
			mu.Lock()
			notices = append(notices, p.String())
			mu.Unlock()
		})
		if err == nil && img.Name != "ubuntu" {
			err = os.ErrInvalid
		}
		got <- err
	}()
	for {
		mu.Lock()
		n := len(notices)
		mu.Unlock()
		if n > 0 {
			break
		}
		select {
		case err := <-got:
			t.Fatalf("Get returned before the default was ready: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	release()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if err := s.Ready(); err != nil {
		t.Fatalf("ready after: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.HasPrefix(notices[0], "ubuntu: ") {
		t.Fatalf("notices %q", notices)
	}
	st := s.Status()
	if st[0].Progress.Phase != PhaseReady || st[1].Progress.Phase != PhaseReady || st[2].Progress.Phase != PhaseFailed {
		t.Fatalf("status %+v", st)
	}
}

func TestSetNames(t *testing.T) {
	c, _ := newCache(t)
	for _, tc := range []struct {
		sources []string
		want    string
	}{
		{[]string{"ubuntu", "ubuntu:24.04"}, `two environments named "ubuntu"`},
		{[]string{"Bad=host"}, "environment name"},
		{nil, "no environment"},
		{[]string{"ubuntu:19.04"}, "no pinned Ubuntu release"},
		{[]string{"ftp://x"}, "unknown scheme"},
	} {
		if _, err := NewSet(c, tc.sources, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: want %q, got %v", tc.sources, tc.want, err)
		}
	}
}

func TestParseSource(t *testing.T) {
	cwd, _ := os.Getwd()
	for _, tc := range []struct{ in, name, str string }{
		{"ubuntu", "ubuntu", "ubuntu:24.04"},
		{"ubuntu:22.04", "ubuntu-22.04", "ubuntu:22.04"},
		{"auto", "default", "auto"},
		{"host", "host", "host"},
		{"docker://python:3.12-slim", "python-3.12-slim", "docker://python:3.12-slim"},
		{"docker://ghcr.io/org/course:1", "course-1", "docker://ghcr.io/org/course:1"},
		{"docker://alpine", "alpine", "docker://alpine"},
		{"py=docker://python:3.12", "py", "docker://python:3.12"},
		{"/srv/Course Image.tar.zst", "course-image", "/srv/Course Image.tar.zst"},
		{"rootfs", "rootfs", filepath.Join(cwd, "rootfs")},
		{"./a=b.tar", "a-b", filepath.Join(cwd, "a=b.tar")},
		{"deb=/srv/debian", "deb", "/srv/debian"},
	} {
		src, err := ParseSource(tc.in)
		if err != nil || src.Name != tc.name || src.String() != tc.str {
			t.Errorf("%q: got %q %q %v, want %q %q", tc.in, src.Name, src.String(), err, tc.name, tc.str)
		}
	}
}
