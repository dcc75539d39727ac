//go:build !linux

package runtime

// StartPhases is empty on this system.
func (c *Container) StartPhases() []StartPhase { return nil }
