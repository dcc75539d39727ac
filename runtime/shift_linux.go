package runtime

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// A tree for containers that map the subordinate ids must be owned by the
// slice's ids: a file of the server's own uid would be nobody's inside,
// and the overlay could not copy it up. The server cannot chown to those
// ids itself; a process of this binary in a user namespace that maps the
// slice and, as id 65536, the server's own uid (SubIDs.MapForUnpack) can:
// as its namespace's root it may give a file of id 65536 to id 0. The
// same process removes such a tree, which the server may no longer
// touch. It is this binary re-executed under the name idsArg0, and refuses
// to run outside a user namespace of its own.

const idsArg0 = "playground-ids"

// shifter runs that process for one slice.
type shifter struct {
	exe *os.File // the sealed copy of this binary
	ids *SubIDs
}

// chown gives every file of dir to the slice's root (container ids 0:0),
// keeping setuid and setgid bits, which a chown clears.
func (s *shifter) chown(dir string) error { return s.run("chown", dir, nil) }

// remove removes dir, a tree the slice's ids own.
func (s *shifter) remove(dir string) error { return s.run("remove", dir, nil) }

// run runs op on dir in the helper, which reads input after the go-ahead.
func (s *shifter) run(op, dir string, input []byte) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	cmd := &exec.Cmd{
		Path:        execPath(s.exe),
		Args:        []string{idsArg0, op, abs},
		Env:         []string{},
		SysProcAttr: &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER, Pdeathsig: syscall.SIGKILL},
	}
	if err := s.ids.Prepare(cmd.SysProcAttr); err != nil {
		return err
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		_ = in.Close()
		return fmt.Errorf("%s %s: %w", op, dir, err)
	}
	err = s.ids.MapForUnpack(cmd.Process.Pid)
	if err == nil {
		_, err = in.Write(append([]byte("mapped\n"), input...))
	}
	_ = in.Close() // without the go-ahead, it exits
	if werr := cmd.Wait(); err == nil && werr != nil {
		err = fmt.Errorf("%w: %s", werr, strings.TrimSpace(out.String()))
	}
	if err != nil {
		return fmt.Errorf("%s %s as the subordinate ids' root: %w", op, dir, err)
	}
	return nil
}

// idsMain is the process's side: wait for the maps, then do op.
func idsMain(args []string) int {
	if initialUserNS() || len(args) != 2 || !filepath.IsAbs(args[1]) {
		fmt.Fprintln(os.Stderr, idsArg0+": internal helper of the playground runtime; not for direct use")
		return 2
	}
	in := bufio.NewReader(os.Stdin)
	if line, err := in.ReadString('\n'); err != nil || line != "mapped\n" {
		return 1 // the parent could not map us
	}
	var err error
	switch args[0] {
	case "chown":
		err = chownTree(args[1])
	case "own":
		err = ownTree(args[1], in) // subid_tree_linux.go
	case "remove":
		err = os.RemoveAll(args[1])
	case "wait":
		// Only a user namespace for checkIDMap, which gives no go-ahead.
	default:
		err = errors.New("unknown operation " + args[0])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func chownTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if err := os.Lchown(p, 0, 0); err != nil {
			return err
		}
		if m := fi.Mode(); m&(fs.ModeSetuid|fs.ModeSetgid) != 0 && m&fs.ModeSymlink == 0 {
			return unix.Chmod(p, uint32(m.Perm())|unix.S_ISUID*b2u(m&fs.ModeSetuid != 0)|unix.S_ISGID*b2u(m&fs.ModeSetgid != 0)|unix.S_ISVTX*b2u(m&fs.ModeSticky != 0))
		}
		return nil
	})
}

func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}
