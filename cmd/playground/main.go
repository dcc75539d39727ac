// Command playground serves a web terminal whose every session is a shell in
// a fresh, isolated Linux container, and runs such containers from the
// command line.
//
//	playground [serve] [flags]          serve the web playground (the default)
//	playground run [flags] [--] CMD...  run a command in a container on this terminal
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
	"syscall"

	"github.com/guntainer/playground/runtime"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	runtime.MaybeInit() // a container's init never returns from here
	os.Exit(mainArgs(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// usageError is a wrong flag or argument: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// exitCode is a command's outcome that is not an error (run's program
// exited 3): the process exits with it and prints nothing.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit code %d", int(e)) }

const topUsage = `playground: a web playground where every session is a shell in its own container

Usage:
  playground [serve] [flags]           serve the web playground (the default)
  playground run [flags] [--] [CMD...] run CMD (default: a shell) in a container on this terminal
  playground version                   print the version

Run 'playground COMMAND --help' for a command's flags.
`

// mainArgs runs the command line and returns the process exit code: 0, 1 for
// a failure, 2 for a usage error, or the exit code of run's program.
func mainArgs(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cmd, rest := "serve", args
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, rest = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serveMain(ctx, rest, stderr)
	case "run":
		err = runMain(stop, rest, stdin, stdout, stderr)
	case "version":
		if len(rest) > 0 && (rest[0] == "-h" || rest[0] == "--help" || rest[0] == "-help") {
			fmt.Fprint(stdout, "Usage: playground version\n\nPrints the version.\n")
			return 0
		}
		fmt.Fprintln(stdout, "playground", version)
		return 0
	case "help":
		fmt.Fprint(stdout, topUsage)
		return 0
	default:
		err = usagef("unknown command %q\n\n%s", cmd, topUsage)
	}
	var code exitCode
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &code):
		return int(code)
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "playground:", ue.msg)
		return 2
	default:
		fmt.Fprintln(stderr, "playground:", err)
		return 1
	}
}

// parseFlags parses a subcommand's flags, turning flag's own errors into
// usage errors (the flag package has already printed the usage).
func parseFlags(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return usagef("%v (see 'playground %s --help')", err, fs.Name())
}
