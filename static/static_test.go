package static

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/guntainer/playground/internal/testenv"
)

// built lists the files that web/build.mjs writes.
var built = []string{"app.js", "app.css"}

func TestFS(t *testing.T) {
	for _, name := range append([]string{"index.html"}, built...) {
		b, err := fs.ReadFile(FS(), name)
		if err != nil {
			t.Fatalf("read %s: %v", name, err)
		}
		if len(b) == 0 {
			t.Errorf("%s is empty", name)
		}
	}

	index, err := fs.ReadFile(FS(), "index.html")
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{`src="app.js"`, `href="app.css"`} {
		if !bytes.Contains(index, []byte(ref)) {
			t.Errorf("index.html does not reference %s", ref)
		}
	}

	// The Go sources sit beside the assets; they must not be served.
	for _, name := range []string{"static.go", "static_test.go"} {
		if _, err := fs.Stat(FS(), name); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Stat(%s) = %v, want fs.ErrNotExist", name, err)
		}
	}
}

// TestBundleFresh rebuilds the front end into a temporary directory and compares it
// with the committed bundle, so a change to web/ without a rebuild cannot land.
func TestBundleFresh(t *testing.T) {
	web, err := filepath.Abs(filepath.Join("..", "web"))
	if err != nil {
		t.Fatal(err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		testenv.Skipf(t, "node not found: %v", err)
	}
	if _, err := os.Stat(filepath.Join(web, "node_modules", "esbuild")); err != nil {
		testenv.Skipf(t, "web/node_modules not installed (run npm --prefix web ci): %v", err)
	}

	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(web, "build.mjs"), out)
	cmd.Dir = web
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, msg)
	}

	for _, name := range built {
		want, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatalf("build wrote no %s: %v", name, err)
		}
		got, err := fs.ReadFile(FS(), name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("static/%s is stale (%d bytes committed, %d built): run npm --prefix web ci && npm --prefix web run build", name, len(got), len(want))
		}
	}

	// A file the build writes but the embed does not name would be silently missing.
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !slices.Contains(built, e.Name()) {
			t.Errorf("build wrote %s, which static.go does not embed", e.Name())
		}
	}
}
