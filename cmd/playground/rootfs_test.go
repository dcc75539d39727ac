package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
)

// courseArchive writes a .tar.gz rootfs with a MiB of noise in it.
func courseArchive(t *testing.T) string {
	t.Helper()
	noise := make([]byte, 1<<20)
	_, _ = rand.Read(noise)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, f := range []struct{ name, body string }{{"etc/os-release", "ID=course\n"}, {"noise", string(noise)}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, f.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "course.tar.gz")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func rootfsCmd(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := rootfsMain(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), err
}

// TestRootfsCommand: pull, ls, rm and prune on a cache of the test's own.
func TestRootfsCommand(t *testing.T) {
	cache := filepath.Join(t.TempDir(), "cache")
	t.Cleanup(func() { _ = os.RemoveAll(cache) })
	archive := courseArchive(t)

	out, logs, err := rootfsCmd(t, "pull", "--cache", cache, "course="+archive, "host")
	if err != nil {
		t.Fatalf("pull: %v\n%s", err, logs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "course\tsha256:") || !strings.Contains(lines[0], "1.0 MiB") || lines[1] != "host\thost" {
		t.Fatalf("pull printed %q", out)
	}
	// Not a terminal: progress as log lines, in human units.
	if !strings.Contains(logs, "phase=unpacking") || !strings.Contains(logs, "phase=ready") || !strings.Contains(logs, "environment unpacking done") || !strings.Contains(logs, "MiB/s") {
		t.Fatalf("pull's log:\n%s", logs)
	}

	out, _, err = rootfsCmd(t, "ls", "--cache", cache)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "NAME") || !strings.Contains(out, "LAST USED") || !strings.Contains(out, "course ") ||
		!strings.Contains(out, archive) || !strings.Contains(out, "just now") || !strings.Contains(out, "1.0 MiB") {
		t.Fatalf("ls:\n%s", out)
	}

	out, _, err = rootfsCmd(t, "rm", "--cache", cache, "course")
	if err != nil || !strings.HasPrefix(out, "removed course (sha256:") {
		t.Fatalf("rm: %q %v", out, err)
	}
	if _, _, err := rootfsCmd(t, "rm", "--cache", cache, "course"); err == nil || !strings.Contains(err.Error(), `matches "course"`) {
		t.Fatalf("rm again: %v", err)
	}
	out, _, err = rootfsCmd(t, "prune", "--cache", cache, "--all")
	if err != nil || !strings.Contains(out, "pruned 0 environments") {
		t.Fatalf("prune: %q %v", out, err)
	}

	bad := filepath.Join(t.TempDir(), "bad.tar.gz")
	b, _ := os.ReadFile(archive)
	if err := os.WriteFile(bad, b[:len(b)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := rootfsCmd(t, "pull", "--cache", cache, bad); err == nil || !strings.Contains(err.Error(), `unpack bad.tar.gz: entry "noise"`) {
		t.Fatalf("pull of a bad archive: %v", err)
	}
}

func TestRootfsUsage(t *testing.T) {
	cache := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "rootfs needs a command"},
		{[]string{"frob"}, `unknown command "frob"`},
		{[]string{"pull", "--cache", cache}, "needs at least one argument"},
		{[]string{"ls", "--cache", cache, "x"}, "takes no arguments"},
		{[]string{"ls", "--cache", cache, "--all"}, "prune's flags"},
		{[]string{"pull", "--cache", cache, "ftp://x"}, "unknown scheme"},
		{[]string{"pull", "--cache", cache, "ubuntu:19.04"}, "no pinned Ubuntu release"},
	} {
		_, _, err := rootfsCmd(t, tc.args...)
		var ue *usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: want a usage error with %q, got %v", tc.args, tc.want, err)
		}
	}
	out, _, err := rootfsCmd(t, "--help")
	if err != nil || !strings.Contains(out, "docker://REF") {
		t.Fatalf("--help: %q %v", out, err)
	}
}

// TestRootfsProgressBar: on a terminal, pull draws a progress bar.
func TestRootfsProgressBar(t *testing.T) {
	master, slave, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	got := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(master) // EIO once the slave is closed
		got <- string(b)
	}()
	cache := filepath.Join(t.TempDir(), "cache")
	// Through prune: where this user has subordinate ids, the unpacked tree
	// belongs to them, and only the cache's own removal can take it away.
	t.Cleanup(func() {
		if _, _, err := rootfsCmd(t, "prune", "--cache", cache, "--all"); err != nil {
			t.Errorf("prune: %v", err)
		}
	})
	var out bytes.Buffer
	err = rootfsMain(context.Background(), []string{"pull", "--cache", cache, courseArchive(t)}, &out, slave)
	_ = slave.Close()
	if err != nil {
		t.Fatal(err)
	}
	var screen string
	select {
	case screen = <-got:
	case <-time.After(time.Minute):
		t.Fatal("no end of the terminal's output")
	}
	if !strings.Contains(screen, "course: unpacking") || !strings.Contains(screen, "100%") || !strings.Contains(screen, "MiB") {
		t.Fatalf("terminal showed %q", screen)
	}
}
