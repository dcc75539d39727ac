package main

import (
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/guntainer/playground/internal/testenv"
)

func TestVersionString(t *testing.T) {
	built := goruntime.Version() + " " + goruntime.GOOS + "/" + goruntime.GOARCH
	vcs := []debug.BuildSetting{
		{Key: "vcs", Value: "git"},
		{Key: "vcs.revision", Value: "73797c32507cafd441aa8dbe9cc6341b6289133e"},
		{Key: "vcs.time", Value: "2026-12-01T07:46:27Z"},
	}
	tests := []struct {
		name     string
		override string
		info     *debug.BuildInfo
		want     string
	}{
		{"no build info", "", nil, "playground (devel) (" + built + ")"},
		{"go run", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "playground (devel) (" + built + ")"},
		{"go install @version", "", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.2.3"}},
			"playground v1.2.3 (go1.26.0 " + goruntime.GOOS + "/" + goruntime.GOARCH + ")"},
		{"go build in a checkout", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261201074627-73797c32507c"}, Settings: vcs},
			"playground v0.0.0-20261201074627-73797c32507c (commit 73797c32507c, 2026-12-01T07:46:27Z; " + built + ")"},
		{"modified tree", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261201074627-73797c32507c+dirty"}, Settings: append(vcs, debug.BuildSetting{Key: "vcs.modified", Value: "true"})},
			"playground v0.0.0-20261201074627-73797c32507c+dirty (commit 73797c32507c, 2026-12-01T07:46:27Z, modified; " + built + ")"},
		{"-ldflags -X main.version", "2.0-debian1", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "playground 2.0-debian1 (" + built + ")"},
	}
	for _, tt := range tests {
		if got := versionString(tt.override, tt.info); got != tt.want {
			t.Errorf("%s:\n-want %q\n+got  %q", tt.name, tt.want, got)
		}
	}
}

// TestVersionOfABuild builds the real command from a copy of this module
// in a git repository of the test's own, with `go build -buildvcs=true`,
// and checks that `playground version` names that commit, its time and
// whether the tree was modified; `go run` (which embeds no VCS
// information) prints "(devel)" and the Go version, not a bare "dev".
func TestVersionOfABuild(t *testing.T) {
	goTool := filepath.Join(goruntime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goTool); err != nil {
		goTool = testenv.NeedCommand(t, "go")
	}
	git := testenv.NeedCommand(t, "git")
	src := testenv.SourceRoot()
	if _, err := os.Stat(filepath.Join(src, "go.mod")); err != nil {
		testenv.Skipf(t, "the module's source is not at %s: %v", src, err)
	}
	dir := t.TempDir()
	copyModule(t, src, dir)
	env := append(os.Environ(),
		"GIT_AUTHOR_DATE=2024-05-06T07:08:09Z", "GIT_COMMITTER_DATE=2024-05-06T07:08:09Z",
		"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run(git, "init", "-q")
	run(git, "add", "-A")
	run(git, "-c", "user.name=test", "-c", "user.email=test@example.com", "commit", "-q", "-m", "test")
	rev := run(git, "rev-parse", "HEAD")
	built := goruntime.Version() + " " + goruntime.GOOS + "/" + goruntime.GOARCH

	run(goTool, "build", "-buildvcs=true", "-o", "pg", "./cmd/playground")
	want := "playground v0.0.0-20240506070809-" + rev[:12] + " (commit " + rev[:12] + ", 2024-05-06T07:08:09Z; " + built + ")"
	if got := run("./pg", "version"); got != want {
		t.Errorf("clean tree:\n-want %q\n+got  %q", want, got)
	}

	f, err := os.OpenFile(filepath.Join(dir, "README.md"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString("\nchanged\n")
	_ = f.Close()
	run(goTool, "build", "-buildvcs=true", "-o", "pg", "./cmd/playground")
	want = "playground v0.0.0-20240506070809-" + rev[:12] + "+dirty (commit " + rev[:12] + ", 2024-05-06T07:08:09Z, modified; " + built + ")"
	if got := run("./pg", "version"); got != want {
		t.Errorf("modified tree:\n-want %q\n+got  %q", want, got)
	}

	if got := run(goTool, "run", "./cmd/playground", "version"); got != "playground (devel) ("+built+")" {
		t.Errorf("go run: got %q", got)
	}
}

// copyModule copies the module's files from src to dst, without .git and
// node_modules.
func copyModule(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Name() == ".git" || !d.Type().IsRegular():
			return nil // a worktree's .git file; sockets, links
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			_ = out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
}
