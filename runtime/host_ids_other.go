//go:build !linux

package runtime

// IDRange is false on this system: it runs no containers.
func (h *Host) IDRange(rootfs string) bool { return false }
