package runtime

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/guntainer/playground/runtime/internal/initproc"
	"golang.org/x/sys/unix"
)

// Outbound network without root: a user-mode helper, pasta (Debian passt)
// or else slirp4netns, runs as a child of the server for each session. It
// joins the container's user and net namespaces, makes a tap device there
// with an address, a gateway and a DNS forwarder, and turns the container's
// connections into ordinary sockets of the server's user on the host.
//
// What keeps the host's own services out of reach:
//   - pasta: --no-map-gw (the gateway address is not the host's loopback)
//     and -T none -U none (no port of the host's loopback is forwarded into
//     the container), -t none -u none (no port of the host is bound for the
//     container); slirp4netns: --disable-host-loopback;
//   - NetRules, installed by init in the container's net namespace before
//     the program starts: "unreachable" for the host's loopback, private,
//     link-local and reserved ranges and the host's own addresses, except
//     --net-allow ranges and the helper's DNS forwarder.
//
// The helper runs in the foreground (pasta -f; slirp4netns always does),
// dies with the server (PR_SET_PDEATHSIG), and Close kills it at teardown:
// it holds the container's net namespace, so it would never end by itself.

// pastaDNS is where pasta forwards DNS to the host's resolver (as podman
// does): the container's resolv.conf points there, whatever the host's
// resolver is (127.0.0.53 included, which the container cannot reach).
const pastaDNS = "169.254.1.1"

// slirpDNS is slirp4netns's built-in forwarder.
const slirpDNS = "10.0.2.3"

// NetHelper is a session's running network helper. Close ends it; it is
// idempotent and safe from any goroutine.
type NetHelper struct {
	Kind   string // "pasta" or "slirp4netns"
	cmd    *exec.Cmd
	stderr *os.File // a memfd: what the helper said, without a goroutine
	pidfd  int

	closeOnce sync.Once
	closeErr  error
}

// FindNetHelper finds the helper the server will use: pasta, else
// slirp4netns. The server calls it at start when --net outbound is asked
// for, and fails loudly when there is none.
func FindNetHelper() (kind, path string, err error) {
	if err := checkTun(); err != nil {
		return "", "", err
	}
	for _, k := range []string{"pasta", "slirp4netns"} {
		if p, err := exec.LookPath(k); err == nil {
			return k, p, nil
		}
	}
	return "", "", errors.New("--net outbound needs pasta (Debian: apt-get install passt) or slirp4netns")
}

// checkTun checks that this user can open /dev/net/tun, which both
// helpers need: Debian's udev makes it 0666, a machine without udev may
// leave it 0600.
func checkTun() error {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("--net outbound needs /dev/net/tun, which uid %d cannot open: %w (it is usually mode 0666: chmod 0666 /dev/net/tun)", os.Getuid(), err)
	}
	_ = unix.Close(fd) // only a check
	return nil
}

// NetHelperOptions say which helper to start for which container.
type NetHelperOptions struct {
	Kind, Path string // from FindNetHelper
	// Pid is the container init's host pid: the helper joins its user and
	// net namespaces.
	Pid int
	// Cgroup, when not nil, is the session's: the helper's CPU and memory
	// are then the session's, and so is its end (Cgroup.Kill).
	Cgroup *Cgroup
	// Timeout for the helper to have configured the container's network;
	// 10 s when zero.
	Timeout time.Duration
	// Owner, for a server as root, is the uid and gid that own the
	// container's user namespace (spawnOwner): pasta, which drops its
	// capabilities and would become nobody, runs as them, and so may
	// join the namespace as its owner. 0: root's own.
	OwnerUID, OwnerGID int
}

// StartNetHelper starts the helper and returns once the container's
// network is configured (pasta wrote its pid file, slirp4netns its ready
// fd). The parent calls it after starting the container and before
// releasing it; init then installs the rules (installNetRules).
func StartNetHelper(o NetHelperOptions) (_ *NetHelper, err error) {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	h := &NetHelper{Kind: o.Kind, pidfd: -1}
	mfd, err := unix.MemfdCreate(o.Kind+"-stderr", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("%s: memfd: %w", o.Kind, err)
	}
	h.stderr = os.NewFile(uintptr(mfd), o.Kind+"-stderr")
	defer func() {
		if err != nil {
			_ = h.Close() // kills it if it started
		}
	}()

	var readyFd int // read end: pasta's pid file fifo, slirp4netns's ready pipe
	var args []string
	var extra []*os.File
	pid := strconv.Itoa(o.Pid)
	switch o.Kind {
	case "pasta":
		dir, err := os.MkdirTemp("", "playground-net-")
		if err != nil {
			return nil, fmt.Errorf("pasta: %w", err)
		}
		defer os.RemoveAll(dir)
		fifo := filepath.Join(dir, "ready")
		if err := unix.Mkfifo(fifo, 0o600); err != nil {
			return nil, fmt.Errorf("pasta: %w", err)
		}
		if os.Geteuid() == 0 && o.OwnerUID != 0 {
			// pasta opens its pid file as the uid it runs as (below).
			for _, p := range []string{dir, fifo} {
				if err := os.Chown(p, o.OwnerUID, o.OwnerGID); err != nil {
					return nil, fmt.Errorf("pasta: %w", err)
				}
			}
		}
		// Read-write: a reader that also holds a writer never sees EOF
		// before pasta has written its pid.
		if readyFd, err = unix.Open(fifo, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0); err != nil {
			return nil, fmt.Errorf("pasta: %w", err)
		}
		args = []string{"--foreground", "--quiet", "--config-net", "--no-map-gw",
			"-t", "none", "-u", "none", "-T", "none", "-U", "none",
			"--dns-forward", pastaDNS, "--pid", fifo}
		if os.Geteuid() == 0 {
			// pasta drops to nobody as root, and nobody cannot join a
			// user namespace that another uid owns: it runs as the owner.
			args = append(args, "--runas", strconv.Itoa(o.OwnerUID)+":"+strconv.Itoa(o.OwnerGID))
		}
		args = append(args, pid)
	case "slirp4netns":
		fds := make([]int, 2)
		if err := unix.Pipe2(fds, unix.O_CLOEXEC); err != nil {
			return nil, fmt.Errorf("slirp4netns: %w", err)
		}
		readyFd = fds[0]
		w := os.NewFile(uintptr(fds[1]), "ready")
		defer w.Close() // the child has its own copy
		extra = append(extra, w)
		args = []string{"--configure", "--mtu=65520", "--disable-host-loopback", "--ready-fd=3",
			"--userns-path=/proc/" + pid + "/ns/user", pid, "tap0"}
	default:
		return nil, fmt.Errorf("network helper %q: want pasta or slirp4netns", o.Kind)
	}
	defer unix.Close(readyFd)

	h.cmd = exec.Command(o.Path, args...)
	h.cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	h.cmd.Stderr = h.stderr
	h.cmd.ExtraFiles = extra
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, PidFD: &h.pidfd}
	if o.Cgroup != nil {
		fd, err := o.Cgroup.CloneInto(h.cmd.SysProcAttr)
		if err != nil {
			return nil, err
		}
		if fd >= 0 {
			defer unix.Close(fd)
		}
	}
	if err := h.cmd.Start(); err != nil {
		h.cmd = nil
		return nil, fmt.Errorf("start %s: %w", o.Kind, err)
	}
	if o.Cgroup != nil && o.Cgroup.m.version == 1 {
		if err := o.Cgroup.Enter(h.cmd.Process.Pid); err != nil {
			return nil, err
		}
	}
	if err := h.waitReady(readyFd, o.Timeout); err != nil {
		return nil, err
	}
	return h, nil
}

// waitReady waits for the helper's ready signal, or its end, or the
// timeout, whichever is first.
func (h *NetHelper) waitReady(readyFd int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("%s: not ready after %v%s", h.Kind, timeout, h.said())
		}
		pfds := []unix.PollFd{{Fd: int32(readyFd), Events: unix.POLLIN}, {Fd: int32(h.pidfd), Events: unix.POLLIN}}
		_, err := unix.Poll(pfds, int(left/time.Millisecond)+1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: poll: %w", h.Kind, err)
		}
		if pfds[0].Revents&unix.POLLIN != 0 {
			var b [64]byte
			n, _ := unix.Read(readyFd, b[:])
			if n > 0 {
				return nil // pasta's pid, or slirp4netns's "1"
			}
		}
		if pfds[1].Revents != 0 {
			err := h.cmd.Wait()
			h.cmd = nil
			return fmt.Errorf("%s ended before the network was up (%v)%s", h.Kind, err, h.said())
		}
	}
}

// said is the helper's stderr, for an error message.
func (h *NetHelper) said() string {
	if h.stderr == nil {
		return ""
	}
	b := make([]byte, 2048)
	n, _ := h.stderr.ReadAt(b, 0)
	var lines []string
	for _, l := range strings.Split(string(b[:n]), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "Failed to send") {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return ""
	}
	return ": " + strings.Join(lines, "; ")
}

// Pid is the helper's pid.
func (h *NetHelper) Pid() int { return h.cmd.Process.Pid }

// ResolvConf is the container's /etc/resolv.conf with this helper: its
// DNS forwarder.
func (h *NetHelper) ResolvConf() string {
	if h.Kind == "slirp4netns" {
		return "nameserver " + slirpDNS + "\n"
	}
	return "nameserver " + pastaDNS + "\n"
}

// Allow is what the rules must let through for the helper itself: its DNS
// forwarder, an address in a blocked range.
func (h *NetHelper) Allow() []netip.Prefix {
	if h.Kind == "slirp4netns" {
		return []netip.Prefix{netip.MustParsePrefix(slirpDNS + "/32")}
	}
	return []netip.Prefix{netip.MustParsePrefix(pastaDNS + "/32")}
}

// Close ends the helper: SIGTERM, a short wait, then SIGKILL, and reaps
// it. Idempotent.
func (h *NetHelper) Close() error {
	h.closeOnce.Do(func() {
		if h.cmd != nil && h.cmd.Process != nil {
			_ = h.cmd.Process.Signal(syscall.SIGTERM) // ended already is fine
			if h.pidfd >= 0 {
				pfd := []unix.PollFd{{Fd: int32(h.pidfd), Events: unix.POLLIN}}
				_, _ = unix.Poll(pfd, 1000) // ends at once on SIGTERM; else the kill below
			}
			_ = h.cmd.Process.Kill() // reaped below either way
			_ = h.cmd.Wait()
		}
		if h.pidfd >= 0 {
			_ = unix.Close(h.pidfd)
			h.pidfd = -1
		}
		if h.stderr != nil {
			_ = h.stderr.Close()
		}
	})
	return h.closeErr
}

// HostAddrs are the host's own addresses, which the container must not
// reach through the helper (a service bound to 0.0.0.0 behind a firewall,
// say): the server computes them once at start and adds them to the
// rules.
func HostAddrs() []netip.Prefix {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Prefix
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		out = append(out, netip.PrefixFrom(ip, ip.BitLen()))
	}
	return out
}

// wire is r as init takes it (initproc.NetRules).
func (r NetRules) wire() initproc.NetRules {
	conv := func(ps []netip.Prefix) []initproc.Prefix {
		var out []initproc.Prefix
		for _, p := range ps {
			p = p.Masked()
			out = append(out, initproc.Prefix{Text: p.String(), Addr: p.Addr().AsSlice(), Bits: p.Bits()})
		}
		return out
	}
	return initproc.NetRules{Allow: conv(r.Allow), Block: conv(r.Block)}
}
