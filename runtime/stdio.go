package runtime

import (
	"errors"
	"os"

	"github.com/guntainer/playground/internal/ptyinput"
	"github.com/guntainer/playground/runtime/internal/initproc"
)

// Stdio is a program's standard input, output and error when it runs
// without a terminal (Spec.Stdio). The files are given to the program as
// they are, as its fds 0, 1 and 2, and nothing else of the caller's is: a
// nil one is the container's /dev/null.
//
// Only what cannot lead out of the container is accepted: a pipe, a
// socket, a regular file, or a character device that is not a terminal.
// A terminal is refused (the program could push input into it with
// TIOCSTI, paste into a console with TIOCLINUX, or change its modes: put
// a pipe between, as `playground run` does), and so are a directory and
// an O_PATH fd (fchdir or openat from one of the host's directories walks
// out of the container's root, as in runc's CVE-2024-21626).
//
// The caller keeps its own copies and closes them when it likes; the
// container's end when the container does, so a pipe's reader sees end
// of file once the container has ended.
type Stdio struct {
	Stdin, Stdout, Stderr *os.File
}

// ErrNoTerminal is returned by Write and Resize of a container started with
// Spec.Stdio: it has no terminal; its input is the caller's own file.
var ErrNoTerminal = errors.New("runtime: the container has no terminal (it was started with Spec.Stdio)")

// ErrInputFlushed ends a Write to a container's terminal whose rest
// SignalForeground dropped, as a ^C drops the input not yet read.
var ErrInputFlushed = ptyinput.ErrFlushed

// A program that cannot be started is a setup error that Is one of these,
// so a command line can exit as a shell does: 127 for a program not
// found, 126 for one found but not executable (a directory, no x bit, a
// script whose interpreter is missing, a noexec mount).
var (
	ErrProgramNotFound      = initproc.ErrProgramNotFound
	ErrProgramNotExecutable = initproc.ErrProgramNotExecutable
)
