package runtime

// IDRange reports whether containers on rootfs get a range of ids, so that
// users other than root exist inside them: as root, every container gets
// one from the pool; as an ordinary user, the subordinate ids when
// /etc/subuid grants them and rootfs belongs to their root (HostRootfs
// always does, a tree unpacked through SubIDs.OwnTree does). Otherwise the
// container maps one id, container root = the server's user, and a
// program cannot run as any other user (Spec.User fails).
func (h *Host) IDRange(rootfs string) bool {
	return h.pool != nil || (h.subIDs != nil && h.fitsSubIDs(rootfs))
}
