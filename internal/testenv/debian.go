package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// A real Debian root file system for tests that need a real distribution
// (apt, dpkg, python3): `debootstrap --variant=minbase bookworm`, packed as a
// .tar.zst. .ci/run makes it once as root and names it in
// PLAYGROUND_TEST_DEBIAN_TARBALL; elsewhere a test running as root makes it
// on first use (about 30 s, from the machine's Debian mirror) at
// DefaultDebianTarball, shared by every later test run.

// DefaultDebianTarball is where a root test run keeps the tarball it made.
const DefaultDebianTarball = "/var/cache/playground-test/debian-bookworm-minbase.tar.zst"

// DebianTarball returns the path of the Debian rootfs tarball, making it if
// this process is root and it does not exist yet, or skips.
func DebianTarball(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("PLAYGROUND_TEST_DEBIAN_TARBALL"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("PLAYGROUND_TEST_DEBIAN_TARBALL: %v", err)
		}
		return p
	}
	p := DefaultDebianTarball
	if _, err := os.Stat(p); err == nil {
		return p
	}
	if os.Getuid() != 0 {
		Skipf(t, "no Debian rootfs tarball: run the tests as root once (it is made with debootstrap at %s) or set PLAYGROUND_TEST_DEBIAN_TARBALL", p)
	}
	NeedCommand(t, "debootstrap")
	NeedCommand(t, "zstd")
	if err := makeDebianTarball(p); err != nil {
		t.Fatalf("make Debian rootfs: %v", err)
	}
	return p
}

// makeDebianTarball runs debootstrap into a temporary directory and packs
// it, under a lock so that parallel test binaries make it once.
func makeDebianTarball(p string) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	lock, err := os.OpenFile(p+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := lockFile(lock); err != nil {
		return err
	}
	if _, err := os.Stat(p); err == nil {
		return nil // another test binary made it while we waited
	}
	dir, err := os.MkdirTemp(filepath.Dir(p), "debootstrap-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	root := filepath.Join(dir, "root")
	cmd := exec.Command("debootstrap", "--variant=minbase", "bookworm", root, "http://deb.debian.org/debian")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("debootstrap: %v\n%s", err, tail(out))
	}
	// Device nodes and the apt cache are of no use in a rootfs tarball.
	tmp := p + ".tmp-" + strconv.Itoa(os.Getpid())
	script := `tar --numeric-owner --exclude=./dev/* --exclude=./var/cache/apt/archives/*.deb -C "$1" -cf - . | zstd -q -T0 -o "$2"`
	if out, err := exec.Command("sh", "-c", script, "sh", root, tmp).CombinedOutput(); err != nil {
		_ = os.Remove(tmp) // half written
		return fmt.Errorf("pack rootfs: %v\n%s", err, out)
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// DebianRootfs returns a directory holding the Debian rootfs, unpacked for
// the user running the test: as root with its owners, as an ordinary user
// owned by that user (as an ordinary user's own unpacking would be). It is
// unpacked once per user and tarball into the user's cache directory and
// shared by later tests; tests must not write to it.
func DebianRootfs(t testing.TB) string {
	t.Helper()
	tarball := DebianTarball(t)
	fi, err := os.Stat(tarball)
	if err != nil {
		t.Fatal(err)
	}
	cache, err := os.UserCacheDir()
	if err != nil || os.Getuid() == 0 {
		cache = filepath.Join(os.TempDir(), "playground-test-cache-"+strconv.Itoa(os.Getuid()))
	}
	dir := filepath.Join(cache, fmt.Sprintf("debian-%d-%d", fi.Size(), fi.ModTime().Unix()))
	root := filepath.Join(dir, "root")
	if _, err := os.Stat(filepath.Join(root, "etc/os-release")); err == nil {
		return root
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := lockFile(lock); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/os-release")); err == nil {
		return root
	}
	NeedCommand(t, "zstd")
	tmp := root + ".tmp"
	_ = os.RemoveAll(tmp) // a half unpacked tree of an earlier, killed run
	if err := os.Mkdir(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	args := "--numeric-owner"
	if os.Getuid() != 0 {
		args = "--no-same-owner"
	}
	script := `zstd -q -d -c "$1" | tar ` + args + ` -C "$2" -xf -`
	if out, err := exec.Command("sh", "-c", script, "sh", tarball, tmp).CombinedOutput(); err != nil {
		t.Fatalf("unpack %s: %v\n%s", tarball, err, out)
	}
	// Searchable by a pool uid in root mode, as a real rootfs is.
	for p := dir; p != cache && p != "/"; p = filepath.Dir(p) {
		_ = os.Chmod(p, 0o755) // best effort: a parent we do not own stays as it is
	}
	_ = os.Chmod(cache, 0o755)
	if err := os.Rename(tmp, root); err != nil {
		t.Fatal(err)
	}
	return root
}

func tail(b []byte) []byte {
	if len(b) > 2000 {
		return b[len(b)-2000:]
	}
	return b
}
