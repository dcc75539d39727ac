package image

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestArchiveSources unpacks each compression, told by content, not name;
// the same content under two names is one tree; a file that changed is
// unpacked again; an unchanged one is not even read.
func TestArchiveSources(t *testing.T) {
	c, _ := newCache(t)
	tdir := t.TempDir()
	raw := tarOf(t, dir("etc"), file("etc/os-release", "ID=test\n"), symlink("bin", "usr/bin"), dir("usr"), dir("usr/bin"), file("usr/bin/sh", "#!"))
	formats := map[string][]byte{"plain.tar": raw, "gz.tar.gz": gzipOf(t, raw), "xz.tar.xz": xzOf(t, raw), "zst.tar.zst": zstdOf(t, raw), "misnamed.tar": zstdOf(t, tarOf(t, file("z", "zstd inside")))}
	digests := map[string]string{}
	for n, b := range formats {
		p := filepath.Join(tdir, n)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		img, err := c.Prepare(context.Background(), mustSource(t, p), nil)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		img.Close()
		digests[n] = img.Digest
		want := "etc/os-release"
		if n == "misnamed.tar" {
			want = "z"
		}
		if _, err := os.Stat(filepath.Join(img.Dir, want)); err != nil || img.Digest != "sha256:"+sha256Hex(b) {
			t.Errorf("%s: %v, digest %s", n, err, img.Digest)
		}
	}
	// The same bytes under another name: the same tree, not unpacked
	// into the cache twice.
	copyPath := filepath.Join(tdir, "copy.tgz")
	if err := os.WriteFile(copyPath, formats["gz.tar.gz"], 0o644); err != nil {
		t.Fatal(err)
	}
	img, err := c.Prepare(context.Background(), mustSource(t, copyPath), nil)
	if err != nil {
		t.Fatal(err)
	}
	img.Close()
	if es, _ := os.ReadDir(c.path("rootfs")); len(es) != len(formats) {
		t.Fatalf("%d trees for %d distinct archives", len(es), len(formats))
	}
	// Unchanged: nothing read. Changed: unpacked again.
	unpacked := unpacks.Load()
	if img, err = c.Prepare(context.Background(), mustSource(t, copyPath), nil); err != nil {
		t.Fatal(err)
	}
	img.Close()
	if unpacks.Load() != unpacked {
		t.Fatal("an unchanged archive was unpacked again")
	}
	changed := gzipOf(t, tarOf(t, file("etc/os-release", "ID=changed\n")))
	if err := os.WriteFile(copyPath, changed, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(copyPath, time.Now(), time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if img, err = c.Prepare(context.Background(), mustSource(t, copyPath), nil); err != nil {
		t.Fatal(err)
	}
	img.Close()
	if b, _ := os.ReadFile(filepath.Join(img.Dir, "etc/os-release")); string(b) != "ID=changed\n" || unpacks.Load() != unpacked+1 {
		t.Fatalf("changed archive: os-release %q, %d unpacks", b, unpacks.Load()-unpacked)
	}
}

// TestBadArchives: a truncated gzip, a corrupt xz, something that is no
// archive: each fails naming the archive, leaves nothing, and the cache's
// other environments keep working.
func TestBadArchives(t *testing.T) {
	c, _ := newCache(t)
	tdir := t.TempDir()
	okPath := filepath.Join(tdir, "ok.tar")
	if err := os.WriteFile(okPath, tarOf(t, file("ok", "ok")), 0o644); err != nil {
		t.Fatal(err)
	}
	okImg, err := c.Prepare(context.Background(), mustSource(t, okPath), nil)
	if err != nil {
		t.Fatal(err)
	}
	okImg.Close()
	noise := make([]byte, 200000)
	for i := range noise {
		noise[i] = byte(i * 7919 >> 3)
	}
	gz := gzipOf(t, tarOf(t, file("a", "a"), file("big", string(noise))))
	xzb := xzOf(t, tarOf(t, file("a", "a")))
	xzb[len(xzb)-20] ^= 0xff
	for _, tc := range []struct{ name, want string }{
		{"truncated.tar.gz", `unpack truncated.tar.gz: `},
		{"corrupt.tar.xz", `unpack corrupt.tar.xz: `},
		{"text.tar", `unpack text.tar: `},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(tdir, tc.name)
			b := map[string][]byte{"truncated.tar.gz": gz[:len(gz)*3/4], "corrupt.tar.xz": xzb, "text.tar": []byte(strings.Repeat("not a tar file\n", 100))}[tc.name]
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := c.Prepare(context.Background(), mustSource(t, p), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want %q, got %v", tc.want, err)
			}
			t.Logf("refused: %v", err)
			if es, _ := os.ReadDir(c.path("tmp")); len(es) != 0 {
				t.Fatalf("tmp/ has %v", es)
			}
			if es, _ := os.ReadDir(c.path("rootfs")); len(es) != 1 {
				t.Fatalf("rootfs/ has %v, want only the good one", es)
			}
			img, err := c.Prepare(context.Background(), mustSource(t, okPath), nil)
			if err != nil || img.Dir != okImg.Dir {
				t.Fatalf("the good environment after a bad one: %v", err)
			}
			img.Close()
		})
	}
}

// TestListRemovePrune: ls shows name, sources, digest, size and last use;
// rm refuses what a running process uses and removes it once released;
// prune removes leftovers of dead processes, and with all, the rest.
func TestListRemovePrune(t *testing.T) {
	c, _ := newCache(t)
	tdir := t.TempDir()
	var imgs []*Image
	for _, n := range []string{"alpha.tar", "beta.tar.gz"} {
		p := filepath.Join(tdir, n)
		b := tarOf(t, file("name", n), file("pad", strings.Repeat("p", 5000)))
		if strings.HasSuffix(n, ".gz") {
			b = gzipOf(t, b)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		img, err := c.Prepare(context.Background(), mustSource(t, p), nil)
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, img)
	}
	ls, err := c.List()
	if err != nil || len(ls) != 2 {
		t.Fatalf("ls: %+v %v", ls, err)
	}
	for _, e := range ls {
		if (e.Name != "alpha" && e.Name != "beta") || len(e.Sources) != 1 || !strings.HasPrefix(e.Digest, "sha256:") || e.Size != map[string]int64{"alpha": 5009, "beta": 5011}[e.Name] || e.LastUsed.IsZero() || !e.InUse {
			t.Errorf("entry %+v", e)
		}
	}
	if _, err := c.Remove("alpha"); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("rm of a tree in use: %v", err)
	}
	imgs[0].Close()
	removed, err := c.Remove("alpha")
	if err != nil || len(removed) != 1 {
		t.Fatalf("rm: %v %v", removed, err)
	}
	if _, err := os.Stat(removed[0].Dir); !os.IsNotExist(err) {
		t.Fatalf("the removed tree is still there: %v", err)
	}
	if _, err := c.Remove("alpha"); err == nil || !strings.Contains(err.Error(), "no environment") {
		t.Fatalf("rm again: %v", err)
	}
	// Leftovers of a process that is gone, and of this one (kept).
	_ = os.Mkdir(c.path("tmp", "999999999-dead"), 0o700)
	_ = os.Mkdir(c.path("tmp", itoa(os.Getpid())+"-live"), 0o700)
	_ = os.WriteFile(c.path("downloads", "sha256-"+strings.Repeat("0", 64)+".part"), []byte("x"), 0o600)
	res, err := c.Prune(false, 0)
	if err != nil || res.Leftovers != 2 || len(res.Removed) != 0 {
		t.Fatalf("prune: %+v %v", res, err)
	}
	if _, err := os.Stat(c.path("tmp", itoa(os.Getpid())+"-live")); err != nil {
		t.Fatalf("prune removed a live process's work: %v", err)
	}
	res, err = c.Prune(true, 0)
	if err != nil || len(res.Removed) != 0 {
		t.Fatalf("prune --all with beta in use: %+v %v", res, err)
	}
	imgs[1].Close()
	res, err = c.Prune(true, 0)
	if err != nil || len(res.Removed) != 1 || res.Removed[0].Name != "beta" {
		t.Fatalf("prune --all: %+v %v", res, err)
	}
	if ls, _ := c.List(); len(ls) != 0 {
		t.Fatalf("after prune --all: %+v", ls)
	}
}

func TestOpenCacheChecks(t *testing.T) {
	d := filepath.Join(t.TempDir(), "c")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	c, err := OpenCache(d, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(c.Dir()); fi.Mode().Perm() != 0o700 {
		t.Fatalf("cache mode %v, want 0700", fi.Mode().Perm())
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(d, 12345, 12345); err != nil {
			t.Fatal(err)
		}
		if _, err := OpenCache(d, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "owned by uid 12345") {
			t.Fatalf("a cache of another user: %v", err)
		}
	}
	if _, err := OpenCache(filepath.Join(t.TempDir(), "a:b"), zerolog.Nop()); err == nil {
		t.Fatal("a cache path with ':' was taken")
	}
}
