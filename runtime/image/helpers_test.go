package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/rs/zerolog"
	"github.com/ulikunitz/xz"
)

// ent is one entry of a test archive.
type ent struct {
	name, link string
	typ        byte
	body       string
	mode       int64
	uid, gid   int
	size       int64 // when set, the header's size, whatever the body
}

func file(name, body string) ent { return ent{name: name, typ: tar.TypeReg, body: body, mode: 0o644} }
func dir(name string) ent        { return ent{name: name, typ: tar.TypeDir, mode: 0o755} }
func symlink(name, to string) ent {
	return ent{name: name, typ: tar.TypeSymlink, link: to, mode: 0o777}
}
func hardlink(name, to string) ent { return ent{name: name, typ: tar.TypeLink, link: to, mode: 0o644} }

var testTime = time.Date(2024, 4, 25, 12, 0, 0, 0, time.UTC)

// tarOf writes the entries as a tar stream. A body shorter than a
// header's size makes a stream that ends early.
func tarOf(t testing.TB, es ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode, Uid: e.uid, Gid: e.gid, ModTime: testTime}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.body))
			if e.size != 0 {
				h.Size = e.size
			}
		}
		if e.typ == tar.TypeChar || e.typ == tar.TypeBlock {
			h.Devmajor, h.Devminor = 1, 3
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("tar header %s: %v", e.name, err)
		}
		if e.typ == tar.TypeReg {
			if _, err := io.WriteString(tw, e.body); err != nil && e.size == 0 {
				t.Fatalf("tar body %s: %v", e.name, err)
			}
		}
		if e.size != 0 && e.size > int64(len(e.body)) {
			return buf.Bytes() // the stream ends inside this entry
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipOf(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func xzOf(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := xz.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zstdOf(t testing.TB, b []byte) []byte {
	t.Helper()
	zw, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer zw.Close()
	return zw.EncodeAll(b, nil)
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// logBuffer collects a test's log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// newCache opens a cache in a fresh directory, with retries that do not
// wait.
func newCache(t testing.TB) (*Cache, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	c, err := OpenCache(filepath.Join(t.TempDir(), "cache"), zerolog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	c.Backoff = time.Millisecond
	c.Client = newHTTPClient()
	t.Cleanup(func() {
		c.Client.CloseIdleConnections()
		// An ordinary user's unpack leaves read-only directories that
		// t.TempDir's removal cannot get through.
		_ = removeTree(c.Dir())
	})
	return c, logs
}

// checkAptSetting checks the apt-as-root setting: in a tree unpacked for
// the one-id map (OwnEntries), and only there.
func checkAptSetting(t testing.TB, c *Cache, dir string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "etc/apt/apt.conf.d/99playground-sandbox"))
	switch {
	case c.Owners == OwnEntries && (err != nil || !strings.Contains(string(b), `APT::Sandbox::User "root";`)):
		t.Errorf("the apt setting of a tree for the one-id map: %q %v", b, err)
	case c.Owners != OwnEntries && err == nil:
		t.Errorf("the apt setting in a tree that keeps its owners (their containers map a range)")
	}
}

// snapshot describes every file under dir: type, mode, size, links,
// content hash or link target, so that two snapshots differ if anything
// under dir changed.
func snapshot(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		desc := fi.Mode().String()
		if uid, _, nlink := owner(fi); uid >= 0 {
			desc += " nlink=" + itoa(nlink) + " uid=" + itoa(uid)
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			desc += " -> " + l
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			desc += " " + sha256Hex(b)
		case fi.IsDir():
			desc += ""
		}
		out[p] = desc + " mtime=" + fi.ModTime().String()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func itoa(n int) string { return strconv.Itoa(n) }

// diffSnapshots lists what differs, "-" before and "+" after.
func diffSnapshots(before, after map[string]string) string {
	var d []string
	for k, v := range before {
		if w, ok := after[k]; !ok {
			d = append(d, "-"+k+" "+v)
		} else if w != v {
			d = append(d, "-"+k+" "+v, "+"+k+" "+w)
		}
	}
	for k, v := range after {
		if _, ok := before[k]; !ok {
			d = append(d, "+"+k+" "+v)
		}
	}
	sort.Strings(d)
	return strings.Join(d, "\n")
}
