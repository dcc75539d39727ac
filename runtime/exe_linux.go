package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/guntainer/playground/runtime/internal/initproc"
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
	return seal("playground", src)
}

// seal copies src into a new memfd of that name and seals it.
func seal(name string, src io.Reader) (*os.File, error) {
	const flags = unix.MFD_CLOEXEC | unix.MFD_ALLOW_SEALING
	fd, err := unix.MemfdCreate(name, flags|unix.MFD_EXEC)
	if errors.Is(err, unix.EINVAL) {
		fd, err = unix.MemfdCreate(name, flags) // before Linux 6.3, every memfd is executable
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
	f := os.NewFile(uintptr(high), "memfd:"+name)
	if _, err := io.Copy(f, src); err != nil {
		_ = f.Close() // unusable half copy
		return nil, fmt.Errorf("sealed copy of the executable: copy: %w", err)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	err = addSeals(f, seals|unix.F_SEAL_EXEC)
	if errors.Is(err, unix.EINVAL) {
		err = addSeals(f, seals) // no F_SEAL_EXEC before Linux 6.3
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("sealed copy of the executable: seal: %w", err)
	}
	return f, nil
}

// sealTries is how many times addSeals asks before it gives up on EBUSY,
// waiting sealWait times the try between them: 0.45 s in all, beside the
// kernel's own waits.
const (
	sealTries = 10
	sealWait  = 10 * time.Millisecond
)

// addSeals adds seals to f's memfd. The kernel refuses F_SEAL_WRITE with
// EBUSY while a page of the file has a reference besides its mappings (it
// waits about 70 ms for one to go first), or a writable shared mapping
// exists. A copy just written, that nothing of ours maps, still met that
// once in CI (`playground run`, as an ordinary user, while other tests
// ran); our reading, not proven, is a passing reference of the kernel's
// own. So EBUSY is asked again, a few times, before it is the answer.
func addSeals(f *os.File, seals int) error {
	var err error
	for try := range sealTries {
		if try > 0 {
			time.Sleep(time.Duration(try) * sealWait)
		}
		if _, err = unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, seals); !errors.Is(err, unix.EBUSY) {
			return err
		}
	}
	return err
}

// A server built by deploy/build.sh embeds the small init binary
// (runtime/cmd/playground-init, build tag playground_embedinit) and
// executes every container's init from a sealed copy of it, made as this
// binary's own is; an ordinary build (go run, go build) embeds nothing and
// re-executes itself. Inside a container, /proc/1/exe then names
// "/memfd:playground-init (deleted)": still no host file, and sealed alike.

var initExe struct {
	once sync.Once
	f    *os.File
	err  error
}

// initExecutable returns what a container's init is executed from: the
// sealed copy of the embedded init binary where this build has one, else
// this binary's (sealedExecutable). EmbeddedInit says which.
func initExecutable() (*os.File, error) {
	initExe.once.Do(func() {
		if len(embeddedInit) == 0 {
			initExe.f, initExe.err = sealedExecutable()
			return
		}
		initExe.f, initExe.err = sealEmbeddedInit(embeddedInit, initproc.BuildStamp)
	})
	return initExe.f, initExe.err
}

// EmbeddedInit reports whether this build embeds the small init binary
// (deploy/build.sh) that containers' inits are executed from.
func EmbeddedInit() bool { return len(embeddedInit) > 0 }

// sealEmbeddedInit seals bin, an init binary, and checks, by executing it
// once, that it was built from the sources this binary was: its build
// stamp must be stamp, which must not be empty. An init built from other
// sources would set up containers with other code than this server's
// (security fixes included), so a mismatch is an error, not a fallback:
// the build that embedded it is wrong.
func sealEmbeddedInit(bin []byte, stamp string) (*os.File, error) {
	f, err := seal(initproc.Arg0, bytes.NewReader(bin))
	if err != nil {
		return nil, err
	}
	fail := func(format string, a ...any) (*os.File, error) {
		_ = f.Close()
		return nil, fmt.Errorf("embedded init: "+format+" (build with deploy/build.sh, which builds both from one tree)", a...)
	}
	if stamp == "" {
		return fail("this binary has no build stamp to check it against")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Not argv[0] initproc.Arg0: that is init's entry.
	cmd := exec.CommandContext(ctx, execPath(f), "--build-stamp")
	cmd.Args[0] = initproc.Arg0 + "-check"
	cmd.Env = []string{}
	out, err := cmd.Output()
	if err != nil {
		return fail("executing it: %v", err)
	}
	if got := strings.TrimSpace(string(out)); got != stamp {
		return fail("built from other sources: stamp %q, this binary's %q", got, stamp)
	}
	return f, nil
}

func memfdHint(err error) string {
	if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
		return " (executable memfds are forbidden here: sysctl vm.memfd_noexec must be 0 or 1)"
	}
	return ""
}
