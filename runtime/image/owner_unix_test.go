//go:build unix

package image

import (
	"io/fs"
	"syscall"
)

// owner is a file's owner and link count as the system keeps them.
func owner(fi fs.FileInfo) (uid, gid, nlink int) {
	st := fi.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid), int(st.Nlink)
}
