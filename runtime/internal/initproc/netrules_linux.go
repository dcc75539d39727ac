package initproc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"syscall"

	"golang.org/x/sys/unix"
)

// NetRules are the outbound network's routing rules as init installs them:
// for each Allow prefix a rule that looks up the main table, then for
// each Block prefix one that answers ENETUNREACH. They are the runtime's
// NetRules made plain, since net/netip would put this package late (see
// the package's comment).
type NetRules struct {
	Allow []Prefix `json:"allow,omitempty"`
	Block []Prefix `json:"block,omitempty"`
}

// Prefix is an address prefix: Addr (4 or 16 bytes) masked to its first
// Bits bits, and Text, how it is written, for errors.
type Prefix struct {
	Text string `json:"text"`
	Addr []byte `json:"addr"`
	Bits int    `json:"bits"`
}

// InstallNetRules installs r in the current net namespace: for each Allow
// prefix a rule that looks up the main table, then for each Block prefix
// one that answers ENETUNREACH. Init calls it in the container's net
// namespace while it holds CAP_NET_ADMIN there, before the program starts.
func InstallNetRules(r NetRules) error {
	if len(r.Allow) == 0 && len(r.Block) == 0 {
		return nil
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	seq := uint32(0)
	add := func(p Prefix, prio uint32, action uint8) error {
		seq++
		msg := ruleMessage(p, prio, action, seq)
		if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return err
		}
		return netlinkAck(fd, seq)
	}
	for i, p := range r.Allow {
		if err := add(p, ruleAllowPrio+uint32(i), unix.FR_ACT_TO_TBL); err != nil {
			return fmt.Errorf("rule allowing %s: %w", p.Text, err)
		}
	}
	for i, p := range r.Block {
		if err := add(p, ruleBlockPrio+uint32(i), unix.FR_ACT_UNREACHABLE); err != nil {
			return fmt.Errorf("rule blocking %s: %w", p.Text, err)
		}
	}
	return nil
}

// ruleMessage is an RTM_NEWRULE request: struct fib_rule_hdr, then
// FRA_DST, FRA_PRIORITY and, to look up a table, FRA_TABLE.
func ruleMessage(p Prefix, prio uint32, action uint8, seq uint32) []byte {
	family := uint8(unix.AF_INET6)
	if len(p.Addr) == 4 {
		family = unix.AF_INET
	}
	var body bytes.Buffer
	table := uint8(0)
	if action == unix.FR_ACT_TO_TBL {
		table = unix.RT_TABLE_MAIN
	}
	// family, dst_len, src_len, tos, table, res1, res2, action, flags(u32)
	body.Write([]byte{family, uint8(p.Bits), 0, 0, table, 0, 0, action, 0, 0, 0, 0})
	attr := func(typ uint16, data []byte) {
		var h [4]byte
		binary.NativeEndian.PutUint16(h[0:], uint16(4+len(data)))
		binary.NativeEndian.PutUint16(h[2:], typ)
		body.Write(h[:])
		body.Write(data)
		for body.Len()%4 != 0 {
			body.WriteByte(0)
		}
	}
	if p.Bits > 0 {
		attr(unix.FRA_DST, p.Addr)
	}
	var u32 [4]byte
	binary.NativeEndian.PutUint32(u32[:], prio)
	attr(unix.FRA_PRIORITY, u32[:])
	if action == unix.FR_ACT_TO_TBL {
		binary.NativeEndian.PutUint32(u32[:], unix.RT_TABLE_MAIN)
		attr(unix.FRA_TABLE, u32[:])
	}
	msg := make([]byte, unix.SizeofNlMsghdr, unix.SizeofNlMsghdr+body.Len())
	binary.NativeEndian.PutUint32(msg[0:], uint32(unix.SizeofNlMsghdr+body.Len()))
	binary.NativeEndian.PutUint16(msg[4:], unix.RTM_NEWRULE)
	binary.NativeEndian.PutUint16(msg[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK|unix.NLM_F_CREATE|unix.NLM_F_EXCL)
	binary.NativeEndian.PutUint32(msg[8:], seq)
	return append(msg, body.Bytes()...)
}

// netlinkAck reads the kernel's answer to request seq: an NLMSG_ERROR
// with error 0, or the error.
func netlinkAck(fd int, seq uint32) error {
	buf := make([]byte, 8192)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if m.Header.Seq != seq || m.Header.Type != unix.NLMSG_ERROR {
				continue
			}
			if len(m.Data) < 4 {
				return io.ErrUnexpectedEOF
			}
			if e := int32(binary.NativeEndian.Uint32(m.Data)); e != 0 {
				return syscall.Errno(-e)
			}
			return nil
		}
	}
}

// Priorities of the rules: after the local table (0), so the container's
// own addresses stay its own, and before the main table (32766).
const (
	ruleAllowPrio = 1000
	ruleBlockPrio = 2000
)
