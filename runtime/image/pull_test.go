package image

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// testRegistry is go-containerregistry's registry on loopback, behind
// basic auth (user:pass), counting requests; corrupt, when set, is a blob
// digest whose bytes it serves altered.
type testRegistry struct {
	srv      *httptest.Server
	host     string
	requests atomic.Int32
	corrupt  atomic.Value // string
}

func newRegistry(t *testing.T) *testRegistry {
	t.Helper()
	r := &testRegistry{}
	r.corrupt.Store("")
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.requests.Add(1)
		if u, p, ok := req.BasicAuth(); !ok || u != "user" || p != "pass" {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		if d := r.corrupt.Load().(string); d != "" && req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/blobs/"+d) {
			rec := httptest.NewRecorder()
			reg.ServeHTTP(rec, req)
			b := rec.Body.Bytes()
			b[len(b)/2] ^= 0xff
			w.Header().Set("Content-Length", itoa(len(b)))
			w.WriteHeader(rec.Code)
			_, _ = w.Write(b)
			return
		}
		reg.ServeHTTP(w, req)
	}))
	t.Cleanup(r.srv.Close)
	r.host = strings.TrimPrefix(r.srv.URL, "http://")
	// The docker config that authn.DefaultKeychain reads.
	cfg := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte("user:pass"))
	if err := os.WriteFile(filepath.Join(cfg, "config.json"), []byte(`{"auths":{"`+r.host+`":{"auth":"`+auth+`"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", cfg)
	return r
}

// push writes an image of the given layers and config as repo:tag.
func (r *testRegistry) push(t *testing.T, repo string, cfg v1.Config, layers ...[]ent) (string, []v1.Layer) {
	t.Helper()
	var ls []v1.Layer
	for _, es := range layers {
		b := tarOf(t, es...)
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
	}
	img, err := mutate.AppendLayers(empty.Image, ls...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Config = "linux", goruntime.GOARCH, cfg
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(r.host + "/" + repo)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "user", Password: "pass"})); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String(), ls
}

var courseLayers = [][]ent{
	{
		dir("etc"), file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"),
		file("etc/group", "root:x:0:\napp:x:1000:\nstaff:x:50:app\n"),
		dir("etc/apt"), file("etc/gone", "lower"), dir("opt"), file("opt/old", "lower"), dir("opt/sub"), file("opt/sub/old", "lower"),
		dir("home"), ent{name: "home/app", typ: '5', mode: 0o755, uid: 1000, gid: 1000},
	},
	{file("etc/.wh.gone", ""), dir("opt"), file("opt/.wh..wh..opq", ""), file("opt/new", "upper")},
	{file("etc/motd", "welcome to the course\n"), file("home/app/hello.py", "print('hello')\n")},
}

// TestPull pulls an image of several layers from a registry on loopback,
// with auth from the docker config: whiteout and opaque directory
// honoured, Env, WorkingDir and User returned resolved, and the digest
// cache hit on the next start and on a pull of the same digest.
func TestPull(t *testing.T) {
	reg := newRegistry(t)
	cfg := v1.Config{Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin", "COURSE=1"}, WorkingDir: "/home/app", User: "app:staff", Cmd: []string{"/bin/sh"}}
	digest, _ := reg.push(t, "course/env:1", cfg, courseLayers...)
	c, _ := newCache(t)
	src := mustSource(t, "docker://"+reg.host+"/course/env:1")
	if src.Name != "env-1" {
		t.Errorf("name %q, want env-1", src.Name)
	}
	var ph phases
	unpacked := unpacks.Load()
	img, err := c.Prepare(context.Background(), src, ph.report)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if got := unpacks.Load() - unpacked; got != 3 {
		t.Errorf("%d layers unpacked, want 3", got)
	}
	if got, want := ph.String(), "preparing resolving pulling finishing ready"; got != want {
		t.Errorf("phases %q, want %q", got, want)
	}
	if img.Digest != digest {
		t.Errorf("digest %s, want the manifest's %s", img.Digest, digest)
	}
	want := Config{
		Env:        []string{"PATH=/usr/local/bin:/usr/bin:/bin", "COURSE=1", "HOME=/home/app"},
		WorkingDir: "/home/app",
		User:       "1000:50",
		Shell:      []string{"/bin/sh", "-l"},
		Cmd:        []string{"/bin/sh"},
	}
	if !slices.Equal(img.Config.Env, want.Env) || img.Config.WorkingDir != want.WorkingDir || img.Config.User != want.User ||
		!slices.Equal(img.Config.Shell, want.Shell) || !slices.Equal(img.Config.Cmd, want.Cmd) {
		t.Errorf("config\n got %+v\nwant %+v", img.Config, want)
	}
	checkAptSetting(t, c, img.Dir)
	for p, want := range map[string]string{"etc/motd": "welcome", "opt/new": "upper", "home/app/hello.py": "hello"} {
		if b, err := os.ReadFile(filepath.Join(img.Dir, p)); err != nil || !strings.Contains(string(b), want) {
			t.Errorf("%s: %q %v", p, b, err)
		}
	}
	for _, p := range []string{"etc/gone", "opt/old", "opt/sub"} {
		if _, err := os.Lstat(filepath.Join(img.Dir, p)); err == nil {
			t.Errorf("%s: still there, want it removed by a whiteout", p)
		}
	}

	// The next start: no request, nothing unpacked.
	c2, err := OpenCache(c.Dir(), c.Log)
	if err != nil {
		t.Fatal(err)
	}
	requests, unpacked := reg.requests.Load(), unpacks.Load()
	img2, err := c2.Prepare(context.Background(), src, nil)
	if err != nil {
		t.Fatal(err)
	}
	img2.Close()
	if reg.requests.Load() != requests || unpacks.Load() != unpacked || img2.Dir != img.Dir || img2.Config.User != "1000:50" {
		t.Fatalf("cached start: %d requests, %d unpacks, dir %s, user %q", reg.requests.Load()-requests, unpacks.Load()-unpacked, img2.Dir, img2.Config.User)
	}
	// rootfs pull looks the tag up again: same digest, nothing unpacked.
	img3, err := c2.Pull(context.Background(), src, nil)
	if err != nil {
		t.Fatal(err)
	}
	img3.Close()
	if reg.requests.Load() == requests || unpacks.Load() != unpacked || img3.Dir != img.Dir {
		t.Fatalf("pull of an unchanged tag: %d requests, %d unpacks", reg.requests.Load()-requests, unpacks.Load()-unpacked)
	}
	// By digest: the same tree, no unpack. The first time, the registry
	// says which image the digest names (an index's names another, per
	// platform); from then on the source starts with no request, as one
	// offline must.
	byDigest := mustSource(t, "docker://"+reg.host+"/course/env@"+digest)
	img4, err := c2.Prepare(context.Background(), byDigest, nil)
	if err != nil {
		t.Fatal(err)
	}
	img4.Close()
	if img4.Dir != img.Dir || unpacks.Load() != unpacked {
		t.Fatalf("by digest: dir %s, %d unpacks", img4.Dir, unpacks.Load()-unpacked)
	}
	requests = reg.requests.Load()
	img4, err = c2.Prepare(context.Background(), byDigest, nil)
	if err != nil {
		t.Fatal(err)
	}
	img4.Close()
	if img4.Dir != img.Dir || reg.requests.Load() != requests {
		t.Fatalf("by digest, again: dir %s, %d requests", img4.Dir, reg.requests.Load()-requests)
	}

	// The tag moves: pull gets the new image; prune then removes the old
	// one, which no source names any more, once nothing uses it.
	digest2, _ := reg.push(t, "course/env:1", cfg, append(courseLayers, []ent{file("etc/motd", "v2\n")})...)
	img5, err := c2.Pull(context.Background(), src, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer img5.Close()
	if img5.Digest != digest2 || img5.Dir == img.Dir {
		t.Fatalf("after the tag moved: %s in %s", img5.Digest, img5.Dir)
	}
	res, err := c2.Prune(false, 0)
	if err != nil || len(res.Removed) != 0 {
		t.Fatalf("prune with the old image in use (and named by digest): %+v %v", res, err)
	}
}

// TestPullRefused: a layer whose bytes do not match its digest, and an
// image for another architecture, are refused, and leave nothing.
func TestPullRefused(t *testing.T) {
	reg := newRegistry(t)
	_, layers := reg.push(t, "bad/layer:1", v1.Config{}, courseLayers...)
	d, err := layers[1].Digest()
	if err != nil {
		t.Fatal(err)
	}
	reg.corrupt.Store(d.String())
	c, _ := newCache(t)
	_, err = c.Prepare(context.Background(), mustSource(t, "docker://"+reg.host+"/bad/layer:1"), nil)
	if err == nil || !strings.Contains(err.Error(), "layer 2 of 3") {
		t.Fatalf("want the corrupt layer 2 refused, got %v", err)
	}
	for _, dir := range []string{"rootfs", "tmp"} {
		if es, _ := os.ReadDir(c.path(dir)); len(es) != 0 {
			t.Errorf("%s/ has %v after a refused pull", dir, es)
		}
	}
	reg.corrupt.Store("")

	// Another architecture.
	b := tarOf(t, file("x", "x"))
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, _ := mutate.AppendLayers(empty.Image, l)
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "s390x"
	if goruntime.GOARCH == "s390x" {
		cf.Architecture = "riscv64"
	}
	img, _ = mutate.ConfigFile(img, cf)
	ref, _ := name.ParseReference(reg.host + "/other/arch:1")
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "user", Password: "pass"})); err != nil {
		t.Fatal(err)
	}
	_, err = c.Prepare(context.Background(), mustSource(t, "docker://"+reg.host+"/other/arch:1"), nil)
	if err == nil || !strings.Contains(err.Error(), "this machine is linux/"+goruntime.GOARCH) {
		t.Fatalf("want another architecture refused, got %v", err)
	}
	if _, err := c.Prepare(context.Background(), mustSource(t, "docker://"+reg.host+"/no/such:1"), nil); err == nil || !strings.Contains(err.Error(), "NAME_UNKNOWN") {
		t.Fatalf("want an unknown image refused, got %v", err)
	}
}
