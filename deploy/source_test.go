package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/guntainer/playground/internal/testenv"
)

// repoRoot is the repository this test was built from, for the tests that
// need the Go tool and the source (building the server, listing its
// dependencies). It skips where the source is not on this machine.
func repoRoot(t testing.TB) string {
	t.Helper()
	root := testenv.SourceRoot()
	if root == "" {
		testenv.Skipf(t, "no source file name in the test binary")
	}
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil || !bytes.Contains(b, []byte("module github.com/guntainer/playground\n")) {
		testenv.Skipf(t, "the repository this test was built from is not at %s: %v", root, err)
	}
	testenv.NeedCommand(t, "go")
	return root
}

// goCmd runs the go command in the repository.
// noVCS keeps the go command from asking git about a checkout it may not
// own (git refuses a repository of another user: CI builds the tests from
// root's copy and runs them as an ordinary user); these builds need no
// version stamp.
const noVCS = "GOFLAGS=-buildvcs=false"

func goCmd(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), noVCS)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

var built struct {
	once sync.Once
	dir  string
	err  error
}

// playgroundBinary builds ./cmd/playground once per test binary, as the
// release does (deploy/build.sh: static, CGO_ENABLED=0, with the embedded
// init), and returns its path.
//
// PLAYGROUND_DEPLOY_TEST_BINARY names another server binary to test
// instead (a branch's build, to try the deploy files against it).
func playgroundBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("PLAYGROUND_DEPLOY_TEST_BINARY"); p != "" {
		return p
	}
	root := repoRoot(t)
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "playground-deploy-bin-")
		if built.err != nil {
			return
		}
		_ = os.Chmod(built.dir, 0o755) // servers run as other users too
		cmd := exec.Command("sh", "deploy/build.sh", filepath.Join(built.dir, "playground"))
		cmd.Dir = root
		cmd.Env = append(os.Environ(), noVCS)
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = &buildError{err, out}
		}
	})
	if built.err != nil {
		t.Fatalf("build the playground: %v", built.err)
	}
	return filepath.Join(built.dir, "playground")
}

type buildError struct {
	err error
	out []byte
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + string(e.out) }

// TestServerLinksNoDeployLibraries: the Kubernetes, kustomize and other
// libraries these tests import never reach the server binary.
func TestServerLinksNoDeployLibraries(t *testing.T) {
	deps := goCmd(t, "list", "-deps", "./cmd/playground")
	for _, bad := range []string{"k8s.io/", "sigs.k8s.io/", "github.com/moby/buildkit", "github.com/prometheus-operator", "github.com/guntainer/playground/deploy"} {
		for _, p := range strings.Fields(deps) {
			if strings.HasPrefix(p, bad) {
				t.Errorf("./cmd/playground depends on %s: the deploy tests' libraries must stay out of the server", p)
			}
		}
	}
	if !strings.Contains(deps, "github.com/guntainer/playground/runtime\n") {
		t.Fatalf("go list -deps ./cmd/playground does not list the runtime; the listing is wrong:\n%s", deps)
	}
}
