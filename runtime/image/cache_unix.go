//go:build unix

package image

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

var errNotEmpty = syscall.ENOTEMPTY

// lockFile takes a shared (or exclusive) flock on p, waiting for it as
// long as ctx lets; onWait, if set, is called once when it has to wait.
// Closing the file drops the lock.
func lockFile(ctx context.Context, p string, exclusive bool, onWait func()) (*os.File, error) {
	for waited := false; ; waited = true {
		f, ok, err := tryLock(p, exclusive)
		if err != nil || ok {
			return f, err
		}
		if !waited && onWait != nil {
			onWait()
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// tryLock takes the flock on p if it is free.
func tryLock(p string, exclusive bool) (*os.File, bool, error) {
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, false, err
	}
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	if err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB); err != nil {
		_ = f.Close() // not locked
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, false, nil
		}
		return nil, false, err
	}
	return f, true, nil
}

func processAlive(pid int) bool {
	return unix.Kill(pid, 0) != unix.ESRCH
}

func fileOwner(fi fs.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}

// fileID is an archive file's identity: unchanged, it need not be read
// again.
type fileID struct {
	Dev   uint64 `json:"dev"`
	Ino   uint64 `json:"ino"`
	Size  int64  `json:"size"`
	Mtime int64  `json:"mtime_ns"`
}

func identity(fi fs.FileInfo) *fileID {
	id := &fileID{Size: fi.Size(), Mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.Dev, id.Ino = uint64(st.Dev), uint64(st.Ino)
	}
	return id
}
