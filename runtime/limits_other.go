//go:build !linux

package runtime

import (
	"errors"
	"net/netip"
	"syscall"
	"time"
)

// Limits, cgroups, subordinate ids and outbound network need Linux: on
// other systems these say so (ErrUnsupported) and the server, which cannot
// start containers there anyway, says why.

// ErrNoCgroup wraps why sessions cannot have cgroups here.
var ErrNoCgroup = errors.New("no cgroup for sessions")

// ErrNoSubIDs wraps why the subordinate-id mode does not apply.
var ErrNoSubIDs = errors.New("no subordinate ids")

// Cgroups is the parent cgroup of all sessions; none on this system.
type Cgroups struct{}

// CgroupOptions tune NewCgroups.
type CgroupOptions struct {
	Version       int
	Name          string
	NoControllers bool
	PidNamespaces bool
}

// NewCgroups fails: cgroups need Linux.
func NewCgroups(CgroupOptions) (*Cgroups, error) {
	return nil, errors.Join(ErrNoCgroup, ErrUnsupported)
}

func (m *Cgroups) Version() int                                      { return 0 }
func (m *Cgroups) Controllers() []string                             { return nil }
func (m *Cgroups) Dir() string                                       { return "" }
func (m *Cgroups) Close() error                                      { return nil }
func (m *Cgroups) New(string, Limits, func(string)) (*Cgroup, error) { return nil, ErrUnsupported }

// Cgroup is one session's cgroup; none on this system.
type Cgroup struct{}

func (c *Cgroup) ID() string                                  { return "" }
func (c *Cgroup) Dir() string                                 { return "" }
func (c *Cgroup) CloneInto(*syscall.SysProcAttr) (int, error) { return -1, ErrUnsupported }
func (c *Cgroup) Enter(int) error                             { return ErrUnsupported }
func (c *Cgroup) Reason() string                              { return "" }
func (c *Cgroup) Stats() (Stats, error)                       { return Stats{}, ErrUnsupported }
func (c *Cgroup) Kill() error                                 { return ErrUnsupported }
func (c *Cgroup) Remove() error                               { return nil }

// RlimitsFor is empty on this system.
func RlimitsFor(Limits, bool) []Rlimit { return nil }

// CheckRlimits fails: limits need Linux.
func CheckRlimits(Limits) error { return ErrUnsupported }

// SharedPoolNotes has nothing to say: limits need Linux.
func (h *Host) SharedPoolNotes(int, Limits) []string { return nil }

// CheckNproc fails: limits need Linux.
func CheckNproc(int, Limits) error { return ErrUnsupported }

// LimitsModeLine says that nothing is enforced on this system.
func LimitsModeLine(*Cgroups, error) string { return "limits: none (containers need Linux)" }

// ProcStats fails: it needs Linux's /proc.
func ProcStats(int) (Stats, error) { return Stats{}, ErrUnsupported }

// SubIDs is the server user's subordinate ids; none on this system.
type SubIDs struct {
	User             string
	UID, GID         int
	UIDBase, GIDBase int
}

// LookupSubIDs fails: subordinate ids need Linux.
func LookupSubIDs() (*SubIDs, error) { return nil, errors.Join(ErrNoSubIDs, ErrUnsupported) }

func (s *SubIDs) String() string                     { return "" }
func (s *SubIDs) Prepare(*syscall.SysProcAttr) error { return ErrUnsupported }
func (s *SubIDs) Map(int) error                      { return ErrUnsupported }
func (s *SubIDs) MapForUnpack(int) error             { return ErrUnsupported }

// NetHelper is a session's network helper; none on this system.
type NetHelper struct{ Kind string }

// NetHelperOptions say which helper to start for which container.
type NetHelperOptions struct {
	Kind, Path string
	Pid        int
	Cgroup     *Cgroup
	Timeout    time.Duration
}

// FindNetHelper fails: outbound network needs Linux.
func FindNetHelper() (kind, path string, err error) { return "", "", ErrUnsupported }

// StartNetHelper fails: outbound network needs Linux.
func StartNetHelper(NetHelperOptions) (*NetHelper, error) { return nil, ErrUnsupported }

func (h *NetHelper) Pid() int              { return 0 }
func (h *NetHelper) ResolvConf() string    { return "" }
func (h *NetHelper) Allow() []netip.Prefix { return nil }
func (h *NetHelper) Close() error          { return nil }

// HostAddrs is empty on this system.
func HostAddrs() []netip.Prefix { return nil }

// Host is what a server prepares once for its containers; none on this
// system.
type Host struct{}

// NewHost fails: containers need Linux.
func NewHost(HostOptions) (*Host, error) { return nil, ErrUnsupported }

func (h *Host) StateDir() string    { return "" }
func (h *Host) Cgroups() *Cgroups   { return nil }
func (h *Host) SubIDs() *SubIDs     { return nil }
func (h *Host) ModeLines() []string { return nil }
func (h *Host) Close() error        { return nil }

// OwnTree fails: subordinate ids need Linux.
func (s *SubIDs) OwnTree(string, []TreeOwner) error { return ErrUnsupported }

// RemoveTree fails: subordinate ids need Linux.
func (s *SubIDs) RemoveTree(string) error { return ErrUnsupported }
