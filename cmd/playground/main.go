// Command playground serves a web terminal whose every session is a shell in
// a fresh, isolated Linux container, and runs such containers from the
// command line.
//
//	playground [serve] [flags]          serve the web playground (the default)
//	playground run [flags] [--] CMD...  run a command in a fresh container
//	playground rootfs COMMAND ...       manage the cache of environments
//	playground version                  print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/guntainer/playground/runtime"
)

func main() {
	runtime.MaybeInit() // the runtime's helpers never return from here
	os.Exit(mainArgs(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// usageError is a wrong flag or argument: one line on stderr, exit code 2,
// and nothing started.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// exitCode is a command's outcome that is not an error (run's program
// exited 3): the process exits with it and prints nothing.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit code %d", int(e)) }

// codeError is a failure with an exit code of its own, printed as any
// error is: run's program not found (127) or not executable (126).
type codeError struct {
	code int
	err  error
}

func (e *codeError) Error() string { return e.err.Error() }
func (e *codeError) Unwrap() error { return e.err }

const topUsage = `playground: a web playground where every session is a shell in its own container

Usage:
  playground [serve] [flags]            serve the web playground (the default command)
  playground run [flags] [--] [CMD...]  run CMD (default: a shell) in a fresh container
  playground rootfs COMMAND [flags]     manage the cache of environments: pull, ls, rm, prune
  playground version                    print the version and what it was built from
  playground help [COMMAND]             print this, or a command's usage and flags

Exit status: 0 done, 1 failed, 2 a usage error (nothing was started). run
exits with its program's status: 126 not executable, 127 not found, 128+N
ended by signal N.

Run 'playground COMMAND --help' for a command's flags.
`

// helpOut is where --help output goes: standard output, so that it can be
// paged; set by mainArgs.
var helpOut io.Writer = os.Stdout

// mainArgs runs the command line and returns the process exit code: 0, 1 for
// a failure, 2 for a usage error, or the exit code of run's program.
func mainArgs(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	helpOut = stdout
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cmd, rest := "serve", args
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, rest = args[0], args[1:]
	}
	if cmd == "serve" && len(args) > 0 && isHelp(args[0]) {
		cmd, rest = "help", nil // `playground --help`: every command, not serve's flags
	}
	var err error
	switch cmd {
	case "serve":
		err = serveMain(ctx, rest, stderr)
	case "run":
		err = runMain(stop, rest, stdin, stdout, stderr)
	case "rootfs":
		err = rootfsMain(ctx, rest, stdout, stderr)
	case "version":
		err = versionMain(rest, stdout)
	case "help":
		err = helpMain(ctx, rest, stdout, stderr)
	default:
		err = usagef("unknown command %q (see 'playground --help')", cmd)
	}
	return exitStatus(err, cmd, stderr)
}

// exitStatus prints err, if it is one to print, and returns the exit code
// that goes with it. A usage error is one line that says where help is.
func exitStatus(err error, cmd string, stderr io.Writer) int {
	var code exitCode
	var ce *codeError
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &code):
		return int(code)
	case errors.As(err, &ue):
		msg := strings.ReplaceAll(ue.msg, "\n", " ")
		if !strings.Contains(msg, "--help") {
			msg += fmt.Sprintf(" (see 'playground %s --help')", cmd)
		}
		fmt.Fprintln(stderr, "playground:", msg)
		return 2
	case errors.As(err, &ce):
		fmt.Fprintln(stderr, "playground:", err)
		return ce.code
	default:
		fmt.Fprintln(stderr, "playground:", err)
		return 1
	}
}

func isHelp(arg string) bool { return arg == "-h" || arg == "-help" || arg == "--help" }

// helpMain is `playground help [COMMAND]`.
func helpMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	switch {
	case len(args) == 0:
		fmt.Fprint(stdout, topUsage)
		return nil
	case len(args) > 1:
		return usagef("help takes one command, got %q (see 'playground --help')", args)
	}
	switch args[0] {
	case "serve":
		return serveMain(ctx, []string{"--help"}, stderr)
	case "run":
		return runMain(func() {}, []string{"--help"}, nil, stdout, stderr)
	case "rootfs":
		return rootfsMain(ctx, []string{"--help"}, stdout, stderr)
	case "version":
		return versionMain([]string{"--help"}, stdout)
	case "help":
		fmt.Fprint(stdout, topUsage)
		return nil
	}
	return usagef("help: unknown command %q (see 'playground --help')", args[0])
}

// parseFlags parses a subcommand's flags. A wrong flag is one line (the
// flag package's own message) and a pointer to --help, not the whole
// usage; --help prints the usage to standard output.
func parseFlags(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(helpOut)
		fs.Usage()
		return err
	}
	return usagef("%v (see 'playground %s --help')", err, fs.Name())
}
