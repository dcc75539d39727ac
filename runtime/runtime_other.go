//go:build !linux

package runtime

import (
	"io"
	"syscall"
)

// Container is a running container; on this system none can be started.
type Container struct{}

// Start returns ErrUnsupported: containers need Linux.
func Start(spec Spec) (*Container, error) { return nil, ErrUnsupported }

// Check returns ErrUnsupported: containers need Linux.
func Check(spec Spec) error { return ErrUnsupported }

// MaybeInit returns at once: there is no container init on this system.
func MaybeInit() {}

// DefaultStateDir is empty on this system.
func DefaultStateDir() string { return "" }

// CleanStateDir has nothing to clean on this system.
func CleanStateDir(string) (int, error) { return 0, nil }

func (c *Container) ID() string                            { return "" }
func (c *Container) Pid() int                              { return 0 }
func (c *Container) Read([]byte) (int, error)              { return 0, io.EOF }
func (c *Container) Write([]byte) (int, error)             { return 0, ErrUnsupported }
func (c *Container) Resize(cols, rows uint16) error        { return ErrUnsupported }
func (c *Container) Signal(sig syscall.Signal) error       { return ErrUnsupported }
func (c *Container) SignalForeground(syscall.Signal) error { return ErrUnsupported }
func (c *Container) SignalKey(byte) (syscall.Signal, bool, error) {
	return 0, false, ErrUnsupported
}
func (c *Container) Wait() (ExitStatus, error) { return ExitStatus{}, ErrUnsupported }
func (c *Container) Done() <-chan struct{}     { ch := make(chan struct{}); close(ch); return ch }
func (c *Container) Close() error              { return nil }
func (c *Container) Stats() (Stats, error)     { return Stats{}, ErrUnsupported }

// EmbeddedInit reports false: containers need Linux.
func EmbeddedInit() bool { return false }
