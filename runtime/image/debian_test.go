package image

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/guntainer/playground/internal/testenv"
	"github.com/guntainer/playground/runtime"
)

var (
	stateOnce sync.Once
	stateDir  string
)

// testStateDir is one state dir for the test binary's containers, which a
// pool uid (root mode) can reach.
func testStateDir(t testing.TB) string {
	stateOnce.Do(func() {
		d, err := os.MkdirTemp("", "playground-image-state-")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
		stateDir = filepath.Join(d, "state")
	})
	return stateDir
}

// runIn runs a command in a container on rootfs and returns its output
// and exit code, skipping where the machine cannot make user namespaces.
func runIn(t testing.TB, rootfs string, script string) (string, int) {
	t.Helper()
	c, err := runtime.Start(runtime.Spec{Rootfs: rootfs, Args: []string{"/bin/sh", "-c", script}, StateDir: testStateDir(t), Cols: 200})
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.ENOSPC) {
		testenv.Skipf(t, "no user namespaces here: %v", err)
	}
	if err != nil {
		t.Fatalf("start a container on %s: %v", rootfs, err)
	}
	defer c.Close()
	watchdog := time.AfterFunc(2*time.Minute, func() { _ = c.Close() })
	defer watchdog.Stop()
	var out bytes.Buffer
	if _, err := io.Copy(&out, c); err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("read output: %v", err)
	}
	st, err := c.Wait()
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(out.String(), "\r\n", "\n"), st.Code
}

// TestDebianRootfs prepares a real Debian rootfs (debootstrap minbase,
// packed as .tar.zst) as an archive source and runs it: os-release, dpkg
// and apt work, and apt's downloads work with the id map this server
// has, thanks to the apt setting written at prepare time.
func TestDebianRootfs(t *testing.T) {
	if testing.Short() {
		testenv.Skipf(t, "unpacks a 200 MB rootfs: left out under -short")
	}
	tarball := testenv.DebianTarball(t)
	c, logs := newCache(t)
	img, err := c.Prepare(context.Background(), mustSource(t, "debian="+tarball), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if img.Name != "debian" || img.Size < 100<<20 {
		t.Errorf("image %s of %s", img.Name, HumanBytes(img.Size))
	}
	checkAptSetting(t, c, img.Dir)
	for _, p := range []string{"usr/bin/apt-get", "var/lib/dpkg/status"} {
		if _, err := os.Stat(filepath.Join(img.Dir, p)); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(img.Dir, "etc/os-release")); err != nil || !strings.Contains(string(b), "bookworm") {
		t.Errorf("os-release: %q %v", b, err)
	}
	if c.Owners == OwnEntries && !strings.Contains(logs.String(), "were made this user's own") {
		t.Errorf("the log does not say that owners were collapsed: %s", logs)
	}

	out, code := runIn(t, img.Dir, `cat /etc/os-release; echo "packages: $(dpkg -l | grep -c '^ii')"; apt-get --version | head -1`)
	if code != 0 || !strings.Contains(out, `VERSION_CODENAME=bookworm`) || !strings.Contains(out, "packages: ") || !strings.Contains(out, "apt 2.") {
		t.Fatalf("exit %d, output:\n%s", code, out)
	}
	if strings.Contains(out, "packages: 0") {
		t.Fatalf("dpkg lists no package:\n%s", out)
	}

	// Owners and setuid bits, as the container sees them: kept as root
	// (through the id-mapped mount), the container root's own and no
	// setuid as an ordinary user.
	out, code = runIn(t, img.Dir, `stat -c '%n %U:%G %a' /etc/shadow /usr/bin/passwd`)
	want := "/etc/shadow root:shadow 640\n/usr/bin/passwd root:root 4755"
	if c.Owners == OwnEntries {
		want = "/etc/shadow root:root 640\n/usr/bin/passwd root:root 755"
	}
	if code != 0 || !strings.Contains(out, want) {
		t.Fatalf("owners in the container: exit %d:\n%s\nwant:\n%s", code, out, want)
	}

	// apt's file method runs as the sandbox user: a local repository
	// updates under either id map: as root, which the setting asks, under
	// the one-id map; as _apt, apt's own default, where a range is mapped
	// and the tree has no setting.
	repo := `mkdir -p /tmp/repo /tmp/parts && : > /tmp/repo/Packages &&
echo 'deb [trusted=yes] file:/tmp/repo ./' > /tmp/parts/local.list &&
apt-get -q -o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts=/tmp/parts update`
	out, code = runIn(t, img.Dir, repo+` && echo APT-OK`)
	if code != 0 || !strings.Contains(out, "APT-OK") {
		t.Fatalf("apt-get update of a local repository: exit %d:\n%s", code, out)
	}
	ids, _ := runIn(t, img.Dir, `cat /proc/self/uid_map`)
	t.Logf("the container's uid map: %q", ids)
	if f := strings.Fields(ids); len(f) == 3 && f[2] == "1" {
		// Without it, a one-id container's apt cannot drop to _apt.
		out, code = runIn(t, img.Dir, repo+` -o APT::Sandbox::User=_apt && echo APT-OK`)
		if code == 0 || strings.Contains(out, "APT-OK") || !strings.Contains(out, "seteuid 42 failed") {
			t.Fatalf("apt-get update as _apt in a one-id container worked, so the setting is not needed? exit %d:\n%s", code, out)
		}
	}
}
