//go:build linux

// Command playground-load measures a playground server like its users would:
// from the outside, through the public WebSocket protocol only (the ttyd
// core of PROTOCOL.md), so it measures any server that speaks it, ttyd
// included. Beside the product it measures baselines in the same run, so
// that a ratio holds on a noisy machine: the raw pty without a network, an
// unisolated shell behind the same server code, and bubblewrap starting a
// shell in the same namespaces behind the same server code.
//
//	playground-load [flags]                      the baselines and the product, table output
//	playground-load --all --markdown             everything; what BENCHMARKS.md is made of
//	playground-load --url ws://host:port/ws      measure a running server (ttyd too)
//
// The servers it starts itself run as child processes of its own binary on
// 127.0.0.1, one fresh server per target and measurement, so that /proc
// shows each server's memory, descriptors and processes alone.
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

func main() {
	runtime.MaybeInit() // the runtime's helpers never return from here
	maybeServe()        // a child server of this command never returns from here
	maybeFlood()        // nor does the flooding sessions' client process
	os.Exit(mainArgs(os.Args[1:], os.Stdout, os.Stderr))
}

// usageError is a wrong flag or argument: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// mainArgs runs the command line and returns the exit code: 0, 1 when a
// measurement could not be made, 2 for a usage error. A missed goal is a
// finding, reported in the output, not a failure.
func mainArgs(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, args, stdout, stderr)
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "playground-load:", ue.msg)
		return 2
	default:
		fmt.Fprintln(stderr, "playground-load:", err)
		return 1
	}
}

// run parses the flags, measures, and writes the report.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, stderr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	progress := io.Writer(stderr)
	if cfg.Quiet {
		progress = io.Discard
	}
	rep, err := measure(ctx, cfg, progress)
	if rep != nil {
		if werr := writeReport(stdout, rep, cfg); werr != nil {
			return errors.Join(err, fmt.Errorf("write report: %w", werr))
		}
	}
	if err != nil {
		return err
	}
	if n := rep.failures(); n > 0 {
		return fmt.Errorf("%d measurements failed (see the report)", n)
	}
	return nil
}
