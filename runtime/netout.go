package runtime

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// NetMode is what network a session has.
type NetMode string

const (
	// NetNone is the default: loopback only.
	NetNone NetMode = "none"
	// NetOutbound gives the session outbound access to the internet
	// through a user-mode network helper (pasta, else slirp4netns) that
	// makes its connections from the host; the host's loopback and every
	// private, link-local and other non-public range stay unreachable,
	// except those in Net.Allow.
	NetOutbound NetMode = "outbound"
)

// Net is a session's network.
type Net struct {
	Mode NetMode // "" is NetNone
	// Allow lists ranges of BlockedRanges (or the host's own addresses)
	// that the session may reach all the same: a company proxy at
	// 10.1.2.3/32, say.
	Allow []netip.Prefix
}

// ParseNetMode parses --net.
func ParseNetMode(s string) (NetMode, error) {
	switch m := NetMode(strings.TrimSpace(s)); m {
	case "", NetNone:
		return NetNone, nil
	case NetOutbound:
		return m, nil
	}
	return "", fmt.Errorf("--net %q: want none or outbound", s)
}

// ParseAllow parses a --net-allow value: a CIDR ("10.1.0.0/16") or one
// address ("10.1.2.3", meaning /32 or /128).
func ParseAllow(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if p, err := netip.ParsePrefix(s); err == nil {
		if p.Masked() != p {
			return netip.Prefix{}, fmt.Errorf("--net-allow %q: host bits set; did you mean %s?", s, p.Masked())
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("--net-allow %q: want an address or a CIDR such as 10.1.0.0/16", s)
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

// Validate checks the mode and that Allow is used only with outbound.
func (n Net) Validate() error {
	if _, err := ParseNetMode(string(n.Mode)); err != nil {
		return err
	}
	if len(n.Allow) > 0 && n.Mode != NetOutbound {
		return errors.New("--net-allow needs --net outbound")
	}
	for _, p := range n.Allow {
		if !p.IsValid() {
			return fmt.Errorf("--net-allow: invalid prefix %v", p)
		}
	}
	return nil
}

// BlockedRanges are the destinations a session with outbound network cannot
// reach (unless allowed): the host's loopback, private, shared, link-local
// (cloud metadata at 169.254.169.254), multicast and reserved ranges, IPv4
// and IPv6. The host's own addresses are added to them at start
// (HostAddrs).
var BlockedRanges = mustPrefixes(
	"0.0.0.0/8",      // "this network"
	"10.0.0.0/8",     // private
	"100.64.0.0/10",  // shared (carrier-grade NAT, tailnets)
	"127.0.0.0/8",    // loopback
	"169.254.0.0/16", // link-local, cloud metadata
	"172.16.0.0/12",  // private
	"192.0.0.0/24",   // IETF protocol assignments
	"192.168.0.0/16", // private
	"198.18.0.0/15",  // benchmarking
	"224.0.0.0/4",    // multicast
	"240.0.0.0/4",    // reserved, broadcast
	"::/127",         // unspecified, loopback
	"::ffff:0:0/96",  // IPv4-mapped
	"64:ff9b:1::/48", // local-use NAT64
	"100::/64",       // discard-only
	"fc00::/7",       // unique local
	"fe80::/10",      // link-local
	"fec0::/10",      // site-local (deprecated)
	"ff00::/8",       // multicast
	"2001:db8::/32",  // documentation
	"2001:10::/28",   // ORCHID
	"2002:a00::/24",  // 6to4 of 10/8
	"2002:7f00::/24", // 6to4 of 127/8
	"2002:a9fe::/32", // 6to4 of 169.254/16
	"2002:ac10::/28", // 6to4 of 172.16/12
	"2002:c0a8::/32", // 6to4 of 192.168/16
)

func mustPrefixes(ss ...string) []netip.Prefix {
	ps := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		ps[i] = netip.MustParsePrefix(s)
	}
	return ps
}

// NetRules is what init installs in the container's net namespace before
// the program runs: policy-routing rules that answer "network unreachable"
// for Block, checked before the routes, except for Allow, which go to the
// routes as usual. Rules, not routes, because a route for the host's own
// subnet (pasta copies it: 192.168.1.0/24 on a laptop) is more specific
// than any blocking route and would win over it; a rule comes first
// whatever the routes say. The program cannot remove them: it has no
// CAP_NET_ADMIN.
type NetRules struct {
	Allow []netip.Prefix `json:"allow,omitempty"`
	Block []netip.Prefix `json:"block,omitempty"`
}

// Rules is what the session's init must install, given the extra addresses
// the helper itself needs reachable (its DNS forwarder) and the host's own
// addresses to block.
func (n Net) Rules(helperAllow, hostAddrs []netip.Prefix) NetRules {
	if n.Mode != NetOutbound {
		return NetRules{}
	}
	r := NetRules{Block: append(append([]netip.Prefix{}, BlockedRanges...), hostAddrs...)}
	r.Allow = append(append(r.Allow, helperAllow...), n.Allow...)
	return r
}
