//go:build linux

package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"time"

	"github.com/guntainer/playground/internal/ptyproc"
	"github.com/guntainer/playground/server"
)

// The baselines' terminals: a program on a plain pty of the host, either
// the shell itself (plain, raw) or bubblewrap running it (bwrap).

const shell = "/bin/sh"

// shellEnv is the environment of every baseline shell; the container's
// differs only by what its runtime sets (HOME=/root, USER, ...).
func shellEnv(home string) []string {
	return []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + home,
		"TERM=xterm-256color",
		"PS1=$ ",
		"LANG=C.UTF-8",
	}
}

// plainStarter starts an unisolated /bin/sh on a pty of the host for every
// session: the server's own cost, without isolation's.
func plainStarter(home string) server.StartFunc {
	return func(_ context.Context, req server.StartRequest) (server.Terminal, error) {
		cmd := exec.Command(shell)
		cmd.Dir = home
		cmd.Env = shellEnv(home)
		return ptyproc.Start(cmd, req.Cols, req.Rows)
	}
}

// bwrapArgs runs /bin/sh under bubblewrap in new user, pid, mount, net,
// uts, ipc and cgroup namespaces, with a root laid out as the runtime's
// host rootfs is: the host's /usr read-only (and /bin, /lib, /lib64, /sbin
// as the same symlinks into it that a merged-/usr host has), fresh /proc,
// a minimal /dev, tmpfs /tmp and /root, an /etc with only the dynamic
// linker's cache.
func bwrapArgs(bwrap string) []string {
	args := []string{bwrap, "--unshare-all", "--die-with-parent",
		"--ro-bind", "/usr", "/usr"}
	for _, d := range []string{"/bin", "/lib", "/lib64", "/sbin", "/lib32", "/libx32"} {
		fi, err := os.Lstat(d)
		switch {
		case err != nil:
			continue
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(d)
			if err != nil {
				continue
			}
			args = append(args, "--symlink", target, d)
		default:
			args = append(args, "--ro-bind", d, d)
		}
	}
	args = append(args,
		"--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/root",
		"--dir", "/etc", "--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache",
		"--hostname", "playground", "--chdir", "/root",
		shell)
	return args
}

// bwrapStarter starts bubblewrap running /bin/sh for every session: the
// nearest peer of a container for start time.
func bwrapStarter(bwrap string) server.StartFunc {
	args := bwrapArgs(bwrap)
	return func(_ context.Context, req server.StartRequest) (server.Terminal, error) {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = shellEnv("/root")
		return ptyproc.Start(cmd, req.Cols, req.Rows)
	}
}

// rawSession is the raw baseline: /bin/sh on a pty, read and written by
// this process directly, with no server and no network in between.
type rawSession struct {
	term   *ptyproc.Terminal
	buf    []byte
	gather bool // read what is there already after each read (throughput)
}

func openRaw(home string) (*rawSession, error) {
	cmd := exec.Command(shell)
	cmd.Dir = home
	cmd.Env = shellEnv(home)
	t, err := ptyproc.Start(cmd, 80, 24)
	if err != nil {
		return nil, err
	}
	return &rawSession{term: t, buf: make([]byte, 32<<10)}, nil
}

func (r *rawSession) input(ctx context.Context, s string) error {
	_ = r.term.Master().SetWriteDeadline(deadline(ctx)) // fails only on a closed file: then Write does too
	_, err := r.term.Write([]byte(s))
	return err
}

func (r *rawSession) output(ctx context.Context) ([]byte, error) {
	_ = r.term.Master().SetReadDeadline(deadline(ctx)) // as above
	n, err := r.term.Read(r.buf)
	// The best reader takes, without waiting, what else is there already,
	// as the server does when output streams.
	for r.gather && err == nil && n > 0 && len(r.buf)-n >= 4<<10 {
		m, rerr := r.term.ReadNow(r.buf[n:])
		n, err = n+m, rerr
		if m == 0 {
			break
		}
	}
	if n > 0 {
		return r.buf[:n], nil
	}
	if err == nil {
		err = errors.New("empty read")
	}
	return nil, err
}

func (r *rawSession) abort() { _ = r.term.Close() } // killing a shell we started

func (r *rawSession) close() {
	_ = r.term.Close() // killing a shell we started; nothing to report
	_, _ = r.term.Wait()
}

// deadline is ctx's deadline, or 30 s from now when it has none.
func deadline(ctx context.Context) time.Time {
	if dl, ok := ctx.Deadline(); ok {
		return dl
	}
	return time.Now().Add(30 * time.Second)
}
