package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/guntainer/playground/runtime"
	"github.com/guntainer/playground/runtime/image"
)

// runDefaultRootfs is run's root file system when neither --rootfs nor
// PLAYGROUND_ROOTFS names one: "auto", as serve's default is: the cached
// Ubuntu, else Ubuntu downloaded now, else (offline) the host's /usr with
// a warning that says how to get Ubuntu.
const runDefaultRootfs = "auto"

// runStopTimeout is how long a program gets to end after SIGINT, SIGTERM
// or SIGHUP before run ends its container: docker stop's 10 seconds.
const runStopTimeout = 10 * time.Second

const runUsage = `Usage: playground run [flags] [--] [CMD [ARGS...]]

Runs CMD in a fresh container and exits with its exit status: 126 when CMD
is not executable, 127 when it is not found, 128+N when signal N ended it
(137 with a last line such as "playground: memory limit 512 MiB reached"
when its container's cgroup limit did). Without CMD, an interactive login
shell: the image's, else /bin/bash, else /bin/sh.

With standard input and output on a terminal, CMD gets a terminal of its
own, as guntainer's 'run' gave it: raw mode, window size changes passed on.
Otherwise CMD gets plain pipes: standard input, output and error as they
are (a terminal among them through a pipe, never the terminal itself), no
echo, end of file passed on: 'echo hello | playground run -- wc -c' prints 6.

SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 sent to playground run
go on to CMD. A CMD still running --stop-timeout after the first SIGINT,
SIGTERM or SIGHUP is killed with everything in its container, as 'docker
stop' does it: 'timeout 5 playground run -- sleep 100' ends after 5 s, an
interactive shell that ignores SIGTERM 10 s later. When playground run is
killed, its container ends with it.

--rootfs takes any environment source (see 'playground rootfs --help'):
auto (the default), ubuntu, ubuntu:22.04, docker://REF, a directory, an
archive, host. A source that needs the cache is prepared there once
(downloaded, verified, unpacked, with a progress bar) and its image config
(environment, working directory, user, shell) applied; host and a
directory need no cache. auto is the cached Ubuntu, else Ubuntu downloaded
now, else, offline, host with a warning that says how to get Ubuntu.
PLAYGROUND_ROOTFS (its first source, when it lists several for serve),
PLAYGROUND_CACHE and PLAYGROUND_STATE_DIR set the defaults of --rootfs,
--cache and --state-dir.

Flags:
`

// runConfig is the run command's configuration: defaults in code, then
// PLAYGROUND_ROOTFS, PLAYGROUND_CACHE and PLAYGROUND_STATE_DIR, then flags.
type runConfig struct {
	Rootfs      string
	Cache       string
	StateDir    string
	Hostname    string
	Workdir     string
	User        string
	Env         stringList
	Limits      limitsConfig
	StopTimeout time.Duration
}

func defaultRunConfig() runConfig {
	c := runConfig{
		Rootfs:      runDefaultRootfs,
		Cache:       defaultCacheDir(),
		StateDir:    runtime.DefaultStateDir(),
		Hostname:    "playground",
		Limits:      defaultLimitsConfig(),
		StopTimeout: runStopTimeout,
	}
	// PLAYGROUND_ROOTFS is serve's list of environments: run takes the
	// first, the default.
	if v, _, _ := strings.Cut(getenv("PLAYGROUND_ROOTFS"), ","); strings.TrimSpace(v) != "" {
		c.Rootfs = strings.TrimSpace(v)
	}
	if v := getenv("PLAYGROUND_STATE_DIR"); v != "" {
		c.StateDir = v
	}
	return c
}

func (c *runConfig) bind(fs *flag.FlagSet) {
	fs.StringVar(&c.Rootfs, "rootfs", c.Rootfs, "root file system: an environment `SOURCE` (auto, ubuntu, docker://REF, a directory or archive, host)")
	fs.StringVar(&c.Cache, "cache", c.Cache, "cache `directory` of environments, for sources that need one")
	fs.StringVar(&c.StateDir, "state-dir", c.StateDir, "host `directory` for the container's mount point")
	fs.StringVar(&c.Hostname, "hostname", c.Hostname, "hostname inside the container")
	fs.StringVar(&c.Workdir, "workdir", c.Workdir, "working `directory` inside the container (default: the image's, else HOME)")
	fs.StringVar(&c.User, "user", c.User, "run CMD as `UID[:GID]` inside the container (default: the image's, else root)")
	fs.Var(&c.Env, "env", "set `NAME=VALUE` in the container, after the image's; repeatable")
	c.Limits.bind(fs) // --memory, --pids, --cpus, --disk, --net, --net-allow
	fs.DurationVar(&c.StopTimeout, "stop-timeout", c.StopTimeout, "after SIGINT, SIGTERM or SIGHUP, how long CMD gets to end before its container is killed")
}

// validate checks everything that can be checked before anything starts.
func (c *runConfig) validate() (image.Source, error) {
	for _, kv := range c.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return image.Source{}, usagef("--env %q: want NAME=VALUE", kv)
		}
	}
	src, err := image.ParseSource(c.Rootfs)
	if err != nil {
		return src, usagef("--rootfs: %v", err)
	}
	if c.User != "" && !validUser(c.User) {
		return src, usagef("--user %q: want UID or UID:GID, in numbers", c.User)
	}
	if bad := c.Limits.validate(); len(bad) > 0 {
		return src, usagef("%s", strings.Join(bad, "; "))
	}
	switch {
	case c.StopTimeout < 0:
		return src, usagef("--stop-timeout must not be negative")
	case c.Cache == "":
		return src, usagef("--cache is empty")
	case c.StateDir == "":
		return src, usagef("--state-dir is empty")
	}
	return src, nil
}

func validUser(s string) bool {
	u, g, hasGID := strings.Cut(s, ":")
	_, err := strconv.ParseUint(u, 10, 32)
	if err == nil && hasGID {
		_, err = strconv.ParseUint(g, 10, 32)
	}
	return err == nil
}

// spec is the container to start on img.
func (c *runConfig) spec(img *image.Image, args []string) runtime.Spec {
	env := append(append([]string{}, img.Config.Env...), c.Env...)
	dir := c.Workdir
	if dir == "" {
		dir = img.Config.WorkingDir
	}
	user := c.User
	if user == "" {
		user = img.Config.User
	}
	if len(args) == 0 {
		args = img.Config.Shell
	}
	return runtime.Spec{
		Rootfs:   img.Dir,
		Hostname: c.Hostname,
		Args:     args,
		Env:      env,
		Dir:      dir,
		User:     user,
		StateDir: c.StateDir,
	}
}

// runMain is `playground run`. stopSignals ends main's own handling of
// SIGINT and SIGTERM: from here on run passes them to the program.
func runMain(stopSignals func(), args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	cfg := defaultRunConfig()
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	cfg.bind(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), runUsage)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	src, err := cfg.validate()
	if err != nil {
		return err
	}

	in, _ := stdin.(*os.File)
	out, _ := stdout.(*os.File)
	tty := isTerminal(in) && isTerminal(out)
	sigs := catchSignals(cfg.StopTimeout, stderr, tty)
	defer sigs.stop()
	stopSignals()

	// What a killed earlier run or server left: their mount points.
	if _, err := runtime.CleanStateDir(cfg.StateDir); err != nil {
		fmt.Fprintln(stderr, "playground: clean state dir:", err)
	}
	// The host first: whether containers map subordinate ids decides how
	// the cache unpacks an archive.
	limited := runtime.Spec{StateDir: cfg.StateDir}
	host, err := withLimits(&limited, cfg.Limits, 1, false, nil)
	if err != nil {
		return err
	}
	defer host.Close() // after the container: removes its parent cgroup

	img, err := prepareRootfs(sigs.ctx, &cfg, src, host, stderr)
	if sig := sigs.ending(); sig != 0 {
		// Asked to end before the program started: nothing is started.
		_ = img.Close() // nil-safe
		return exitCode(128 + int(sig))
	}
	if err != nil {
		return err
	}
	defer img.Close()
	spec := cfg.spec(img, fs.Args())
	spec.Host, spec.Limits, spec.Net = limited.Host, limited.Limits, limited.Net
	var c *runtime.Container
	if tty {
		c, err = runOnTerminal(sigs, spec, in, out)
	} else {
		c, err = runOnPipes(sigs, spec, stdin, stdout, stderr)
	}
	if err != nil {
		return startError(err, &cfg, img)
	}
	defer c.Close()
	st, err := c.Wait()
	if err != nil {
		return err
	}
	if st.Reason != "" {
		// Ended at its limit (the cgroup's): 137 alone would not say so.
		fmt.Fprintln(stderr, "playground:", st.Reason)
	}
	if st.Signaled() {
		return exitCode(128 + int(st.Signal))
	}
	if st.Code != 0 {
		return exitCode(st.Code)
	}
	return nil
}

// startError gives a program not found or not executable the exit code a
// shell gives it, and says where a failing user came from.
func startError(err error, cfg *runConfig, img *image.Image) error {
	switch {
	case errors.Is(err, runtime.ErrProgramNotFound):
		return &codeError{127, err}
	case errors.Is(err, runtime.ErrProgramNotExecutable):
		return &codeError{126, err}
	case cfg.User == "" && img.Config.User != "":
		return fmt.Errorf("%w (user %s is the image's; --user 0 runs as root)", err, img.Config.User)
	}
	return err
}

// runOnTerminal runs the program on a pty of its own and this terminal in
// raw mode, and returns once the program's output has ended.
func runOnTerminal(sigs *runSignals, spec runtime.Spec, in, out *os.File) (*runtime.Container, error) {
	if cols, rows, err := terminalSize(in); err == nil {
		spec.Cols, spec.Rows = cols, rows
	}
	c, err := runtime.Start(spec)
	if err != nil {
		return nil, err
	}
	restore, err := makeRaw(in)
	if err != nil {
		_ = c.Close() // not run yet: nothing to report
		return nil, fmt.Errorf("raw mode: %w", err)
	}
	defer restore()
	sigs.attach(c, func() {
		if cols, rows, err := terminalSize(in); err == nil {
			_ = c.Resize(cols, rows) // the container may just have ended
		}
	})
	go func() { _, _ = io.Copy(c, in) }() // ends with the container, or with us
	if _, err := io.Copy(out, c); err != nil && !errors.Is(err, io.EOF) {
		_ = c.Close() // the terminal is gone: so is the session
		return nil, fmt.Errorf("copy output: %w", err)
	}
	return c, nil
}

// runOnPipes runs the program on our standard input, output and error,
// through pipes where those are terminals, and returns once its output has
// been copied to its end.
func runOnPipes(sigs *runSignals, spec runtime.Spec, stdin io.Reader, stdout, stderr io.Writer) (*runtime.Container, error) {
	p, err := newPipeIO(stdin, stdout, stderr)
	if err != nil {
		return nil, err
	}
	spec.Stdio = &p.stdio
	c, err := runtime.Start(spec)
	if err != nil {
		p.abort()
		return nil, err
	}
	p.started()
	sigs.attach(c, nil)
	<-c.Done()
	p.wait() // the container is gone, and with it every writer of our pipes
	return c, nil
}

// pipeIO is the program's standard files without a terminal: ours as they
// are, but a terminal (or a reader or writer that is not a file) behind a
// pipe that is copied to or from.
type pipeIO struct {
	stdio  runtime.Stdio
	theirs []*os.File // the container's ends of our pipes: ours to close once it has them
	mine   []*os.File // our ends, closed by the copies
	copies []func()   // started once the container runs
	outs   chan struct{}
	nOuts  int
}

func newPipeIO(stdin io.Reader, stdout, stderr io.Writer) (*pipeIO, error) {
	p := &pipeIO{}
	var err error
	// A standard file that is not open (a daemon's closed fd 0) is
	// /dev/null to the program.
	if f, ok := stdin.(*os.File); ok && !isOpen(f) {
		stdin = nil
	}
	if f, ok := stdout.(*os.File); ok && !isOpen(f) {
		stdout = nil
	}
	if f, ok := stderr.(*os.File); ok && !isOpen(f) {
		stderr = nil
	}
	if f, ok := stdin.(*os.File); ok && !isTerminal(f) {
		p.stdio.Stdin = f // a file, a pipe, /dev/null: the program reads it itself
	} else if stdin != nil {
		r, w, perr := os.Pipe()
		if perr != nil {
			return nil, perr
		}
		p.theirs, p.mine = append(p.theirs, r), append(p.mine, w)
		p.stdio.Stdin = r
		p.copies = append(p.copies, func() {
			_, _ = io.Copy(w, stdin) // ends at our end of file, or when the program is gone
			_ = w.Close()            // the program's end of file
		})
		if ok {
			// Run in the background, a read of the terminal would stop
			// us (SIGTTIN); ignored, it fails, and the program gets end of
			// file instead.
			ignoreTTIN()
		}
	}
	if p.stdio.Stdout, err = p.output(stdout); err != nil {
		p.abort()
		return nil, err
	}
	outF, _ := stdout.(*os.File)
	errF, _ := stderr.(*os.File)
	if outF != nil && errF != nil && isTerminal(errF) && sameFile(outF, errF) {
		p.stdio.Stderr = p.stdio.Stdout // one terminal: one pipe keeps the order of the lines
	} else if p.stdio.Stderr, err = p.output(stderr); err != nil {
		p.abort()
		return nil, err
	}
	p.outs = make(chan struct{}, p.nOuts)
	return p, nil
}

// output is the program's file for w: w itself, a pipe copied to w, or
// nil (/dev/null) for no w.
func (p *pipeIO) output(w io.Writer) (*os.File, error) {
	if w == nil {
		return nil, nil
	}
	if f, ok := w.(*os.File); ok && !isTerminal(f) {
		return f, nil
	}
	r, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	p.theirs, p.mine = append(p.theirs, pw), append(p.mine, r)
	p.nOuts++
	p.copies = append(p.copies, func() {
		_, _ = io.Copy(w, r) // to the end of file, when the container is gone
		_ = r.Close()
		p.outs <- struct{}{}
	})
	return pw, nil
}

// started closes our copies of the container's ends, so that its end is
// the end of file, and starts the copies.
func (p *pipeIO) started() {
	for _, f := range p.theirs {
		_ = f.Close() // the container holds its own
	}
	for _, cp := range p.copies {
		go cp()
	}
}

// wait waits for the output copies to reach end of file.
func (p *pipeIO) wait() {
	for range p.nOuts {
		<-p.outs
	}
}

// abort closes every pipe of a container that did not start.
func (p *pipeIO) abort() {
	for _, f := range append(p.theirs, p.mine...) {
		_ = f.Close() // unused
	}
}

func isOpen(f *os.File) bool {
	_, err := f.Stat()
	return err == nil
}

func sameFile(a, b *os.File) bool {
	ai, err1 := a.Stat()
	bi, err2 := b.Stat()
	return err1 == nil && err2 == nil && os.SameFile(ai, bi)
}

// prepareRootfs turns --rootfs into a root file system and its image
// config. host and a directory need nothing prepared, and no cache:
// nothing is written for them.
func prepareRootfs(ctx context.Context, cfg *runConfig, src image.Source, host *runtime.Host, stderr io.Writer) (*image.Image, error) {
	switch src.Kind {
	case image.KindHost:
		return &image.Image{Name: src.Name, Source: src, Dir: runtime.HostRootfs}, nil
	case image.KindPath:
		if fi, err := os.Stat(src.Path); err != nil || fi.IsDir() {
			// A directory is used in place; a path that is not there is
			// the runtime's to report ("rootfs: stat ...").
			return &image.Image{Name: src.Name, Source: src, Dir: src.Path}, nil
		}
	}
	log := newLogger(logConsole, "info", stderr)
	cache, err := image.OpenCache(cfg.Cache, log)
	if err != nil {
		return nil, err
	}
	useSubIDs(cache, host)
	rep := image.NewReporter(stderr, writerIsTerminal(stderr), log, 2*time.Second)
	defer rep.Close()
	return cache.Prepare(ctx, src, quietProgress(rep.Report))
}

// quietProgress passes on progress that says something: the work (waiting
// for another process, resolving, downloading, verifying, unpacking,
// pulling) and the ready after it. A source already in the cache prints
// nothing, and a failure is run's error to print.
func quietProgress(report image.ProgressFunc) image.ProgressFunc {
	worked := false
	return func(p image.Progress) {
		switch p.Phase {
		case image.PhaseQueued, image.PhasePreparing, image.PhaseFinishing, image.PhaseFailed:
			return
		case image.PhaseReady:
			if !worked {
				return
			}
		default:
			worked = true
		}
		report(p)
	}
}

// defaultStateDir is PLAYGROUND_STATE_DIR, else the runtime's default.
func defaultStateDir() string {
	if d := getenv("PLAYGROUND_STATE_DIR"); d != "" {
		return d
	}
	return runtime.DefaultStateDir()
}

// defaultCacheDir is PLAYGROUND_CACHE, else the image package's default
// (~/.cache/playground, /var/lib/playground as root), for run and rootfs.
func defaultCacheDir() string {
	if d := getenv("PLAYGROUND_CACHE"); d != "" {
		return d
	}
	return image.DefaultCacheDir()
}
