package main

import (
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

const runUsage = `Usage: playground run [flags] [--] [CMD [ARGS...]]

Runs CMD in a fresh container on this terminal, as guntainer's 'run' did:
raw mode, window size changes passed on, and CMD's exit code as this
command's (128+N when signal N ended it). Without CMD, an interactive
login shell: /bin/bash, or /bin/sh where the rootfs has no bash.

Flags:
`

func runMain(stopSignals func(), args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	spec := runtime.Spec{Rootfs: runtime.HostRootfs}
	var env stringList
	lim := defaultLimitsConfig()
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&spec.Rootfs, "rootfs", spec.Rootfs, "root file system: `DIR` (an unpacked tree) or \"host\" (the host's /usr, /bin, /lib read-only)")
	fs.StringVar(&spec.Hostname, "hostname", "playground", "hostname inside the container")
	fs.StringVar(&spec.Dir, "workdir", "", "working `directory` inside the container (default: HOME, /root)")
	fs.Var(&env, "env", "set `NAME=VALUE` in the container; repeatable")
	lim.bind(fs) // --memory, --pids, --cpus, --disk, --net, --net-allow
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), runUsage)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	for _, kv := range env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return usagef("--env %q: want NAME=VALUE", kv)
		}
	}
	spec.Env = env
	spec.Args = fs.Args()
	if bad := lim.validate(); len(bad) > 0 {
		return usagef("%s", strings.Join(bad, "; "))
	}

	in, _ := stdin.(*os.File)
	tty := in != nil && isTerminal(in)
	if tty {
		if cols, rows, err := terminalSize(in); err == nil {
			spec.Cols, spec.Rows = cols, rows
		}
	}
	// What a killed earlier run or server left: their mount points.
	if _, err := runtime.CleanStateDir(runtime.DefaultStateDir()); err != nil {
		fmt.Fprintln(stderr, "playground: clean state dir:", err)
	}
	host, err := withLimits(&spec, lim, 1, nil)
	if err != nil {
		return err
	}
	defer host.Close() // after the container: removes its parent cgroup
	c, err := runtime.Start(spec)
	if err != nil {
		return err
	}
	defer c.Close()

	if tty {
		restore, err := makeRaw(in)
		if err != nil {
			return fmt.Errorf("raw mode: %w", err)
		}
		defer restore()
	}

	// Ctrl-C reaches the program through the pty in raw mode; SIGINT and
	// SIGTERM sent to us are passed on to it instead of ending us.
	stopSignals()
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGWINCH)
	defer signal.Stop(sigs)
	go func() {
		for s := range sigs {
			if s == syscall.SIGWINCH {
				if cols, rows, err := terminalSize(in); err == nil {
					_ = c.Resize(cols, rows) // the container may just have ended
				}
				continue
			}
			_ = c.Signal(s.(syscall.Signal)) // the container may just have ended
		}
	}()

	go func() {
		_, _ = io.Copy(c, stdin) // ends with our stdin or the container
		if !tty {
			// Input was a file or pipe: give the program its end of file.
			_, _ = c.Write([]byte{4})
		}
	}()
	if _, err := io.Copy(stdout, c); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("copy output: %w", err)
	}
	st, err := c.Wait()
	if err != nil {
		return err
	}
	if st.Signaled() {
		return exitCode(128 + int(st.Signal))
	}
	if st.Code != 0 {
		return exitCode(st.Code)
	}
	return nil
}
