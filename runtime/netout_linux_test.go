package runtime

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/guntainer/playground/internal/testenv"
	"github.com/guntainer/playground/runtime/internal/initproc"
)

func TestParseNet(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want NetMode
		err  bool
	}{{"", NetNone, false}, {"none", NetNone, false}, {"outbound", NetOutbound, false}, {"all", "", true}} {
		got, err := ParseNetMode(tt.in)
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("ParseNetMode(%q): got %q, %v", tt.in, got, err)
		}
	}
	for _, tt := range []struct{ in, want, err string }{
		{"10.1.2.3", "10.1.2.3/32", ""}, {"10.1.0.0/16", "10.1.0.0/16", ""}, {"fd00::1", "fd00::1/128", ""},
		{"10.1.2.3/16", "", "host bits set"}, {"example.com", "", "want an address"},
	} {
		got, err := ParseAllow(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseAllow(%q): got %v, %v; want an error saying %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got.String() != tt.want {
			t.Errorf("ParseAllow(%q): got %v, %v; want %s", tt.in, got, err, tt.want)
		}
	}
	if err := (Net{Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}).Validate(); err == nil {
		t.Error("--net-allow without --net outbound: no error")
	}
	r := Net{Mode: NetOutbound, Allow: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}}.Rules(
		[]netip.Prefix{netip.MustParsePrefix("169.254.1.1/32")}, []netip.Prefix{netip.MustParsePrefix("192.0.2.7/32")})
	if len(r.Allow) != 2 || r.Allow[0].String() != "169.254.1.1/32" || r.Block[len(r.Block)-1].String() != "192.0.2.7/32" {
		t.Errorf("Rules: %+v", r)
	}
	if got := (Net{}).Rules(nil, nil); len(got.Block) != 0 {
		t.Errorf("rules without outbound: %+v", got)
	}
}

// The outbound test builds a small world in namespaces it makes, so no
// packet can leave this machine: an "outside" user and net namespace that
// stands for the host (a veth as its interface with a default route, a
// "public" peer at 203.0.113.5, a private one at 10.77.0.5, a service on
// its loopback, and the gateway's address answering too), and in it a
// container (nested user and net namespaces) with the helper running
// outside, as the server would run it.

type netProbe struct {
	Name string `json:"name"`
	Addr string `json:"addr"`
}

type netWorld struct {
	Kind   string         `json:"kind"`
	Path   string         `json:"path"`
	Allow  []netip.Prefix `json:"allow"`
	Probes []netProbe     `json:"probes"`
}

type netInside struct {
	Rules  NetRules   `json:"rules"`
	Probes []netProbe `json:"probes"`
}

func TestNetOutbound(t *testing.T) {
	for _, kind := range []string{"pasta", "slirp4netns"} {
		t.Run(kind, func(t *testing.T) {
			path := testenv.NeedCommand(t, kind)
			testenv.NeedCommand(t, "ip")
			if err := checkTun(); err != nil {
				testenv.Skipf(t, "%v", err)
			}
			got := runNetWorld(t, netWorld{Kind: kind, Path: path})
			want := map[string]string{
				"public":         "hello public",
				"private":        "network is unreachable",
				"host loopback":  "connection refused", // the container's own loopback: nothing there
				"gateway":        "not reached",
				"metadata":       "network is unreachable",
				"host's address": "not reached",
			}
			checkProbes(t, got, want)

			t.Run("allowed", func(t *testing.T) {
				got := runNetWorld(t, netWorld{Kind: kind, Path: path, Allow: []netip.Prefix{netip.MustParsePrefix("10.77.0.5/32")}})
				checkProbes(t, got, map[string]string{"public": "hello public", "private": "hello private"})
			})
		})
	}
}

// checkProbes compares the outcome of each probe: "hello NAME" is a
// connection that reached the listener; anything else must not be one.
func checkProbes(t *testing.T, got, want map[string]string) {
	t.Helper()
	for name, w := range want {
		g, ok := got[name]
		switch {
		case !ok:
			t.Errorf("%s: no result", name)
		case w == "not reached":
			if strings.HasPrefix(g, "hello") {
				t.Errorf("%s: reached (%q); it must not be", name, g)
			}
		case !strings.Contains(g, w):
			t.Errorf("%s: -want %q +got %q", name, w, g)
		}
	}
	t.Logf("results: %q", got)
}

func runNetWorld(t *testing.T, w netWorld) map[string]string {
	t.Helper()
	cmd := helperCmd(t, "netoutside", w)
	cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWNET
	inOwnUserNS(cmd)
	return helperResult(t, cmd, "outside helper")
}

// helperNetOutside is the host of the test world, in its own user and net
// namespaces.
func helperNetOutside() int {
	var w netWorld
	helperArg(&w)
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
		return 1
	}
	for _, c := range [][]string{
		{"link", "set", "lo", "up"},
		{"link", "add", "eth0", "type", "veth", "peer", "name", "eth1"},
		{"addr", "add", "198.51.100.1/24", "dev", "eth0"},
		{"link", "set", "eth1", "up"},
		{"link", "set", "eth0", "up"},
		{"route", "add", "default", "via", "198.51.100.254", "dev", "eth0"},
		{"addr", "add", "203.0.113.5/32", "dev", "lo"},     // a public peer
		{"addr", "add", "10.77.0.5/32", "dev", "lo"},       // a private one
		{"addr", "add", "169.254.169.254/32", "dev", "lo"}, // cloud metadata
		{"addr", "add", "198.51.100.254/32", "dev", "lo"},  // the gateway answers too
		{"addr", "add", "192.0.2.9/32", "dev", "lo"},       // another address of the host
	} {
		if out, err := exec.Command("ip", c...).CombinedOutput(); err != nil {
			return fail("ip %s: %v: %s", strings.Join(c, " "), err, out)
		}
	}
	listen := func(name, addr string) (string, error) {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return "", err
		}
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				_, _ = io.WriteString(c, "hello "+name+"\n")
				_ = c.Close()
			}
		}()
		return l.Addr().String(), nil
	}
	pub, err1 := listen("public", "203.0.113.5:0")
	priv, err2 := listen("private", "10.77.0.5:0")
	lo, err3 := listen("host loopback", "127.0.0.1:0")
	meta, err4 := listen("metadata", "169.254.169.254:0")
	other, err5 := listen("host's address", "192.0.2.9:0")
	for _, err := range []error{err1, err2, err3, err4, err5} {
		if err != nil {
			return fail("listen: %v", err)
		}
	}
	_, loPort, _ := net.SplitHostPort(lo)
	probes := []netProbe{
		{"public", pub}, {"private", priv}, {"host loopback", lo}, {"metadata", meta}, {"host's address", other},
		// Without --no-map-gw, pasta would turn the gateway into the
		// host's loopback, where the service listens.
		{"gateway", net.JoinHostPort("198.51.100.254", loPort)},
	}

	// The container: nested user and net namespaces, waiting for its
	// rules on stdin.
	exe, _ := os.Executable()
	ctr := exec.Command(exe)
	ctr.Env = []string{helperEnv + "=netinside"}
	ctr.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}},
		Credential:  &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true},
		Pdeathsig:   syscall.SIGKILL,
	}
	in, _ := ctr.StdinPipe()
	outp, _ := ctr.StdoutPipe()
	ctr.Stderr = os.Stderr
	if err := ctr.Start(); err != nil {
		return fail("start container: %v", err)
	}
	defer func() { _ = ctr.Process.Kill(); _ = ctr.Wait() }()

	h, err := StartNetHelper(NetHelperOptions{Kind: w.Kind, Path: w.Path, Pid: ctr.Process.Pid})
	if err != nil {
		return fail("%v", err)
	}
	defer h.Close()
	rules := Net{Mode: NetOutbound, Allow: w.Allow}.Rules(h.Allow(), []netip.Prefix{netip.MustParsePrefix("192.0.2.9/32")})
	b, _ := json.Marshal(netInside{Rules: rules, Probes: probes})
	if _, err := in.Write(append(b, '\n')); err != nil {
		return fail("release container: %v", err)
	}
	res, err := io.ReadAll(outp)
	if err != nil {
		return fail("container: %v", err)
	}
	if err := h.Close(); err != nil {
		return fail("close helper: %v", err)
	}
	_, _ = os.Stdout.Write(res)
	return 0
}

// helperNetInside is the container: it installs its rules as init would,
// then tries each probe.
func helperNetInside() int {
	line, err := bufio.NewReader(os.Stdin).ReadBytes('\n')
	if err != nil {
		return 1
	}
	var arg netInside
	if err := json.Unmarshal(line, &arg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := initproc.LoopbackUp(); err != nil {
		fmt.Fprintln(os.Stderr, "lo up:", err)
		return 1
	}
	if err := initproc.InstallNetRules(arg.Rules.wire()); err != nil {
		fmt.Fprintln(os.Stderr, "install rules:", err)
		return 1
	}
	res := map[string]string{}
	for _, p := range arg.Probes {
		c, err := net.DialTimeout("tcp", p.Addr, 5*time.Second)
		if err != nil {
			res[p.Name] = err.Error()
			continue
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, err := bufio.NewReader(c).ReadString('\n')
		_ = c.Close()
		if err != nil && b == "" {
			res[p.Name] = "connected, then " + err.Error()
			continue
		}
		res[p.Name] = strings.TrimSpace(b)
	}
	b, _ := json.Marshal(res)
	_, _ = os.Stdout.Write(b)
	return 0
}
