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
)

// TestNetOutboundStart starts real containers with --net outbound, through
// Start and a Host made for it, in a small world of network namespaces the
// test makes, so no packet leaves this machine: a "host" (the server's
// net namespace: its loopback with a service, an address of its own with
// another) and a "peer" behind it on a veth (the internet: a public
// address, a private one, the cloud metadata address). From the
// container, the public peer answers; the private and link-local ranges,
// the host's own address and its loopback do not, unless allowed.
func TestNetOutboundStart(t *testing.T) {
	testenv.NeedCommand(t, "pasta")
	testenv.NeedCommand(t, "ip")
	if err := checkTun(); err != nil {
		testenv.Skipf(t, "%v", err)
	}
	t.Run("default", func(t *testing.T) {
		got := runNetServer(t, netServerArg{StateDir: testStateDir(t)})
		checkProbes(t, got, map[string]string{
			"public":          "hello public",
			"private":         "Network is unreachable",
			"metadata":        "Network is unreachable",
			"host loopback":   "Connection refused", // the container's own loopback: nothing there
			"host's address":  "not reached",
			"resolv.conf":     "nameserver " + pastaDNS,
			"helper counted":  "true",
			"helper as owner": "true",
		})
	})
	t.Run("allowed", func(t *testing.T) {
		got := runNetServer(t, netServerArg{StateDir: testStateDir(t), Allow: []netip.Prefix{netip.MustParsePrefix("10.77.0.5/32")}})
		checkProbes(t, got, map[string]string{"public": "hello public", "private": "hello private", "metadata": "Network is unreachable"})
	})
}

type netServerArg struct {
	StateDir string
	Allow    []netip.Prefix
}

// runNetServer runs the "host" of the world: the test binary in a net
// namespace of its own (and, for an ordinary user, a user namespace), as
// a server that starts one container probing the world.
func runNetServer(t *testing.T, arg netServerArg) map[string]string {
	t.Helper()
	cmd := helperCmd(t, "netserver", arg)
	cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWNET
	if os.Getuid() != 0 {
		inOwnUserNS(cmd)
	}
	return helperResult(t, cmd, "net server")
}

func helperNetServer() int {
	var arg netServerArg
	helperArg(&arg)
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
		return 1
	}
	ip := func(args ...string) error {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	// The peer: a net namespace of its own behind a veth.
	exe, _ := os.Executable()
	peer := exec.Command(exe)
	peer.Env = []string{helperEnv + "=netpeer", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	peer.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	peerIn, _ := peer.StdinPipe()
	peerOut, _ := peer.StdoutPipe()
	peer.Stderr = os.Stderr
	if err := peer.Start(); err != nil {
		return fail("start the peer: %v", err)
	}
	defer func() { _ = peerIn.Close(); _ = peer.Wait() }()
	for _, c := range [][]string{
		{"link", "set", "lo", "up"},
		{"link", "add", "eth0", "type", "veth", "peer", "name", "eth1"},
		{"link", "set", "eth1", "netns", fmt.Sprint(peer.Process.Pid)},
		{"addr", "add", "203.0.113.1/24", "dev", "eth0"},
		{"link", "set", "eth0", "up"},
		{"route", "add", "default", "via", "203.0.113.5"},
	} {
		if err := ip(c...); err != nil {
			return fail("%v", err)
		}
	}
	if _, err := io.WriteString(peerIn, "go\n"); err != nil {
		return fail("peer: %v", err)
	}
	var ports [3]int
	line, err := bufio.NewReader(peerOut).ReadString('\n')
	if _, serr := fmt.Sscanf(line, "ports %d %d %d", &ports[0], &ports[1], &ports[2]); err != nil || serr != nil {
		return fail("peer said %q: %v %v", line, err, serr)
	}
	lo, err1 := listenHello("host loopback", "127.0.0.1:0")
	own, err2 := listenHello("host's address", "203.0.113.1:0")
	if err1 != nil || err2 != nil {
		return fail("listen: %v %v", err1, err2)
	}
	probes := []netProbe{
		{"public", fmt.Sprintf("203.0.113.5:%d", ports[0])},
		{"private", fmt.Sprintf("10.77.0.5:%d", ports[1])},
		{"metadata", fmt.Sprintf("169.254.169.254:%d", ports[2])},
		{"host loopback", lo},
		{"host's address", own},
	}

	h, err := NewHost(HostOptions{StateDir: arg.StateDir, Net: NetOutbound}) // as root with cgroups: playground-PID of this process
	if err != nil {
		return fail("NewHost: %v", err)
	}
	defer h.Close()
	var script strings.Builder
	script.WriteString("echo \"resolv.conf=$(cat /etc/resolv.conf)\"\n")
	for _, p := range probes {
		host, port, _ := net.SplitHostPort(p.Addr)
		fmt.Fprintf(&script, "echo \"%s=$(timeout 5 bash -c 'exec 3<>/dev/tcp/%s/%s && head -1 <&3' 2>&1 | tail -1)\"\n", p.Name, host, port)
	}
	script.WriteString("echo probed; read x\n")
	c, err := Start(Spec{Host: h, Net: Net{Mode: NetOutbound, Allow: arg.Allow}, Args: []string{"/bin/bash", "-c", script.String()}})
	if err != nil {
		return fail("Start: %v", err)
	}
	defer c.Close()
	res := map[string]string{}
	var all strings.Builder
	buf := make([]byte, 4096)
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(all.String(), "probed") && time.Now().Before(deadline) {
		n, err := c.Read(buf)
		all.Write(buf[:n])
		if err != nil {
			break
		}
	}
	st, err := c.Stats()
	res["helper counted"] = fmt.Sprint(err == nil && st.Processes >= 3) // init, bash and the helper
	// pasta runs as the owner of the session's user namespace: as root the
	// session's own host uid (spawnOwner), not root.
	helperUID, err1 := procUID(c.net.cmd.Process.Pid)
	owner, err2 := userNSOwnerUID(c.Pid())
	res["helper as owner"] = fmt.Sprint(err1 == nil && err2 == nil && helperUID == owner && (h.pool == nil || owner != 0))
	for _, l := range strings.Split(strings.ReplaceAll(all.String(), "\r\n", "\n"), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			res[k] = strings.TrimSpace(v)
		}
	}
	b, _ := json.Marshal(res)
	_, _ = os.Stdout.Write(b)
	return 0
}

// helperNetPeer is the peer: the addresses of the internet the container
// reaches through the host, each with a service saying its name.
func helperNetPeer() int {
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		return 1
	}
	for _, c := range [][]string{
		{"link", "set", "lo", "up"},
		{"addr", "add", "203.0.113.5/24", "dev", "eth1"},
		{"addr", "add", "10.77.0.5/32", "dev", "eth1"},
		{"addr", "add", "169.254.169.254/32", "dev", "eth1"},
		{"link", "set", "eth1", "up"},
	} {
		if out, err := exec.Command("ip", c...).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "ip %s: %v: %s\n", strings.Join(c, " "), err, out)
			return 1
		}
	}
	var ports []int
	for _, a := range []struct{ name, addr string }{{"public", "203.0.113.5:0"}, {"private", "10.77.0.5:0"}, {"metadata", "169.254.169.254:0"}} {
		addr, err := listenHello(a.name, a.addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		ap, _ := netip.ParseAddrPort(addr)
		ports = append(ports, int(ap.Port()))
	}
	fmt.Printf("ports %d %d %d\n", ports[0], ports[1], ports[2])
	_, _ = io.Copy(io.Discard, os.Stdin) // serve until the host ends
	return 0
}

// listenHello answers every connection on addr with "hello NAME".
func listenHello(name, addr string) (string, error) {
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
