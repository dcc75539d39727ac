package deploy

import (
	"embed"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// shipped is the deploy directory as committed, so that the tests check
// the files themselves from any working directory.
//
//go:embed all:kubernetes all:seccomp all:systemd all:nginx all:caddy all:docker all:apparmor Dockerfile
var shipped embed.FS

func readShipped(t testing.TB, name string) []byte {
	t.Helper()
	b, err := fs.ReadFile(shipped, name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// profileFile writes the shipped pod profile to a file and returns its path.
func profileFile(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "playground.json")
	if err := os.WriteFile(p, readShipped(t, "seccomp/playground.json"), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(filepath.Dir(p), 0o755) // read by the wrapper as any user
	return p
}

// TestGeneratedFilesAreCurrent: every generated file is committed as
// `go run ./deploy/gen` writes it.
func TestGeneratedFilesAreCurrent(t *testing.T) {
	files, err := Generated()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		got, err := fs.ReadFile(shipped, name)
		if err != nil {
			t.Errorf("%s: %v (run: go run ./deploy/gen)", name, err)
			continue
		}
		if string(got) != string(want) {
			t.Errorf("%s is stale: run go run ./deploy/gen", name)
		}
	}
}

func readFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
