package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/guntainer/playground/runtime"
)

func TestLimitsFlags(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		args  []string
		want  runtime.Limits
		net   runtime.Net
		error string
	}{
		{name: "defaults", want: runtime.DefaultLimits().WithDefaults(), net: runtime.Net{Mode: runtime.NetNone}},
		{
			name: "flags", args: []string{"--memory", "1G", "--pids", "100", "--cpus", "0.5", "--disk", "64M", "--ptys", "4", "--net", "outbound", "--net-allow", "10.1.2.3", "--net-allow", "192.168.0.0/16"},
			want: runtime.Limits{Memory: 1 << 30, Pids: 100, CPUs: 0.5, Disk: 64 << 20, Ptys: 4},
			net:  runtime.Net{Mode: runtime.NetOutbound, Allow: []netip.Prefix{netip.MustParsePrefix("10.1.2.3/32"), netip.MustParsePrefix("192.168.0.0/16")}},
		},
		{
			name: "environment, flags win", env: map[string]string{"PLAYGROUND_MEMORY": "none", "PLAYGROUND_PIDS": "none", "PLAYGROUND_CPUS": "2", "PLAYGROUND_DISK": "32M", "PLAYGROUND_PTYS": "none", "PLAYGROUND_NET": "outbound", "PLAYGROUND_NET_ALLOW": "10.0.0.0/8,fd00::/8"},
			args: []string{"--cpus", "1.5"},
			want: runtime.Limits{Memory: runtime.NoLimit, Pids: runtime.NoLimit, CPUs: 1.5, Disk: 32 << 20, Ptys: runtime.NoLimit},
			net:  runtime.Net{Mode: runtime.NetOutbound, Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}},
		},
		{name: "--writable-size is --disk", args: []string{"--writable-size", "128M"}, want: runtime.Limits{Memory: 512 << 20, Pids: 256, CPUs: 1, Disk: 128 << 20}, net: runtime.Net{Mode: runtime.NetNone}},
		{name: "PLAYGROUND_WRITABLE_SIZE, --disk wins", env: map[string]string{"PLAYGROUND_WRITABLE_SIZE": "128M"}, args: []string{"--disk", "2G"}, want: runtime.Limits{Memory: 512 << 20, Pids: 256, CPUs: 1, Disk: 2 << 30}, net: runtime.Net{Mode: runtime.NetNone}},
		{name: "bad size", args: []string{"--memory", "lots"}, error: "want a size such as 256M"},
		{name: "too little memory", args: []string{"--memory", "1M"}, error: "--memory 1 MiB: below the minimum of 32 MiB"},
		{name: "no disk limit", args: []string{"--disk", "none"}, error: "--disk none: the session's files live in memory"},
		{name: "zero memory", args: []string{"--memory", "0"}, error: `invalid value "0" for flag -memory: want a size such as 256M, 1.5G, or none for no limit`},
		{name: "zero disk", args: []string{"--disk", "0"}, error: `invalid value "0" for flag -disk: want a size`},
		{name: "zero disk in the environment", env: map[string]string{"PLAYGROUND_DISK": "0M"}, error: `PLAYGROUND_DISK="0M": want a size`},
		{name: "fractional pids", args: []string{"--pids", "2.5"}, error: "--pids 2.5: want a whole number"},
		{name: "fractional ptys", args: []string{"--ptys", "1.5"}, error: "--ptys 1.5: want a whole number"},
		{name: "too many ptys", args: []string{"--ptys", "2000000"}, error: "--ptys 2000000: above the kernel's most"},
		{name: "too many cpus", args: []string{"--cpus", "1000"}, error: "this machine has only"},
		{name: "bad net", args: []string{"--net", "all"}, error: `--net "all": want none or outbound`},
		{name: "allow without outbound", args: []string{"--net-allow", "10.0.0.0/8"}, error: "--net-allow needs --net outbound"},
		{name: "bad allow", args: []string{"--net", "outbound", "--net-allow", "10.1.2.3/8"}, error: "host bits set"},
		{name: "bad env", env: map[string]string{"PLAYGROUND_PIDS": "-3"}, error: `PLAYGROUND_PIDS="-3": want a positive number or none`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := defaultServeConfig()
			err := cfg.fromEnv(func(k string) string { return tt.env[k] })
			if err == nil {
				fs := flag.NewFlagSet("serve", flag.ContinueOnError)
				fs.SetOutput(io.Discard)
				cfg.bind(fs)
				err = parseFlags(fs, tt.args)
			}
			if err == nil {
				err = cfg.Validate()
			}
			if tt.error != "" {
				if err == nil || !strings.Contains(err.Error(), tt.error) {
					t.Errorf("got %v, want an error saying %q", err, tt.error)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.LimitsConfig.limits(); got.WithDefaults() != tt.want.WithDefaults() {
				t.Errorf("limits: -want %+v +got %+v", tt.want, got)
			}
			net, _ := cfg.LimitsConfig.network()
			if fmt.Sprint(net) != fmt.Sprint(tt.net) {
				t.Errorf("net: -want %v +got %v", tt.net, net)
			}
		})
	}
}

// TestServeSaysItsModes: serve logs, once, how limits are enforced, which
// ids containers get, their network and what init is executed from (this
// test binary: no init embedded); with cgroups (root) its sessions'
// parent cgroup is gone once it has stopped.
func TestServeSaysItsModes(t *testing.T) {
	cmd := playground(t, "--listen", "127.0.0.1:0", "--warm", "1", "--memory", "256M")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	timer := time.AfterFunc(30*time.Second, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()
	var lines []string
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Errorf("log line is not JSON: %s", sc.Text())
			continue
		}
		msg, _ := m["message"].(string)
		if strings.HasPrefix(msg, "limits: ") || strings.HasPrefix(msg, "ids: ") || strings.HasPrefix(msg, "net: ") || strings.HasPrefix(msg, "init: ") {
			lines = append(lines, fmt.Sprintf("%s %s", m["level"], msg))
		}
		if msg == "serving" {
			_ = cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("server exit: %v", err)
	}
	t.Logf("%s", strings.Join(lines, "\n"))
	if len(lines) != 4 {
		t.Fatalf("want one limits, one ids, one net and one init line, got:\n%s", strings.Join(lines, "\n"))
	}
	if os.Getuid() == 0 {
		if want := "info limits: cgroup v1 (memory, pids, cpu)"; lines[0] != want {
			t.Errorf("-want %q\n+got  %q", want, lines[0])
		}
		if !strings.HasPrefix(lines[1], "info ids: each session its own 65536-id range") {
			t.Errorf("ids line: %q", lines[1])
		}
		name := "playground-" + strconv.Itoa(cmd.Process.Pid)
		for _, h := range []string{"memory", "pids", "cpu"} {
			var found []string
			_ = filepath.WalkDir(filepath.Join("/sys/fs/cgroup", h), func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.IsDir() && d.Name() == name {
					found = append(found, p)
				}
				return nil
			})
			if len(found) > 0 {
				t.Errorf("parent cgroup left after the server stopped: %v", found)
			}
		}
	} else if !strings.HasPrefix(lines[0], "warn limits: rlimits only: memory and process counts are per process") {
		t.Errorf("as an ordinary user without a delegated cgroup: %q", lines[0])
	}
	if lines[2] != "info net: none (loopback only)" {
		t.Errorf("net line: %q", lines[2])
	}
	if !strings.HasPrefix(lines[3], "info init: this binary (") {
		t.Errorf("init line: %q", lines[3])
	}
}

// TestServeOutboundWithoutHelper: --net outbound on a machine with neither
// pasta nor slirp4netns fails at start, loudly, with exit code 1.
func TestServeOutboundWithoutHelper(t *testing.T) {
	cmd := playground(t, "--listen", "127.0.0.1:0", "--net", "outbound")
	for i, kv := range cmd.Env {
		if strings.HasPrefix(kv, "PATH=") {
			cmd.Env[i] = "PATH=" + t.TempDir() // no helper there
		}
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("got %v, want exit code 1; stderr:\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "--net outbound needs") {
		t.Errorf("stderr: want it to say what --net outbound needs:\n%s", stderr.String())
	}
}

// TestEveryServeFlagHasAVariable: serve --help and the README promise
// that every flag can be set as PLAYGROUND_ and its name in capitals (the
// repeatable --origin and --allowed-host under a plural name).
func TestEveryServeFlagHasAVariable(t *testing.T) {
	asked := map[string]bool{}
	cfg := defaultServeConfig()
	if err := cfg.fromEnv(func(k string) string { asked[k] = true; return "" }); err != nil {
		t.Fatal(err)
	}
	plural := map[string]string{"origin": "PLAYGROUND_ORIGINS", "allowed-host": "PLAYGROUND_ALLOWED_HOSTS"}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfg.bind(fs)
	fs.VisitAll(func(f *flag.Flag) {
		name := plural[f.Name]
		if name == "" {
			name = "PLAYGROUND_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		}
		if !asked[name] {
			t.Errorf("--%s: %s is never read", f.Name, name)
		}
	})
}
