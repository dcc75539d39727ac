package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/guntainer/playground/internal/testenv"
)

// busyboxTar is a small root file system as a tar: Debian's busybox-static
// with its applets, /etc/motd, and an empty /work.
func busyboxTar(t *testing.T) []byte {
	t.Helper()
	return busyboxTarWith(t, nil)
}

// busyboxTarWith is busyboxTar with more files (name -> content; a name
// ending in "/" is a directory), after the others.
func busyboxTarWith(t *testing.T, extra map[string]string) []byte {
	t.Helper()
	bb := "/bin/busybox"
	list, err := exec.Command(bb, "--list").Output()
	if err != nil || !bytes.Contains(list, []byte("\nsh\n")) {
		testenv.Skipf(t, "no full busybox at %s (Debian's busybox-static): %v", bb, err)
	}
	body, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h *tar.Header, b []byte) {
		h.Size = int64(len(b))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"bin", "etc", "root", "tmp", "proc", "dev", "sys", "work"} {
		add(&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755}, nil)
	}
	add(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755}, body)
	for _, applet := range strings.Fields(string(list)) {
		if applet != "busybox" {
			add(&tar.Header{Name: "bin/" + applet, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777}, nil)
		}
	}
	add(&tar.Header{Name: "etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644}, []byte("root:x:0:0:root:/root:/bin/sh\n"))
	add(&tar.Header{Name: "etc/motd", Typeflag: tar.TypeReg, Mode: 0o644}, []byte("welcome to the course\n"))
	names := make([]string, 0, len(extra))
	for n := range extra {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if strings.HasSuffix(n, "/") {
			add(&tar.Header{Name: n, Typeflag: tar.TypeDir, Mode: 0o755}, nil)
		} else {
			add(&tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: 0o644}, []byte(extra[n]))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestRunRootfsSources: run --rootfs takes every kind of source: host and
// a directory without a cache (nothing is written), an archive unpacked
// into the cache once, and an image from a registry (a real one, on
// loopback) with its config applied: environment, working directory and
// shell, each overridden by its flag.
func TestRunRootfsSources(t *testing.T) {
	layer := busyboxTar(t)
	work := t.TempDir()
	_ = os.Chmod(work, 0o755) // a pool uid (root mode) reads the archive's tree from the cache, not from here
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(layer)
	_ = zw.Close()
	archive := filepath.Join(work, "course.tar.gz")
	if err := os.WriteFile(archive, gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")
	pushImage(t, host+"/course/env:1", layer, v1.Config{Env: []string{"PATH=/bin", "COURSE=1"}, WorkingDir: "/work", Cmd: []string{"/bin/sh"}})

	// Show the environment, the working directory and the program's argv.
	const script = "echo $COURSE; pwd; tr '\\0' ' ' </proc/$$/cmdline; echo\n"
	tests := []struct {
		name      string
		args      []string
		stdin     string
		want      string
		wantCache bool
	}{
		{"host", []string{"run", "--", "sh", "-c", "test -d /usr/bin && echo host"}, "", "host\n", false},
		{"archive", []string{"run", "--rootfs", archive, "--", "cat", "/etc/motd"}, "", "welcome to the course\n", true},
		{"image", []string{"run", "--rootfs", "docker://" + host + "/course/env:1"}, script, "1\n/work\n/bin/sh -l \n", true},
		{"image with flags", []string{"run", "--rootfs", "docker://" + host + "/course/env:1", "--env", "COURSE=2", "--workdir", "/", "--", "sh", "-c", script}, "", "2\n/\nsh -c " + script + " \n", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := playground(t, tt.args...)
			cmd.Stdin = strings.NewReader(tt.stdin)
			r := runCommand(t, cmd)
			if r.code != 0 || r.stdout != tt.want {
				t.Errorf("exit %d, stdout -want %q +got %q; stderr:\n%s", r.code, tt.want, r.stdout, r.stderr)
			}
			if tt.wantCache && !strings.Contains(r.stderr, "ready") {
				t.Errorf("stderr: want the preparation told, got\n%s", r.stderr)
			}
			cache := envOf(cmd, "PLAYGROUND_CACHE")
			_, err := os.Stat(cache)
			if made := err == nil; made != tt.wantCache {
				t.Errorf("cache %s made: %v, want %v", cache, made, tt.wantCache)
			}
			if !tt.wantCache {
				return
			}
			// Once prepared, the next run starts from the cache.
			entries, _ := os.ReadDir(filepath.Join(cache, "rootfs"))
			cmd2 := playground(t, tt.args...)
			cmd2.Env = cmd.Env
			cmd2.Stdin = strings.NewReader(tt.stdin)
			// From the cache: nothing to tell.
			if r := runCommand(t, cmd2); r.code != 0 || r.stdout != tt.want || r.stderr != "" {
				t.Errorf("second run: exit %d, stdout %q; stderr:\n%s", r.code, r.stdout, r.stderr)
			}
			again, _ := os.ReadDir(filepath.Join(cache, "rootfs"))
			if len(entries) != 1 || len(again) != 1 {
				t.Errorf("cache rootfs entries: %d then %d, want 1 and 1", len(entries), len(again))
			}
		})
	}

	// A directory is used in place, with no cache.
	dir := filepath.Join(work, "tree")
	cmd := playground(t, "run", "--rootfs", archive, "--", "true") // unpack once to get a tree
	if r := runCommand(t, cmd); r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if out, err := exec.Command("tar", "-xzf", archive, "-C", mkdir(t, dir)).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	cmd = playground(t, "run", "--rootfs", dir, "--", "cat", "/etc/motd")
	if r := runCommand(t, cmd); r.code != 0 || r.stdout != "welcome to the course\n" {
		t.Errorf("directory: exit %d, stdout %q; stderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(envOf(cmd, "PLAYGROUND_CACHE")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a directory made the cache: %v", err)
	}
}

func mkdir(t *testing.T, d string) string {
	t.Helper()
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// pushImage writes an image of one layer and the given config to ref.
func pushImage(t *testing.T, ref string, layer []byte, cfg v1.Config) {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layer)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Config = "linux", goruntime.GOARCH, cfg
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
}
