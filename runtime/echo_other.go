//go:build !linux

package runtime

// EchoesInput returns ErrUnsupported: containers need Linux.
func (c *Container) EchoesInput() (bool, error) { return false, ErrUnsupported }

// ReadsCookedInput returns ErrUnsupported: containers need Linux.
func (c *Container) ReadsCookedInput() (bool, error) { return false, ErrUnsupported }
