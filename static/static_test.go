package static

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/guntainer/playground/internal/testenv"
)

// assetRefs are the assets index.html names.
var assetRef = regexp.MustCompile(`(?:src|href)="(assets/[^"]+)"`)

func indexAssets(t *testing.T) []string {
	t.Helper()
	index, err := fs.ReadFile(FS(), "index.html")
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, m := range assetRef.FindAllSubmatch(index, -1) {
		refs = append(refs, string(m[1]))
	}
	return refs
}

func TestFS(t *testing.T) {
	refs := indexAssets(t)
	var js, css int
	for _, ref := range refs {
		b, err := fs.ReadFile(FS(), ref)
		if err != nil {
			t.Errorf("index.html names %s: %v", ref, err)
			continue
		}
		if len(b) == 0 {
			t.Errorf("%s is empty", ref)
		}
		js += bool2int(strings.HasSuffix(ref, ".js"))
		css += bool2int(strings.HasSuffix(ref, ".css"))
	}
	if js != 1 || css != 1 {
		t.Errorf("index.html names %v, want one script and one style sheet", refs)
	}
	// Content-hashed names: a cached old asset can never be taken for a new one.
	hashed := regexp.MustCompile(`^assets/[a-z0-9-]+-[A-Z0-9]{8}\.(js|css)(\.br|\.gz)?$`)
	err := fs.WalkDir(FS(), "assets", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !hashed.MatchString(p) {
			t.Errorf("%s: not a content-hashed asset name", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// The Go sources sit beside the assets; they must not be served.
	for _, name := range []string{"static.go", "static_test.go", "handler.go"} {
		if _, err := fs.Stat(FS(), name); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Stat(%s) = %v, want fs.ErrNotExist", name, err)
		}
	}
}

func bool2int(b bool) int {
	if b {
		return 1
	}
	return 0
}

func get(t *testing.T, h http.Handler, method, path string, hdr ...string) *http.Response {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Result()
}

func body(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHandler(t *testing.T) {
	h, err := NewHandler(FS())
	if err != nil {
		t.Fatal(err)
	}
	index, _ := fs.ReadFile(FS(), "index.html")
	var script string
	for _, ref := range indexAssets(t) {
		if strings.HasSuffix(ref, ".js") {
			script = ref
		}
	}
	plain, _ := fs.ReadFile(FS(), script)
	br, _ := fs.ReadFile(FS(), script+".br")

	tests := []struct {
		name, method, path, accept string
		wantStatus                 int
		wantType, wantCache        string
		wantEncoding               string
		wantBody                   []byte
	}{
		{"page", "GET", "/", "gzip, br", 200, "text/html; charset=utf-8", "no-cache", "", index},
		{"page by name", "GET", "/index.html", "", 301, "", "", "", []byte{}},
		{"script, brotli", "GET", "/" + script, "gzip, deflate, br, zstd", 200, "text/javascript; charset=utf-8", "public, max-age=31536000, immutable", "br", br},
		{"script, gzip only", "GET", "/" + script, "gzip", 200, "text/javascript; charset=utf-8", "public, max-age=31536000, immutable", "gzip", nil},
		{"script, brotli refused", "GET", "/" + script, "br;q=0, gzip;q=0.5", 200, "text/javascript; charset=utf-8", "public, max-age=31536000, immutable", "gzip", nil},
		{"script, any", "GET", "/" + script, "*", 200, "text/javascript; charset=utf-8", "public, max-age=31536000, immutable", "br", br},
		{"script, nothing accepted", "GET", "/" + script, "", 200, "text/javascript; charset=utf-8", "public, max-age=31536000, immutable", "", plain},
		{"script, identity", "GET", "/" + script, "identity", 200, "text/javascript; charset=utf-8", "public, max-age=31536000, immutable", "", plain},
		{"head", "HEAD", "/" + script, "br", 200, "text/javascript; charset=utf-8", "public, max-age=31536000, immutable", "br", []byte{}},
		{"missing", "GET", "/assets/app-00000000.js", "", 404, "text/plain; charset=utf-8", "no-cache", "", nil},
		{"a compressed copy by name is not a file", "GET", "/" + script + ".gz", "", 404, "text/plain; charset=utf-8", "no-cache", "", nil},
		{"directory", "GET", "/assets/", "", 404, "text/plain; charset=utf-8", "no-cache", "", nil},
		{"go source", "GET", "/static.go", "", 404, "text/plain; charset=utf-8", "no-cache", "", nil},
		{"dot dot", "GET", "/assets/../../static/static.go", "", 404, "text/plain; charset=utf-8", "no-cache", "", nil},
		{"post", "POST", "/", "", 405, "text/plain; charset=utf-8", "", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := get(t, h, tt.method, tt.path, "Accept-Encoding", tt.accept)
			b := body(t, resp)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %.200q", resp.StatusCode, tt.wantStatus, b)
			}
			for k, want := range map[string]string{
				"Content-Type":            tt.wantType,
				"Cache-Control":           tt.wantCache,
				"Content-Encoding":        tt.wantEncoding,
				"Content-Security-Policy": ContentSecurityPolicy,
				"X-Content-Type-Options":  "nosniff",
			} {
				if got := resp.Header.Get(k); got != want {
					t.Errorf("%s: %q, want %q", k, got, want)
				}
			}
			if tt.wantEncoding == "gzip" {
				zr, err := gzip.NewReader(bytes.NewReader(b))
				if err != nil {
					t.Fatal(err)
				}
				if b, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(b, plain) {
					t.Errorf("gzip body decompresses to %d bytes, not the script's %d", len(b), len(plain))
				}
			} else if tt.wantBody != nil && !bytes.Equal(b, tt.wantBody) {
				t.Errorf("body: %d bytes, want %d", len(b), len(tt.wantBody))
			}
			if tt.wantStatus == 200 && strings.HasPrefix(tt.path, "/assets/") && resp.Header.Get("Vary") != "Accept-Encoding" {
				t.Errorf("Vary: %q, want Accept-Encoding", resp.Header.Get("Vary"))
			}
		})
	}
}

// TestHandlerRevalidates: each representation has its own ETag, and a browser that
// has it gets 304 and no body.
func TestHandlerRevalidates(t *testing.T) {
	h := Handler()
	seen := map[string]string{}
	for _, path := range append([]string{"/"}, "/"+indexAssets(t)[0]) {
		for _, enc := range []string{"", "gzip", "br"} {
			resp := get(t, h, "GET", path, "Accept-Encoding", enc)
			etag := resp.Header.Get("ETag")
			if !regexp.MustCompile(`^"[0-9a-f]{24}(-br|-gzip)?"$`).MatchString(etag) {
				t.Fatalf("%s %q: ETag %q", path, enc, etag)
			}
			if other, dup := seen[etag]; dup && other != resp.Header.Get("Content-Encoding") {
				t.Errorf("%s: ETag %s shared by two encodings", path, etag)
			}
			seen[etag] = resp.Header.Get("Content-Encoding")
			again := get(t, h, "GET", path, "Accept-Encoding", enc, "If-None-Match", etag)
			if b := body(t, again); again.StatusCode != http.StatusNotModified || len(b) != 0 {
				t.Errorf("%s %q with If-None-Match: %d, %d bytes; want 304, none", path, enc, again.StatusCode, len(b))
			}
		}
	}
}

// TestHandlerOtherFS: the handler serves any built tree, such as the server tests'
// one-file page.
func TestHandlerOtherFS(t *testing.T) {
	h, err := NewHandler(fstest.MapFS{"index.html": {Data: []byte("<title>t</title>")}, "robots.txt": {Data: []byte("User-agent: *")}})
	if err != nil {
		t.Fatal(err)
	}
	resp := get(t, h, "GET", "/")
	if b := body(t, resp); resp.StatusCode != 200 || string(b) != "<title>t</title>" {
		t.Errorf("GET /: %d %q", resp.StatusCode, b)
	}
	resp = get(t, h, "GET", "/robots.txt")
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-cache" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Errorf("GET /robots.txt: %d, %v", resp.StatusCode, resp.Header)
	}
	if _, err := NewHandler(fstest.MapFS{"app.js": {Data: []byte("x")}}); err == nil {
		t.Error("NewHandler without index.html: no error")
	}
}

// TestPageWeight reports what a first visit downloads compressed (the WebGL renderer's
// chunk comes on top only where WebGL works), and keeps it under the budget.
func TestPageWeight(t *testing.T) {
	var first, webgl int
	for _, ref := range indexAssets(t) {
		b, err := fs.ReadFile(FS(), ref+".br")
		if err != nil {
			t.Fatal(err)
		}
		first += len(b)
	}
	chunks, _ := fs.Glob(FS(), "assets/addon-webgl-*.js.br")
	for _, c := range chunks {
		b, _ := fs.ReadFile(FS(), c)
		webgl += len(b)
	}
	t.Logf("page weight, brotli: %.1f KiB first load (script and style sheet), +%.1f KiB WebGL renderer", float64(first)/1024, float64(webgl)/1024)
	if first+webgl > 200<<10 {
		t.Errorf("page weight %d bytes compressed, over the 200 KiB budget", first+webgl)
	}
}

// web returns the front end's source directory and node, or skips.
func web(t *testing.T) (dir, node string) {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "web"))
	if err != nil {
		t.Fatal(err)
	}
	node, err = exec.LookPath("node")
	if err != nil {
		testenv.Skipf(t, "node not found: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "esbuild")); err != nil {
		testenv.Skipf(t, "web/node_modules not installed (run npm --prefix web ci): %v", err)
	}
	return dir, node
}

func runNode(t *testing.T, dir string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	} else if testing.Verbose() {
		t.Logf("%s:\n%s", strings.Join(args, " "), out)
	}
}

// TestBundleFresh rebuilds the front end into a temporary directory and compares it
// with the committed one, so a change to web/ without a rebuild cannot land. The
// compressed copies are compared by what they decompress to: compressors may differ
// between Node versions.
func TestBundleFresh(t *testing.T) {
	dir, node := web(t)
	out := t.TempDir()
	runNode(t, dir, node, filepath.Join(dir, "build.mjs"), out)
	runNode(t, dir, node, filepath.Join(dir, "build.mjs"), "verify", out)
	runNode(t, dir, node, filepath.Join(dir, "build.mjs"), "verify", filepath.Join(dir, "..", "static"))

	var built []string
	err := filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(out, p)
			built = append(built, filepath.ToSlash(rel))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var committed []string
	_ = fs.WalkDir(FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			committed = append(committed, p)
		}
		return err
	})
	slices.Sort(built)
	slices.Sort(committed)
	if !slices.Equal(built, committed) {
		t.Fatalf("static/ is stale: the build writes\n%v\nbut static/ embeds\n%v\nrun npm --prefix web ci && npm --prefix web run build", built, committed)
	}
	for _, name := range built {
		if strings.HasSuffix(name, ".br") || strings.HasSuffix(name, ".gz") {
			continue // verified above
		}
		want, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := fs.ReadFile(FS(), name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("static/%s is stale (%d bytes committed, %d built): run npm --prefix web ci && npm --prefix web run build", name, len(got), len(want))
		}
	}
}

// TestTypecheck runs the TypeScript compiler over the page and its tests.
func TestTypecheck(t *testing.T) {
	dir, node := web(t)
	tsc := filepath.Join(dir, "node_modules", "typescript", "bin", "tsc")
	runNode(t, dir, node, tsc, "--noEmit", "-p", ".")
	runNode(t, dir, node, tsc, "--noEmit", "-p", "test")
}

// TestWebUnit runs web/test/*.test.ts (protocol, keys, options) with node's test runner.
func TestWebUnit(t *testing.T) {
	dir, node := web(t)
	runNode(t, dir, node, filepath.Join(dir, "test.mjs"))
}
