package runtime

import (
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/guntainer/playground/internal/testenv"
)

// buildInit builds the small init binary (runtime/cmd/playground-init)
// with build stamp stamp, as deploy/build.sh does, and returns it.
func buildInit(t *testing.T, stamp string) []byte {
	t.Helper()
	goTool := filepath.Join(goruntime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goTool); err != nil {
		goTool = testenv.NeedCommand(t, "go")
	}
	src := testenv.SourceRoot()
	if _, err := os.Stat(filepath.Join(src, "go.mod")); err != nil {
		testenv.Skipf(t, "the module's source is not at %s: %v", src, err)
	}
	out := filepath.Join(t.TempDir(), "playground-init")
	cmd := exec.Command(goTool, "build", "-buildvcs=false", "-o", out,
		"-ldflags", "-X github.com/guntainer/playground/runtime/internal/initproc.BuildStamp="+stamp,
		"./runtime/cmd/playground-init")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build the init binary: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEmbeddedInitStamp: a server built with an embedded init checks it by
// executing it once at start. One of its own build stamp is taken, sealed
// as the server's own copy is; one of another stamp, a server without a
// stamp to check against, and bytes that are no program are refused, each
// saying why.
func TestEmbeddedInitStamp(t *testing.T) {
	bin := buildInit(t, "stamp-a")
	f, err := sealEmbeddedInit(bin, "stamp-a")
	if err != nil {
		t.Fatalf("an init of this build's stamp: %v", err)
	}
	defer f.Close()
	if l, _ := os.Readlink(execPath(f)); l != "/memfd:playground-init (deleted)" {
		t.Errorf("the sealed init is %q", l)
	}
	seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
	const want = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if err != nil || seals&want != want {
		t.Errorf("seals %#x (%v), want at least %#x", seals, err, want)
	}
	for _, tt := range []struct {
		name, stamp string
		bin         []byte
		want        string
	}{
		{"another build's init", "stamp-b", bin, `built from other sources: stamp "stamp-a", this binary's "stamp-b"`},
		{"a server without a stamp", "", bin, "this binary has no build stamp"},
		{"not a program", "stamp-a", []byte("not an executable\n"), "executing it: "},
	} {
		f, err := sealEmbeddedInit(tt.bin, tt.stamp)
		if err == nil {
			_ = f.Close()
			t.Errorf("%s: taken", tt.name)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "deploy/build.sh") {
			t.Errorf("%s: %v\nwant it to say %q and how to build", tt.name, err, tt.want)
		}
	}
}

// TestInitExecutable: a build with the embedded init executes every init
// from its sealed copy, an ordinary build from its own. CI runs this test
// in a build of deploy/build.sh -test too, and says so with
// PLAYGROUND_TEST_EMBEDDED_INIT=1, so that a build that lost the embedded
// init fails here rather than pass the posture tests as an ordinary one.
func TestInitExecutable(t *testing.T) {
	f, err := initExecutable()
	if err != nil {
		t.Fatal(err)
	}
	embedded := EmbeddedInit()
	self, err := sealedExecutable()
	if err != nil {
		t.Fatal(err)
	}
	if want := os.Getenv("PLAYGROUND_TEST_EMBEDDED_INIT") == "1"; embedded != want {
		t.Fatalf("embedded init: %v, want %v (%d bytes embedded)", embedded, want, len(embeddedInit))
	}
	if embedded == (f == self) {
		t.Errorf("embedded %v, but init is executed from %s (this binary's copy: %s)", embedded, f.Name(), self.Name())
	}
}
