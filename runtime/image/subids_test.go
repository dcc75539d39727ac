package image

import (
	"archive/tar"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/guntainer/playground/internal/testenv"
	"github.com/guntainer/playground/runtime"
)

// subIDCache is a cache that unpacks through this user's subordinate
// ids, or nil as root (whose trees keep their owners through the
// id-mapped mount: TestDebianRootfs).
func subIDCache(t *testing.T) (*Cache, *runtime.SubIDs) {
	t.Helper()
	s, err := runtime.LookupSubIDs()
	if os.Getuid() == 0 {
		if !errors.Is(err, runtime.ErrNoSubIDs) {
			t.Fatalf("as root: LookupSubIDs %v, %v; want ErrNoSubIDs", s, err)
		}
		t.Logf("as root the subordinate-id mode does not apply (%v): root keeps owners itself", err)
		return nil, nil
	}
	if err != nil {
		testenv.Skipf(t, "subordinate ids for uid %d: %v", os.Getuid(), err)
	}
	c, _ := newCache(t)
	c.UseSubIDs(s)
	t.Cleanup(func() {
		// The trees are the subordinate ids': removed through them.
		if _, err := c.Prune(true, 0); err != nil {
			t.Errorf("prune: %v", err)
		}
	})
	return c, s
}

// TestSubIDOwners: an ordinary user's server with an /etc/subuid range
// unpacks an archive through it: each entry belongs, on the host, to the
// range's id of its archive owner, setuid and setgid bits are kept, an
// entry replaced later in the archive has the later owner, owners above
// 65535 become nobody, and the tree (owned by the range's root, as the
// runtime's rule for the full id map asks) is removed through the range.
func TestSubIDOwners(t *testing.T) {
	c, s := subIDCache(t)
	if c == nil {
		return
	}
	archive := filepath.Join(t.TempDir(), "owners.tar")
	mk := func(e ent, uid, gid int, mode int64) ent { e.uid, e.gid, e.mode = uid, gid, mode; return e }
	b := tarOf(t,
		ent{name: ".", typ: tar.TypeDir, mode: 0o755},
		mk(dir("var"), 0, 0, 0o755),
		mk(dir("var/cache"), 0, 0, 0o755),
		mk(dir("var/cache/apt"), 42, 0, 0o700),
		mk(dir("var/mail"), 0, 8, 0o2775),
		mk(file("usr-passwd", "setuid\n"), 0, 0, 0o4755),
		mk(file("wall", "setgid\n"), 0, 5, 0o2755),
		mk(file("mine", "a user's\n"), 1000, 1000, 0o640),
		mk(symlink("link", "mine"), 7, 7, 0o777),
		mk(file("replaced", "first\n"), 42, 42, 0o4755),
		mk(file("replaced", "second\n"), 0, 0, 0o644),
		mk(file("big-id", "\n"), 200000, 200000, 0o644),
		mk(file("var/mail/letter", "\n"), 8, 8, 0o660),
	)
	if err := os.WriteFile(archive, b, 0o644); err != nil {
		t.Fatal(err)
	}
	img, err := c.Prepare(context.Background(), mustSource(t, archive), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()

	for _, tt := range []struct {
		path     string
		uid, gid int
		mode     fs.FileMode // permission and setuid, setgid bits; 0: a symlink's
	}{
		{".", 0, 0, 0o755},
		{"var/cache/apt", 42, 0, 0o700},
		{"var/mail", 0, 8, 0o775 | fs.ModeSetgid},
		{"usr-passwd", 0, 0, 0o755 | fs.ModeSetuid},
		{"wall", 0, 5, 0o755 | fs.ModeSetgid},
		{"mine", 1000, 1000, 0o640},
		{"link", 7, 7, 0},
		{"replaced", 0, 0, 0o644},
		{"big-id", 65534, 65534, 0o644},
		{"var/mail/letter", 8, 8, 0o660},
	} {
		fi, err := os.Lstat(filepath.Join(img.Dir, tt.path))
		if err != nil {
			t.Errorf("%s: %v", tt.path, err)
			continue
		}
		uid, gid, _ := owner(fi)
		wantUID, wantGID := s.UIDBase+tt.uid, s.GIDBase+tt.gid
		mode := fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
		if uid != wantUID || gid != wantGID || (tt.mode != 0 && mode != tt.mode) {
			t.Errorf("%s: host owner %d:%d mode %v, want %d:%d %v", tt.path, uid, gid, mode, wantUID, wantGID, tt.mode)
		}
	}
	if _, err := os.Stat(filepath.Join(img.Dir, "etc/apt/apt.conf.d/99playground-sandbox")); err == nil {
		t.Error("the apt-as-root setting was written into a tree for a full id map")
	}

	// The server's user cannot remove the tree; the cache can.
	if err := os.RemoveAll(filepath.Join(img.Dir, "var/cache/apt")); err == nil {
		t.Error("the server's user removed a subordinate id's directory")
	}
	_ = img.Close()
	removed, err := c.Remove(img.Digest)
	if err != nil || len(removed) != 1 {
		t.Fatalf("remove: %v, %v", removed, err)
	}
	if _, err := os.Stat(img.Dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the tree is still there after rm: %v", err)
	}
	left, _ := os.ReadDir(filepath.Join(c.Dir(), "tmp"))
	if len(left) != 0 {
		t.Errorf("left in tmp/: %v", left)
	}
}

// TestSubIDOwnersOfLayers: image layers, unpacked through the
// subordinate ids: a whiteout removes a lower layer's file, whose noted
// owner goes with it, and an opaque directory's old entries go too.
func TestSubIDOwnersOfLayers(t *testing.T) {
	c, s := subIDCache(t)
	if c == nil {
		return
	}
	reg := newRegistry(t)
	lower := ent{name: "srv/old", typ: tar.TypeReg, body: "old\n", mode: 0o4755, uid: 33, gid: 33}
	upper := []ent{
		{name: "srv/.wh.old", typ: tar.TypeReg, mode: 0o644},
		{name: "srv/old", typ: tar.TypeReg, body: "new, root's\n", mode: 0o644},
		{name: "home/", typ: tar.TypeDir, mode: 0o755},
		{name: "home/user/", typ: tar.TypeDir, mode: 0o750, uid: 1000, gid: 1000},
	}
	reg.push(t, "layers/owners:1", v1.Config{}, []ent{{name: "srv/", typ: tar.TypeDir, mode: 0o755}, lower}, upper)
	img, err := c.Prepare(context.Background(), mustSource(t, "docker://"+reg.host+"/layers/owners:1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	for _, tt := range []struct {
		path     string
		uid      int
		notSetid bool
	}{{"srv/old", 0, true}, {"home/user", 1000, false}} {
		fi, err := os.Lstat(filepath.Join(img.Dir, tt.path))
		if err != nil {
			t.Fatal(err)
		}
		if uid, _, _ := owner(fi); uid != s.UIDBase+tt.uid || (tt.notSetid && fi.Mode()&fs.ModeSetuid != 0) {
			t.Errorf("%s: host uid %d mode %v, want %d and no setuid", tt.path, uid, fi.Mode(), s.UIDBase+tt.uid)
		}
	}
	if b, err := os.ReadFile(filepath.Join(img.Dir, "srv/old")); err != nil || !strings.HasPrefix(string(b), "new") {
		t.Errorf("srv/old: %q %v", b, err)
	}
}
