package initproc

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The two messages of every start, Config (to init) and Message (from it,
// and "entered" to it), go in a small binary encoding of their own rather
// than JSON. encoding/json's first use in a process builds its reflection
// caches and faults in its code: 0.5 to 0.9 ms in a fresh process for a
// Config of 4.6 KB, against 45 µs for the same decode again (measured
// 2026-12-04 on the 2-vCPU guest of BENCHMARKS.md), and init is always a
// fresh process. The parent and init are one build (the embedded init is
// checked for its build stamp), so the encoding needs no versions: a
// message is binaryTag and the fields in the order the methods below
// write them. Any other message is JSON, which never starts with
// binaryTag. TestBinaryMessagesRoundTrip fills every field, so a field
// added to a type and not here fails it.

const binaryTag = 0

type binaryMessage interface {
	appendBinary(b []byte) []byte
	decodeBinary(r *reader)
}

var errTruncated = errors.New("truncated message")

type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 { return next(r, binary.Uvarint) }
func (r *reader) varint() int64   { return next(r, binary.Varint) }

// next reads one varint of r's with decode (binary.Uvarint or Varint).
func next[T uint64 | int64](r *reader, decode func([]byte) (T, int)) T {
	if r.err != nil {
		return 0
	}
	v, n := decode(r.b)
	if n <= 0 {
		r.err = errTruncated
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) int() int       { return int(r.varint()) }
func (r *reader) bool() bool     { return r.uvarint() != 0 }
func (r *reader) uint16() uint16 { return uint16(r.uvarint()) }

// count is a length that must fit in what is left of the message (each
// element at least a byte), so that a bad one cannot make a large slice.
func (r *reader) count() int {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.err = errTruncated
		return 0
	}
	return int(n)
}

func (r *reader) bytes() []byte {
	n := r.count()
	if r.err != nil || n == 0 {
		return nil
	}
	v := append([]byte(nil), r.b[:n]...)
	r.b = r.b[n:]
	return v
}

func (r *reader) string() string { return string(r.bytes()) }

func (r *reader) strings() []string {
	n := r.count()
	if r.err != nil || n == 0 {
		return nil
	}
	v := make([]string, n)
	for i := range v {
		v[i] = r.string()
	}
	return v
}

func appendInt(b []byte, v int) []byte { return binary.AppendVarint(b, int64(v)) }
func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}
func appendBytes(b, v []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(v))), v...)
}
func appendString(b []byte, v string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(v))), v...)
}
func appendStrings(b []byte, v []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	for _, s := range v {
		b = appendString(b, s)
	}
	return b
}

func (c *Config) appendBinary(b []byte) []byte {
	b = appendString(b, c.Rootfs)
	b = appendString(b, c.Hostname)
	b = appendStrings(b, c.Args)
	b = appendStrings(b, c.Env)
	b = appendString(b, c.Dir)
	b = binary.AppendUvarint(b, uint64(c.Cols))
	b = binary.AppendUvarint(b, uint64(c.Rows))
	b = appendString(b, c.MountPoint)
	b = appendString(b, c.ResolvConf)
	b = appendBool(b, c.IDRange)
	b = appendBool(b, c.MappedLower)
	b = appendBool(b, c.LowerFD)
	b = appendString(b, c.HostLower)
	b = appendBool(b, c.Check)
	b = appendBool(b, c.Stdio)
	b = appendInt(b, c.UID)
	b = appendInt(b, c.GID)
	b = appendBytes(b, c.Seccomp)
	b = binary.AppendVarint(b, c.Disk)
	b = binary.AppendVarint(b, c.DiskInodes)
	b = appendInt(b, c.Ptys)
	b = appendInt(b, c.InotifyInstances)
	b = appendInt(b, c.InotifyWatches)
	b = binary.AppendUvarint(b, uint64(len(c.Sysctls)))
	for _, v := range c.Sysctls {
		b = appendString(b, v.Name)
		b = appendString(b, v.Value)
	}
	b = binary.AppendUvarint(b, uint64(len(c.Rlimits)))
	for _, l := range c.Rlimits {
		b = appendString(b, l.Name)
		b = binary.AppendUvarint(b, l.Cur)
		b = binary.AppendUvarint(b, l.Max)
	}
	b = appendInt(b, c.Nice)
	b = binary.AppendUvarint(b, c.TimerSlack)
	for _, ps := range [][]Prefix{c.NetRules.Allow, c.NetRules.Block} {
		b = binary.AppendUvarint(b, uint64(len(ps)))
		for _, p := range ps {
			b = appendString(b, p.Text)
			b = appendBytes(b, p.Addr)
			b = appendInt(b, p.Bits)
		}
	}
	b = appendBool(b, c.ProgramIsInit)
	b = appendBool(b, c.EnterLater)
	return appendInt(b, c.CgroupTasks)
}

func (c *Config) decodeBinary(r *reader) {
	c.Rootfs = r.string()
	c.Hostname = r.string()
	c.Args = r.strings()
	c.Env = r.strings()
	c.Dir = r.string()
	c.Cols = r.uint16()
	c.Rows = r.uint16()
	c.MountPoint = r.string()
	c.ResolvConf = r.string()
	c.IDRange = r.bool()
	c.MappedLower = r.bool()
	c.LowerFD = r.bool()
	c.HostLower = r.string()
	c.Check = r.bool()
	c.Stdio = r.bool()
	c.UID = r.int()
	c.GID = r.int()
	c.Seccomp = r.bytes()
	c.Disk = r.varint()
	c.DiskInodes = r.varint()
	c.Ptys = r.int()
	c.InotifyInstances = r.int()
	c.InotifyWatches = r.int()
	if n := r.count(); n > 0 {
		c.Sysctls = make([]Sysctl, n)
		for i := range c.Sysctls {
			c.Sysctls[i] = Sysctl{Name: r.string(), Value: r.string()}
		}
	}
	if n := r.count(); n > 0 {
		c.Rlimits = make([]Rlimit, n)
		for i := range c.Rlimits {
			c.Rlimits[i] = Rlimit{Name: r.string(), Cur: r.uvarint(), Max: r.uvarint()}
		}
	}
	c.Nice = r.int()
	c.TimerSlack = r.uvarint()
	for _, ps := range []*[]Prefix{&c.NetRules.Allow, &c.NetRules.Block} {
		if n := r.count(); n > 0 {
			*ps = make([]Prefix, n)
			for i := range *ps {
				(*ps)[i] = Prefix{Text: r.string(), Addr: r.bytes(), Bits: r.int()}
			}
		}
	}
	c.ProgramIsInit = r.bool()
	c.EnterLater = r.bool()
	c.CgroupTasks = r.int()
}

func (m *Message) appendBinary(b []byte) []byte {
	b = appendString(b, m.Kind)
	b = appendString(b, m.Step)
	b = appendString(b, m.Err)
	b = appendString(b, m.Cause)
	b = appendInt(b, m.Code)
	b = appendInt(b, m.Signal)
	b = binary.AppendUvarint(b, uint64(len(m.Phases)))
	for _, p := range m.Phases {
		b = appendString(b, p.Name)
		b = binary.AppendVarint(b, p.At)
	}
	return b
}

func (m *Message) decodeBinary(r *reader) {
	m.Kind = r.string()
	m.Step = r.string()
	m.Err = r.string()
	m.Cause = r.string()
	m.Code = r.int()
	m.Signal = r.int()
	if n := r.count(); n > 0 {
		m.Phases = make([]Phase, n)
		for i := range m.Phases {
			m.Phases[i] = Phase{Name: r.string(), At: r.varint()}
		}
	}
}

// IsMessage reports whether b, not empty, is a message: JSON or the
// binary encoding. Anything else on the sync socket is what init wrote to
// its stderr as it crashed (Go's panic or fatal error text).
func IsMessage(b []byte) bool { return b[0] == '{' || b[0] == binaryTag }

// encodeBinary is v in the binary encoding, if it has one.
func encodeBinary(v any) ([]byte, bool) {
	switch m := v.(type) {
	case Config:
		return m.appendBinary([]byte{binaryTag}), true
	case *Config:
		return m.appendBinary([]byte{binaryTag}), true
	case Message:
		return m.appendBinary([]byte{binaryTag}), true
	case *Message:
		return m.appendBinary([]byte{binaryTag}), true
	}
	return nil, false
}

// decodeBinary decodes b, a message in the binary encoding without its
// tag, into v.
func decodeBinary(b []byte, v any) error {
	m, ok := v.(binaryMessage)
	if !ok {
		return fmt.Errorf("a binary message for a %T", v)
	}
	r := &reader{b: b}
	m.decodeBinary(r)
	if r.err == nil && len(r.b) > 0 {
		r.err = fmt.Errorf("%d bytes after the message", len(r.b))
	}
	return r.err
}
