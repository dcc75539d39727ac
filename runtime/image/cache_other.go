//go:build !unix

package image

import (
	"context"
	"errors"
	"io/fs"
	"os"
)

var errNotEmpty = errors.New("directory not empty")

func lockFile(ctx context.Context, p string, exclusive bool, onWait func()) (*os.File, error) {
	return nil, ErrUnsupported
}

func tryLock(p string, exclusive bool) (*os.File, bool, error) { return nil, false, ErrUnsupported }

func processAlive(pid int) bool { return true }

func fileOwner(fi fs.FileInfo) (int, bool) { return 0, false }

type fileID struct {
	Size  int64 `json:"size"`
	Mtime int64 `json:"mtime_ns"`
}

func identity(fi fs.FileInfo) *fileID {
	return &fileID{Size: fi.Size(), Mtime: fi.ModTime().UnixNano()}
}
