//go:build !unix

package ptyproc

import (
	"errors"
	"os"
	"os/exec"

	"github.com/guntainer/playground/runtime"
)

// errNoPty is every answer outside Unix, which has no pty of the kind
// the baselines run on.
var errNoPty = errors.New("ptyproc: a program on a host pty needs a Unix system")

// Terminal is a process on a pty of the host. Outside Unix none starts:
// the type is here so that the tools that name it build everywhere.
type Terminal struct{}

// Start fails outside Unix.
func Start(*exec.Cmd, uint16, uint16) (*Terminal, error) { return nil, errNoPty }

func (t *Terminal) Control(func(fd int) error) error  { return errNoPty }
func (t *Terminal) Master() *os.File                  { return nil }
func (t *Terminal) Pid() int                          { return 0 }
func (t *Terminal) Read([]byte) (int, error)          { return 0, errNoPty }
func (t *Terminal) Write([]byte) (int, error)         { return 0, errNoPty }
func (t *Terminal) ReadNow([]byte) (int, error)       { return 0, errNoPty }
func (t *Terminal) Resize(uint16, uint16) error       { return errNoPty }
func (t *Terminal) Wait() (runtime.ExitStatus, error) { return runtime.ExitStatus{}, errNoPty }
func (t *Terminal) Close() error                      { return nil }
