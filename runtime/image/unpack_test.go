package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// TestHostileArchives unpacks archives that try to write outside their
// target, each one refused or neutralised, with the host's tree beside
// the target compared before and after.
func TestHostileArchives(t *testing.T) {
	host := filepath.Join(t.TempDir(), "host")
	for p, body := range map[string]string{"secret": "top secret", "etc/passwd": "root:x:0:0::/root:/bin/sh\n", "dir/keep": "keep"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(host, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(host, p), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	targets := filepath.Join(host, "targets")
	if err := os.Mkdir(targets, 0o755); err != nil {
		t.Fatal(err)
	}
	// An absolute name that must never appear on the host.
	abs := filepath.Join(os.TempDir(), "playground-escape-"+randHex(6))
	t.Cleanup(func() { _ = os.RemoveAll(abs) })
	keep := DefaultOwners()

	type check func(t *testing.T, root string)
	content := func(p, want string) check {
		return func(t *testing.T, root string) {
			t.Helper()
			b, err := os.ReadFile(filepath.Join(root, p))
			if err != nil || string(b) != want {
				t.Errorf("%s: got %q, %v; want %q", p, b, err, want)
			}
		}
	}
	absent := func(p string) check {
		return func(t *testing.T, root string) {
			t.Helper()
			if _, err := os.Lstat(filepath.Join(root, p)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s: want absent, got %v", p, err)
			}
		}
	}
	regular := func(p string) check {
		return func(t *testing.T, root string) {
			t.Helper()
			fi, err := os.Lstat(filepath.Join(root, p))
			if err != nil || !fi.Mode().IsRegular() {
				t.Errorf("%s: want a regular file, got %v %v", p, fi, err)
			}
		}
	}
	mode := func(p string, want fs.FileMode) check {
		return func(t *testing.T, root string) {
			t.Helper()
			fi, err := os.Lstat(filepath.Join(root, p))
			if err != nil || fi.Mode() != want {
				t.Errorf("%s: mode %v, %v; want %v", p, fi.Mode(), err, want)
			}
		}
	}
	suid := fs.FileMode(0o755) | fs.ModeSetuid
	if keep == OwnEntries {
		suid = 0o755
	}
	tests := []struct {
		name    string
		entries []ent
		layers  [][]ent // image layers instead of one archive
		limits  Limits
		refuse  string // a part of the error; "" when it must unpack
		checks  []check
	}{
		{name: "dot-dot name", entries: []ent{file("../escape", "pwned")}, refuse: `entry "../escape": name leaves the archive`},
		{name: "dot-dot deep", entries: []ent{dir("a"), file("a/../../escape", "pwned")}, refuse: "name leaves the archive"},
		{name: "dot-dot directory", entries: []ent{dir("../d")}, refuse: "name leaves the archive"},
		{name: "absolute name", entries: []ent{file(abs+"/file", "inside")}, checks: []check{content(abs+"/file", "inside")}},
		{name: "symlink up, then written through", entries: []ent{symlink("up", "../../.."), file("up/escape", "inside")}, checks: []check{content("escape", "inside")}},
		{name: "absolute symlink to the host, then written through", entries: []ent{symlink("h", host), file("h/secret", "inside")}, checks: []check{content(host+"/secret", "inside")}},
		{name: "symlink to a host file, then a file of its name", entries: []ent{symlink("s", host+"/secret"), file("s", "inside")}, checks: []check{regular("s"), content("s", "inside")}},
		{name: "symlink chain out", entries: []ent{symlink("a", "b"), symlink("b", "../../../../.."+host), file("a/secret", "inside")}, checks: []check{content(host+"/secret", "inside")}},
		{name: "symlinked parent directory, deep", entries: []ent{symlink("etc", host+"/etc"), file("etc/passwd", "inside"), file("etc/new/file", "inside")}, checks: []check{content(host+"/etc/passwd", "inside"), content(host+"/etc/new/file", "inside")}},
		{name: "directory replaced by a symlink out", entries: []ent{dir("d"), symlink("d", host), file("d/secret", "inside")}, checks: []check{content(host+"/secret", "inside")}},
		{name: "symlink loop", entries: []ent{symlink("loop", "loop"), file("loop/x", "x")}, refuse: "too many levels of symbolic links"},
		{name: "hard link up", entries: []ent{hardlink("h", "../secret")}, refuse: "link target: name leaves the archive"},
		{name: "hard link to an absolute host path", entries: []ent{hardlink("h", host+"/secret")}, refuse: `entry "h": link target`},
		{name: "hard link through a symlinked directory", entries: []ent{symlink("hd", host), hardlink("h", "hd/secret")}, refuse: `entry "h": link target`},
		{name: "hard link, then written through", entries: []ent{file("victim", "original"), hardlink("h", "victim"), file("h", "new")}, checks: []check{content("victim", "original"), content("h", "new")}},
		{name: "hard link to a symlink out, then written through", entries: []ent{symlink("s", host+"/secret"), hardlink("h", "s"), file("h", "inside")}, checks: []check{content("h", "inside"), regular("h")}},
		{name: "hard link to a directory", entries: []ent{dir("d"), hardlink("h", "d")}, refuse: "is a directory"},
		{name: "device nodes and fifos", entries: []ent{dir("dev"), {name: "dev/mem", typ: tar.TypeChar, mode: 0o666}, {name: "dev/sda", typ: tar.TypeBlock, mode: 0o666}, {name: "fifo", typ: tar.TypeFifo, mode: 0o666}}, checks: []check{absent("dev/mem"), absent("dev/sda"), absent("fifo")}},
		{name: "setuid", entries: []ent{{name: "su", typ: tar.TypeReg, body: "#!", mode: 0o4755}}, checks: []check{mode("su", suid)}},
		{name: "name too long", entries: []ent{file(strings.Repeat("a/", 2100)+"f", "x")}, refuse: "name longer than 4096 bytes"},
		{name: "component too long", entries: []ent{file(strings.Repeat("a", 256), "x")}, refuse: "longer than 255 bytes"},
		{name: "too many entries", entries: []ent{file("1", ""), file("2", ""), file("3", ""), file("4", "")}, limits: Limits{MaxEntries: 3}, refuse: `entry "4": more than 3 entries`},
		{name: "too many bytes", entries: []ent{file("big", "0123456789a")}, limits: Limits{MaxBytes: 10}, refuse: `entry "big": unpacks to more than 10 B`},
		{name: "size that lies, longer", entries: []ent{file("ok", "fine"), {name: "liar", typ: tar.TypeReg, body: "short", size: 100, mode: 0o644}}, refuse: `entry "liar": truncated: 5 of 100 bytes`},
		{name: "root made a file", entries: []ent{{name: ".", typ: tar.TypeReg, mode: 0o644}}, refuse: "root is not a directory"},
		// Image layers: whiteouts are honoured, inside the target only.
		{name: "whiteout through a symlink out", layers: [][]ent{{symlink("l", host)}, {file("l/.wh.secret", "")}}, checks: []check{absent("secret")}},
		{name: "opaque directory through a symlink out", layers: [][]ent{{symlink("l", host)}, {file("l/.wh..wh..opq", "")}}},
		{name: "whiteout up", layers: [][]ent{{file("a", "")}, {file("../.wh.secret", "")}}, refuse: "name leaves the archive"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := filepath.Join(targets, itoa(i))
			if err := os.Mkdir(root, 0o755); err != nil {
				t.Fatal(err)
			}
			before := hostSnapshot(t, host, targets)
			var err error
			if tc.layers == nil {
				_, err = Unpack(context.Background(), bytes.NewReader(tarOf(t, tc.entries...)), root, "evil.tar", keep, tc.limits, zerolog.Nop())
			} else {
				err = unpackLayers(t, root, keep, tc.layers)
			}
			if tc.refuse == "" && err != nil {
				t.Fatalf("want it unpacked (neutralised), got %v", err)
			}
			if tc.refuse != "" {
				var ue *UnpackError
				if err == nil || !strings.Contains(err.Error(), tc.refuse) || !errors.As(err, &ue) || !strings.Contains(err.Error(), "evil") {
					t.Fatalf("want an UnpackError naming the archive and %q, got %v", tc.refuse, err)
				}
			}
			if d := diffSnapshots(before, hostSnapshot(t, host, targets)); d != "" {
				t.Fatalf("the host's tree changed:\n%s", d)
			}
			if _, err := os.Lstat(abs); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("%s exists on the host: %v", abs, err)
			}
			for _, c := range tc.checks {
				c(t, root)
			}
		})
	}
}

func hostSnapshot(t *testing.T, host, skip string) map[string]string {
	s := snapshot(t, host)
	for k := range s {
		if k == skip || strings.HasPrefix(k, skip+"/") {
			delete(s, k)
		}
	}
	return s
}

func unpackLayers(t *testing.T, root string, owners Owners, layers [][]ent) error {
	u, err := newUnpacker(root, owners, Limits{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer u.close()
	for i, l := range layers {
		u.startLayer()
		if err := u.unpack(context.Background(), bytes.NewReader(tarOf(t, l...)), "evil layer "+itoa(i+1)); err != nil {
			return err
		}
	}
	return u.finish()
}

// TestUnpackSizeLiesShorter: a header that says fewer bytes than follow
// leaves the rest to be read as the next header, which is refused.
func TestUnpackSizeLiesShorter(t *testing.T) {
	b := tarOf(t, file("liar", strings.Repeat("x", 600)))
	// The size field (octal, 12 bytes at 124) says 10; fix the checksum.
	copy(b[124:136], []byte("00000000012\x00"))
	copy(b[148:156], []byte("        "))
	sum := 0
	for _, c := range b[:512] {
		sum += int(c)
	}
	copy(b[148:156], []byte(strings.Repeat("0", 6-len(octal(sum)))+octal(sum)+"\x00 "))
	_, err := Unpack(context.Background(), bytes.NewReader(b), t.TempDir(), "liar.tar", DefaultOwners(), Limits{}, zerolog.Nop())
	if err == nil || !strings.Contains(err.Error(), `after entry "liar"`) || !strings.Contains(err.Error(), "liar.tar") {
		t.Fatalf("want an error after entry liar, got %v", err)
	}
}

func octal(n int) string {
	s := ""
	for ; n > 0; n /= 8 {
		s = string(rune('0'+n%8)) + s
	}
	return s
}

// TestUnpackOwnersAndModes: as root the archive's owners are kept (ids no
// container maps become 65534); as an ordinary user everything is the
// user's own. Read-only directories are made so after their contents, and
// the whole tree can still be removed.
func TestUnpackOwnersAndModes(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	es := []ent{
		{name: "./", typ: tar.TypeDir, mode: 0o755},
		{name: "ro/", typ: tar.TypeDir, mode: 0o555},
		{name: "ro/f", typ: tar.TypeReg, body: "x", mode: 0o400, uid: 1000, gid: 1000},
		{name: "big", typ: tar.TypeReg, body: "y", mode: 0o644, uid: 70000, gid: 70000},
		{name: "ro/sub/", typ: tar.TypeDir, mode: 0o500, uid: 33, gid: 33},
	}
	owners := DefaultOwners()
	st, err := Unpack(context.Background(), bytes.NewReader(tarOf(t, es...)), root, "owners.tar", owners, Limits{}, zerolog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	uidOf := func(p string) int {
		fi, err := os.Lstat(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		uid, _, _ := owner(fi)
		return uid
	}
	if owners == KeepOwners {
		if got := uidOf("ro/f"); got != 1000 {
			t.Errorf("ro/f uid %d, want 1000", got)
		}
		if got := uidOf("big"); got != 65534 {
			t.Errorf("big uid %d, want 65534", got)
		}
		if got := uidOf("ro/sub"); got != 33 {
			t.Errorf("ro/sub uid %d, want 33", got)
		}
		if st.BigIDs != 1 || !strings.Contains(logs.String(), "65534") {
			t.Errorf("big ids %d, log %s", st.BigIDs, logs)
		}
	} else {
		for _, p := range []string{"ro/f", "big", "ro/sub"} {
			if got := uidOf(p); got != os.Geteuid() {
				t.Errorf("%s uid %d, want %d", p, got, os.Geteuid())
			}
		}
		if st.Owned == 0 || strings.Count(logs.String(), "were made this user's own") != 1 {
			t.Errorf("owned %d; want it said once, log: %s", st.Owned, logs)
		}
	}
	for p, want := range map[string]fs.FileMode{"ro": fs.ModeDir | 0o555, "ro/sub": fs.ModeDir | 0o500, "ro/f": 0o400} {
		fi, err := os.Lstat(filepath.Join(root, p))
		if err != nil || fi.Mode() != want {
			t.Errorf("%s: mode %v %v, want %v", p, fi.Mode(), err, want)
		}
	}
	if err := removeTree(root); err != nil {
		t.Fatalf("remove the tree: %v", err)
	}
}

// TestUnpackLayers flattens layers: a whiteout removes a lower file, an
// opaque directory empties a lower directory but keeps what its own layer
// put there, and a whiteout does not remove what its own layer wrote.
func TestUnpackLayers(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	err := unpackLayers(t, root, DefaultOwners(), [][]ent{
		{dir("etc"), file("etc/gone", "1"), file("etc/kept", "1"), dir("opq"), file("opq/old", "1"), dir("opq/sub"), file("opq/sub/old", "1"), symlink("lib", "usr/lib"), dir("usr"), dir("usr/lib"), file("usr/lib/a", "1")},
		{file("etc/.wh.gone", ""), dir("opq"), file("opq/new", "2"), file("opq/.wh..wh..opq", ""), dir("opq/sub"), file("opq/sub/new", "2"), file("lib/b", "2"), file("same", "2"), file(".wh.same", "")},
		{file("etc/kept", "3"), file(".wh..wh.plnk", "")},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if p != root && err == nil {
			rel, _ := filepath.Rel(root, p)
			if !d.IsDir() && d.Type()&fs.ModeSymlink == 0 {
				b, _ := os.ReadFile(p)
				rel += "=" + string(b)
			}
			got = append(got, rel)
		}
		return nil
	})
	want := []string{"etc", "etc/kept=3", "lib", "opq", "opq/new=2", "opq/sub", "opq/sub/new=2", "same=2", "usr", "usr/lib", "usr/lib/a=1", "usr/lib/b=2"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("tree:\n got %v\nwant %v", got, want)
	}
}

// FuzzUnpack feeds arbitrary bytes as a tar stream: no panic, and nothing
// outside the target.
func FuzzUnpack(f *testing.F) {
	f.Add(tarOf(f, symlink("a", "/"), file("a/x", "x")))
	f.Add(tarOf(f, dir("d"), hardlink("h", "d/../x")))
	f.Add(tarOf(f, file("a", "1"), symlink("b", "../.."), file("b/c", "2")))
	f.Fuzz(func(t *testing.T, b []byte) {
		host := t.TempDir()
		root := filepath.Join(host, "root")
		if err := os.Mkdir(root, 0o755); err != nil {
			t.Fatal(err)
		}
		_, _ = Unpack(context.Background(), bytes.NewReader(b), root, "fuzz.tar", DefaultOwners(), Limits{MaxEntries: 1000, MaxBytes: 1 << 20}, zerolog.Nop())
		es, err := os.ReadDir(host)
		if err != nil || len(es) != 1 {
			t.Fatalf("outside the target: %v %v", es, err)
		}
		_ = removeTree(root)
	})
}
