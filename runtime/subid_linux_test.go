package runtime

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/guntainer/playground/internal/testenv"
	"github.com/guntainer/playground/runtime/internal/initproc"
)

func TestSubIDRanges(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, file string
		names      []string
		want       int
		err        string
	}{
		{"by name", "a:1:2\nalice:200000:65536\n", []string{"1001", "alice"}, 200000, ""},
		{"by uid", "1001:300000:131072\n", []string{"1001", "alice"}, 300000, ""},
		{"first big enough", "alice:100000:1000\nalice:400000:65536\n", []string{"1001", "alice"}, 400000, ""},
		{"too small", "alice:100000:1000\n", []string{"1001", "alice"}, 0, "only [100000:1000]"},
		{"none", "bob:100000:65536\n", []string{"1001", "alice"}, 0, "no range for alice"},
		{"garbage", "alice:x:y\nalice\n", []string{"1001", "alice"}, 0, "no range for alice"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, fmt.Sprint(i))
			writeFile(t, p, tt.file)
			got, err := subIDRange(p, tt.names)
			if tt.err == "" && (err != nil || got != tt.want) {
				t.Errorf("got %d, %v; want %d", got, err, tt.want)
			}
			if tt.err != "" && (err == nil || !errors.Is(err, ErrNoSubIDs) || !strings.Contains(err.Error(), tt.err)) {
				t.Errorf("got %d, %v; want ErrNoSubIDs saying %q", got, err, tt.err)
			}
		})
	}
	if _, err := subIDRange(filepath.Join(dir, "missing"), []string{"x"}); !errors.Is(err, ErrNoSubIDs) {
		t.Errorf("missing file: got %v, want ErrNoSubIDs", err)
	}
}

// TestSubIDMap maps a real process in a new user namespace with newuidmap
// and newgidmap, as the start path does: it becomes container root, runs
// as the slice's first host id, never as the server's uid, and keeps its
// capabilities in its namespace.
func TestSubIDMap(t *testing.T) {
	s, err := LookupSubIDs()
	if os.Getuid() == 0 {
		if !errors.Is(err, ErrNoSubIDs) || !strings.Contains(err.Error(), "root") {
			t.Fatalf("as root: got %v, %v; want ErrNoSubIDs saying root has its own ranges", s, err)
		}
		t.Logf("as root the mode does not apply: %v", err)
		return
	}
	if err != nil {
		testenv.Skipf(t, "subordinate ids for uid %d: %v", os.Getuid(), err)
	}
	t.Log(s)
	cmd := helperCmd(t, "become", nil)
	cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS
	if err := s.Prepare(cmd.SysProcAttr); err != nil {
		t.Fatal(err)
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start in a new user namespace: %v", err)
	}
	defer func() {
		_ = in.Close()
		_ = cmd.Wait()
	}()
	pid := cmd.Process.Pid
	if err := s.Map(pid); err != nil {
		_ = cmd.Process.Kill()
		t.Fatal(err)
	}
	if _, err := io.WriteString(in, "mapped\n"); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "root" {
		t.Fatalf("helper: got %q, %v; want root", line, err)
	}
	uidMap := strings.Fields(readString(fmt.Sprintf("/proc/%d/uid_map", pid)))
	gidMap := strings.Fields(readString(fmt.Sprintf("/proc/%d/gid_map", pid)))
	want := []string{"0", fmt.Sprint(s.UIDBase), "65536"}
	if strings.Join(uidMap, " ") != strings.Join(want, " ") {
		t.Errorf("uid_map: got %v, want %v", uidMap, want)
	}
	if gidMap[1] != fmt.Sprint(s.GIDBase) || gidMap[2] != "65536" {
		t.Errorf("gid_map: got %v, want 0 %d 65536", gidMap, s.GIDBase)
	}
	status := readString(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(status, "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) == 5 && f[0] == "Uid:":
			for _, id := range f[1:] {
				if id != fmt.Sprint(s.UIDBase) || id == fmt.Sprint(os.Getuid()) {
					t.Errorf("host uids of the process: %v, want all %d (never the server's %d)", f[1:], s.UIDBase, os.Getuid())
				}
			}
		case len(f) == 5 && f[0] == "Gid:":
			for _, id := range f[1:] {
				if id != fmt.Sprint(s.GIDBase) {
					t.Errorf("host gids of the process: %v, want all %d", f[1:], s.GIDBase)
				}
			}
		case f != nil && f[0] == "Groups:" && len(f) > 1:
			t.Errorf("supplementary groups kept from the server: %v", f[1:])
		case len(f) == 2 && f[0] == "CapEff:" && f[1] == "0000000000000000":
			t.Errorf("container root has no capabilities in its namespace: %s", l)
		}
	}
}

// helperBecomeRoot is init's side: wait for the maps, become root, say so.
func helperBecomeRoot() int {
	r := bufio.NewReader(os.Stdin)
	if _, err := r.ReadString('\n'); err != nil {
		return 1
	}
	if err := initproc.BecomeRoot(true); err != nil {
		fmt.Println(err)
		return 1
	}
	if os.Getuid() != 0 || os.Getgid() != 0 {
		fmt.Println("uid", os.Getuid(), "gid", os.Getgid())
		return 1
	}
	fmt.Println("root")
	_, _ = io.Copy(io.Discard, r)
	return 0
}
