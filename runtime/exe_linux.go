package runtime

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// Every container's init runs from a sealed in-memory copy of this binary
// (as runc's exeseal), never from the file on disk: inside, /proc/1/exe
// names "/memfd:playground (deleted)", no host file, and the copy cannot be
// written, truncated, grown or (where the kernel has F_SEAL_EXEC) made
// non-executable, so a container that reached it could not plant code in
// the next container's init, let alone in the host's binary
// (CVE-2019-5736's family). The copy is made once per process, lazily, by
// the first Start (a server's Check at start-up, so in practice at server
// start), and shared by every container after it.

var exe struct {
	once sync.Once
	f    *os.File
	err  error
}

// sealedExecutable returns the sealed copy of this binary, made on first use.
func sealedExecutable() (*os.File, error) {
	exe.once.Do(func() { exe.f, exe.err = sealExecutable() })
	return exe.f, exe.err
}

// execPath is the path a child process executes the sealed copy by.
func execPath(f *os.File) string { return "/proc/self/fd/" + strconv.Itoa(int(f.Fd())) }

func sealExecutable() (*os.File, error) {
	src, err := os.Open("/proc/self/exe")
	if err != nil {
		return nil, fmt.Errorf("sealed copy of the executable: %w", err)
	}
	defer src.Close()
	const flags = unix.MFD_CLOEXEC | unix.MFD_ALLOW_SEALING
	fd, err := unix.MemfdCreate("playground", flags|unix.MFD_EXEC)
	if errors.Is(err, unix.EINVAL) {
		fd, err = unix.MemfdCreate("playground", flags) // before Linux 6.3, every memfd is executable
	}
	if err != nil {
		return nil, fmt.Errorf("sealed copy of the executable: memfd_create: %w%s", err, memfdHint(err))
	}
	// A high fd number, out of the way of the fds exec.Cmd arranges in the
	// child (0, 1, 2 and ExtraFiles from 3), which could overwrite a low one
	// before the child executes it.
	high, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 100)
	_ = unix.Close(fd) // the duplicate is the one kept, or the error is reported
	if err != nil {
		return nil, fmt.Errorf("sealed copy of the executable: %w", err)
	}
	f := os.NewFile(uintptr(high), "memfd:playground")
	if _, err := io.Copy(f, src); err != nil {
		_ = f.Close() // unusable half copy
		return nil, fmt.Errorf("sealed copy of the executable: copy: %w", err)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	_, err = unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, seals|unix.F_SEAL_EXEC)
	if errors.Is(err, unix.EINVAL) {
		_, err = unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, seals) // no F_SEAL_EXEC before Linux 6.3
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("sealed copy of the executable: seal: %w", err)
	}
	return f, nil
}

func memfdHint(err error) string {
	if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
		return " (executable memfds are forbidden here: sysctl vm.memfd_noexec must be 0 or 1)"
	}
	return ""
}
