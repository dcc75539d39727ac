package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"

	"github.com/guntainer/playground/runtime"
	"github.com/guntainer/playground/runtime/image"
)

const rootfsUsage = `Usage: playground rootfs COMMAND [flags] [ARGS]

Manages the cache of environments (root file systems): by default
~/.cache/playground ($XDG_CACHE_HOME/playground), /var/lib/playground as root.

Commands:
  pull SOURCE...          download, verify and unpack each SOURCE now (a docker://
                          tag is looked up again; the server later starts from the cache)
  ls                      list the cached environments: name, source, digest, size, last use
  rm NAME|SOURCE|DIGEST...
                          remove environments (never one a running playground uses)
  prune [--all] [--unused-for DURATION]
                          remove leftovers of interrupted work and environments no source
                          names any more; --all: every environment not in use

A SOURCE is one of:
  ubuntu, ubuntu:24.04, ubuntu:22.04   the official ubuntu-base tarball, pinned by SHA-256
  docker://REF                         an image from a registry (docker://python:3.12-slim)
  PATH                                 a directory, used in place, or a .tar, .tar.gz,
                                       .tar.xz or .tar.zst archive, unpacked into the cache
  host                                 the host's /usr, /bin and /lib, read-only
  auto                                 the cached Ubuntu, else download it, else host
and NAME=SOURCE names it.

Flags come before arguments: playground rootfs pull --cache DIR ubuntu
`

// rootfsMain runs `playground rootfs ...`.
func rootfsMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("rootfs needs a command: pull, ls, rm or prune (see 'playground rootfs --help')")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "-h", "--help", "-help", "help":
		fmt.Fprint(stdout, rootfsUsage)
		return nil
	case "pull", "ls", "rm", "prune":
	default:
		return usagef("rootfs: unknown command %q (see 'playground rootfs --help')", cmd)
	}
	fs := flag.NewFlagSet("rootfs "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cacheDir := fs.String("cache", defaultCacheDir(), "cache `directory` (PLAYGROUND_CACHE)")
	stateDir := fs.String("state-dir", defaultStateDir(), "the servers' state `directory` (PLAYGROUND_STATE_DIR): whether their containers map subordinate ids decides how an archive is unpacked")
	logFormat := fs.String("log-format", "console", "log format: console or json")
	all := fs.Bool("all", false, "prune: remove every environment not in use")
	unused := fs.Duration("unused-for", 0, "prune: also remove environments not used for this `long` (e.g. 720h)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), rootfsUsage+"\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, rest); err != nil {
		return err
	}
	if *logFormat != "console" && *logFormat != "json" {
		return usagef("--log-format %q: want console or json", *logFormat)
	}
	if cmd != "prune" && (*all || *unused != 0) {
		return usagef("--all and --unused-for are prune's flags")
	}
	if *unused < 0 {
		return usagef("--unused-for must not be negative")
	}
	args = fs.Args()
	switch {
	case (cmd == "pull" || cmd == "rm") && len(args) == 0:
		return usagef("rootfs %s needs at least one argument (see 'playground rootfs --help')", cmd)
	case (cmd == "ls" || cmd == "prune") && len(args) > 0:
		return usagef("rootfs %s takes no arguments, got %q", cmd, args)
	}
	f, _ := stderr.(*os.File)
	tty := f != nil && isTerminal(f)
	log := newLogger(*logFormat, "info", stderr)
	if *logFormat == "console" {
		// Colours only for a terminal.
		log = log.Output(zerolog.ConsoleWriter{Out: stderr, TimeFormat: time.TimeOnly, NoColor: !tty})
	}
	c, err := image.OpenCache(*cacheDir, log)
	if err != nil {
		return err
	}
	if cmd != "ls" {
		// Unpack, and remove, as serve and run do: through the
		// subordinate ids where their containers map them.
		host, err := runtime.NewHost(runtime.HostOptions{StateDir: *stateDir, NoCgroups: true})
		if err != nil {
			return err
		}
		defer host.Close()
		useSubIDs(c, host)
	}
	switch cmd {
	case "pull":
		return rootfsPull(ctx, c, args, stdout, stderr, tty)
	case "ls":
		return rootfsList(c, stdout)
	case "rm":
		return rootfsRemove(c, args, stdout)
	}
	res, err := c.Prune(*all, *unused)
	for _, e := range res.Removed {
		fmt.Fprintf(stdout, "removed %s (%s, %s)\n", e.Name, shortDigest(e.Digest), image.HumanBytes(e.Size))
	}
	fmt.Fprintf(stdout, "pruned %d environments (%s), %d leftovers, %d stale refs\n", len(res.Removed), image.HumanBytes(res.Bytes), res.Leftovers, res.Refs)
	return err
}

func rootfsPull(ctx context.Context, c *image.Cache, args []string, stdout, stderr io.Writer, tty bool) error {
	srcs := make([]image.Source, len(args))
	for i, a := range args {
		src, err := image.ParseSource(a)
		if err != nil {
			return usagef("%v", err)
		}
		srcs[i] = src
	}
	rep := image.NewReporter(stderr, tty, c.Log, 2*time.Second)
	defer rep.Close()
	var errs []error
	for _, src := range srcs {
		img, err := c.Pull(ctx, src, rep.Report)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			errs = append(errs, err)
			continue
		}
		rep.Close()
		switch {
		case img.Digest != "":
			fmt.Fprintf(stdout, "%s\t%s\t%s\t%s\n", img.Name, img.Digest, image.HumanBytes(img.Size), img.Dir)
		default:
			fmt.Fprintf(stdout, "%s\t%s\n", img.Name, img.Dir) // host, or a directory used in place
		}
		_ = img.Close() // pulled: the cache keeps it
	}
	return errors.Join(errs...)
}

func rootfsList(c *image.Cache, stdout io.Writer) error {
	es, err := c.List()
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSOURCE\tDIGEST\tSIZE\tLAST USED")
	now := time.Now()
	for _, e := range es {
		used := ago(now, e.LastUsed)
		if e.InUse {
			used += " (in use)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Name, strings.Join(e.Sources, ", "), shortDigest(e.Digest), image.HumanBytes(e.Size), used)
	}
	return tw.Flush()
}

func rootfsRemove(c *image.Cache, args []string, stdout io.Writer) error {
	var errs []error
	for _, a := range args {
		removed, err := c.Remove(a)
		for _, e := range removed {
			fmt.Fprintf(stdout, "removed %s (%s, %s)\n", e.Name, shortDigest(e.Digest), image.HumanBytes(e.Size))
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// shortDigest is "sha256:" and the first 12 hex digits.
func shortDigest(d string) string {
	if len(d) > len("sha256:")+12 {
		return d[:len("sha256:")+12]
	}
	return d
}

// ago says how long ago t was, roughly.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return plural(int(d/time.Minute), "minute") + " ago"
	case d < 48*time.Hour:
		return plural(int(d/time.Hour), "hour") + " ago"
	case d < 60*24*time.Hour:
		return plural(int(d/(24*time.Hour)), "day") + " ago"
	}
	return t.Format("2006-01-02")
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}
