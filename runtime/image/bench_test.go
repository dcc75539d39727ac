package image

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/guntainer/playground/internal/testenv"
	"github.com/guntainer/playground/runtime"
	"github.com/rs/zerolog"
)

// BenchmarkUnpack unpacks the Debian rootfs (.tar.zst, 172 MB unpacked,
// 6666 entries) with this package and, as the baseline in the same run,
// with GNU tar and zstd: the figure is MB/s of unpacked tar stream.
//
//	go test ./runtime/image -run '^$' -bench Unpack -benchtime 3x
func BenchmarkUnpack(b *testing.B) {
	tarball := testenv.DebianTarball(b)
	size := tarSize(b, tarball)
	owners := DefaultOwners()
	b.Run("image", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			dir := benchDir(b)
			f, err := os.Open(tarball)
			if err != nil {
				b.Fatal(err)
			}
			d, err := decompress(f, false)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := Unpack(context.Background(), d, dir, "debian", owners, Limits{}, zerolog.Nop()); err != nil {
				b.Fatal(err)
			}
			d.Close()
			_ = f.Close()
			b.StopTimer()
			_ = removeTree(dir)
			b.StartTimer()
		}
	})
	b.Run("tar", func(b *testing.B) {
		testenv.NeedCommand(b, "tar")
		testenv.NeedCommand(b, "zstd")
		b.SetBytes(size)
		args := []string{"-I", "zstd", "-xf", tarball, "-C"}
		if owners == KeepOwners {
			args = append([]string{"--numeric-owner"}, args...)
		}
		for b.Loop() {
			dir := benchDir(b)
			if out, err := exec.Command("tar", append(args, dir)...).CombinedOutput(); err != nil {
				b.Fatalf("tar: %v\n%s", err, out)
			}
			b.StopTimer()
			_ = removeTree(dir)
			b.StartTimer()
		}
	})
}

func benchDir(b *testing.B) string {
	b.StopTimer()
	defer b.StartTimer()
	dir := filepath.Join(b.TempDir(), "root")
	if err := os.Mkdir(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	return dir
}

// tarSize is the length of the archive's tar stream, decompressed.
func tarSize(b *testing.B, p string) int64 {
	f, err := os.Open(p)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	d, err := decompress(f, false)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	n, err := io.Copy(io.Discard, d)
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkCachedPrepare is a server's start with its Ubuntu cached and no
// network at all (the mirror is gone): a new Cache on the directory, as a
// new process would open it, and Prepare.
func BenchmarkCachedPrepare(b *testing.B) {
	c, _ := newCache(b)
	m := &mirror{data: fakeUbuntu(b)}
	srv := serveMirror(b, c, m, "")
	img, err := c.Prepare(context.Background(), mustSource(b, "ubuntu"), nil)
	if err != nil {
		b.Fatal(err)
	}
	img.Close()
	srv.Close() // no network from here on
	src := mustSource(b, "ubuntu")
	for b.Loop() {
		c2, err := OpenCache(c.Dir(), zerolog.Nop())
		if err != nil {
			b.Fatal(err)
		}
		c2.Releases = c.Releases
		img, err := c2.Prepare(context.Background(), src, nil)
		if err != nil {
			b.Fatal(err)
		}
		img.Close()
	}
	if n := m.requests.Load(); n != 1 {
		b.Fatalf("%d requests, want the first only", n)
	}
}

// BenchmarkSessionStart starts a container on a 30 MB and on a 300 MB
// root file system from the cache, one after the other in each iteration
// so that the machine's load falls on both alike, and waits for `true` to
// end in it: the same time, as nothing is copied per session. It reports
// ms-30MB and ms-300MB per start.
func BenchmarkSessionStart(b *testing.B) {
	c, _ := newCache(b)
	sizes := []int{30, 300}
	specs := map[int]runtime.Spec{}
	for _, mb := range sizes {
		img := paddedRootfs(b, c, mb)
		defer img.Close()
		specs[mb] = runtime.Spec{Rootfs: img.Dir, Args: []string{"/bin/busybox", "true"}, StateDir: testStateDir(b)}
	}
	took := map[int]time.Duration{}
	for b.Loop() {
		for _, mb := range sizes {
			t0 := time.Now()
			ct, err := runtime.Start(specs[mb])
			if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.ENOSPC) {
				testenv.Skipf(b, "no user namespaces here: %v", err)
			}
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, ct)
			st, err := ct.Wait()
			if err != nil || st.Code != 0 {
				b.Fatalf("true: %v %v", st, err)
			}
			took[mb] += time.Since(t0)
			_ = ct.Close()
		}
	}
	for _, mb := range sizes {
		b.ReportMetric(float64(took[mb].Microseconds())/1000/float64(b.N), fmt.Sprintf("ms-%dMB", mb))
	}
}

// paddedRootfs is a rootfs of busybox and mb MB of 100 KiB files, made
// into a tarball and prepared through the cache.
func paddedRootfs(b *testing.B, c *Cache, mb int) *Image {
	busybox := testenv.NeedCommand(b, "busybox")
	bb, err := os.ReadFile(busybox)
	if err != nil {
		b.Fatal(err)
	}
	p := filepath.Join(b.TempDir(), fmt.Sprintf("padded-%d.tar", mb))
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	tw := tar.NewWriter(f)
	write := func(h *tar.Header, body []byte) {
		h.ModTime = testTime
		if err := tw.WriteHeader(h); err != nil {
			b.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			b.Fatal(err)
		}
	}
	write(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755}, nil)
	write(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bb))}, bb)
	write(&tar.Header{Name: "pad/", Typeflag: tar.TypeDir, Mode: 0o755}, nil)
	chunk := make([]byte, 100<<10)
	for i := range chunk {
		chunk[i] = byte(i)
	}
	for i := range mb * 10 {
		write(&tar.Header{Name: fmt.Sprintf("pad/%04d", i), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(chunk))}, chunk)
	}
	if err := tw.Close(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	img, err := c.Prepare(context.Background(), mustSource(b, p), nil)
	if err != nil {
		b.Fatal(err)
	}
	return img
}
