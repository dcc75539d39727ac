//go:build linux

package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// The flooding sessions' clients run in a process of their own, this
// binary re-executed under the name floodArg0, in a session of its own.
// In the measuring process they would share its Go scheduler with the
// client whose echo is timed: with every P busy reading floods, Go polls
// the network for that client's answer only every 10 ms (sysmon), and the
// echo measured that, not the server. A real server's clients are other
// machines; here they are another process, at the same priority as
// everything else, which still costs this machine their CPU.
//
// The parent talks to it over its stdin and stdout, a line each way:
//
//	child:  flowing                       every session delivers
//	parent: count    child: received N sent M
//	                                      bytes received and, from hostile
//	                                      clients, messages sent so far
//	parent closes stdin: the child ends every session and exits

const floodArg0 = "playground-load-flood"

// maybeFlood runs the flood process and exits when this process is one.
func maybeFlood() {
	if filepath.Base(os.Args[0]) != floodArg0 {
		return
	}
	if err := floodMain(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, floodArg0+":", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// floodOptions say what the flood process opens.
type floodOptions struct {
	URL  string // the server's ws:// URL; "" for raw ptys
	Home string // raw: the shells' HOME
	Fast int    // sessions read as fast as they come
	Slow int    // sessions read slowly: one frame every slowEvery
	// Hostile sessions' clients send their own messages without pause
	// (hostileMessages, in turn) and read what comes back as fast as it
	// comes. A process with any runs at the lowest CPU priority
	// (lowestPriority).
	Hostile int
}

// slowEvery is a slow reader's pace: a frame every 50 ms, far slower than
// a flood prints (issue 8: memory must stay bounded whatever a program
// prints to a client that reads slowly).
const slowEvery = 50 * time.Millisecond

func (o floodOptions) args() []string {
	return []string{"--url", o.URL, "--home", o.Home, "--fast", strconv.Itoa(o.Fast), "--slow", strconv.Itoa(o.Slow),
		"--hostile", strconv.Itoa(o.Hostile)}
}

func floodMain(args []string, in io.Reader, out io.Writer) error {
	var o floodOptions
	fs := flag.NewFlagSet(floodArg0, flag.ContinueOnError)
	fs.StringVar(&o.URL, "url", "", "server URL; empty for raw ptys")
	fs.StringVar(&o.Home, "home", os.TempDir(), "raw shells' HOME")
	fs.IntVar(&o.Fast, "fast", 0, "sessions read at once")
	fs.IntVar(&o.Slow, "slow", 0, "sessions read slowly")
	fs.IntVar(&o.Hostile, "hostile", 0, "sessions whose clients send without pause")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.Hostile > 0 {
		if o.URL == "" {
			return errors.New("hostile clients need a server (--url)")
		}
		if err := lowestPriority(); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	t := &target{name: "flood"}
	if o.URL == "" {
		t.open = func(context.Context) (session, error) { return openRaw(o.Home) }
	} else {
		t.open = wsOpener(o.URL)
	}
	startCtx, stop := context.WithTimeout(ctx, 2*time.Minute)
	f, err := startFlood(startCtx, t, o.Fast, o.Slow, o.Hostile)
	stop()
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "flowing")
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		if sc.Text() == "count" {
			fmt.Fprintln(out, "received", f.received.Load(), "sent", f.sent.Load())
		}
	}
	n, err := f.stop()
	fmt.Fprintln(out, "received", n, "sent", f.sent.Load())
	return err
}

// lowestPriority puts this process at the lowest CPU priority an ordinary
// user can give it: its autogroup (the group the kernel's scheduler gives
// each session, where autogroups are on) and each of its threads at nice
// 19, so that threads made later, which inherit their maker's, are too.
// Hostile clients stand for clients on other machines: their own CPU
// should not be taken from the server they send to, as it would be at an
// equal share on this one.
func lowestPriority() error {
	if err := os.WriteFile("/proc/self/autogroup", []byte("19"), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("lowest priority: %w", err)
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return fmt.Errorf("lowest priority: %w", err)
	}
	for _, e := range tasks {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, 19); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("lowest priority: thread %d: %w", tid, err)
		}
	}
	return nil
}

// floodProc is a running flood process, seen from the measuring one.
type floodProc struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
	errb strings.Builder
	mu   sync.Mutex

	endOnce sync.Once
	endN    int64
	endErr  error
}

// startFloodProc starts the flood process for t with o's sessions (its URL
// t's) and returns once every session delivers.
func startFloodProc(ctx context.Context, t *target, o floodOptions) (*floodProc, error) {
	o.URL = t.url
	p := &floodProc{}
	p.cmd = &exec.Cmd{
		Path: "/proc/self/exe",
		Args: append([]string{floodArg0}, o.args()...),
		Env:  os.Environ(),
		// Its own session, so that it competes for the CPU as a process of
		// its own would, not inside this one's share; never outliving us.
		SysProcAttr: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setsid: true},
		Stderr:      &lockedWriter{w: &p.errb, mu: &p.mu},
	}
	var err error
	if p.in, err = p.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p.out = bufio.NewScanner(stdout)
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the flood process: %w", err)
	}
	line := make(chan string, 1)
	go func() {
		if p.out.Scan() {
			line <- p.out.Text()
		}
		close(line)
	}()
	select {
	case l, ok := <-line:
		if ok && l == "flowing" {
			return p, nil
		}
		_, err := p.end()
		return nil, fmt.Errorf("the flood did not start: %v", err)
	case <-ctx.Done():
		_, _ = p.end() // failing already
		return nil, fmt.Errorf("waiting for the flood to flow: %w", ctx.Err())
	}
}

// received asks how many bytes the floods' clients have received so far.
func (p *floodProc) received() (int64, error) {
	n, _, err := p.counts()
	return n, err
}

// counts asks how many bytes the clients have received so far, and how
// many messages the hostile ones have sent.
func (p *floodProc) counts() (received, sent int64, err error) {
	if _, err := fmt.Fprintln(p.in, "count"); err != nil {
		return 0, 0, err
	}
	if !p.out.Scan() {
		return 0, 0, errors.New("the flood process ended")
	}
	return parseCounts(p.out.Text())
}

// end stops the flood process and returns what it received in all. Later
// calls return the same.
func (p *floodProc) end() (int64, error) {
	p.endOnce.Do(func() { p.endN, p.endErr = p.stop() })
	return p.endN, p.endErr
}

func (p *floodProc) stop() (int64, error) {
	_ = p.in.Close() // tells it to end
	var n int64
	var perr error
	for p.out.Scan() {
		if v, _, err := parseCounts(p.out.Text()); err == nil {
			n = v
		} else {
			perr = err
		}
	}
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill() // stuck: it is ours to kill
		err = <-done
	}
	if err != nil {
		p.mu.Lock()
		msg := strings.TrimSpace(p.errb.String())
		p.mu.Unlock()
		return n, fmt.Errorf("flood process: %v: %s", err, msg)
	}
	return n, perr
}

// parseCounts parses the flood process's "received N sent M".
func parseCounts(line string) (received, sent int64, err error) {
	bad := fmt.Errorf("flood process said %q", line)
	f := strings.Fields(line)
	if len(f) != 4 || f[0] != "received" || f[2] != "sent" {
		return 0, 0, bad
	}
	received, rerr := strconv.ParseInt(f[1], 10, 64)
	sent, serr := strconv.ParseInt(f[3], 10, 64)
	if rerr != nil || serr != nil {
		return 0, 0, bad
	}
	return received, sent, nil
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// flood is sessions that print without end, each read and discarded by a
// goroutine of its own: fast ones as fast as they come, slow ones a frame
// every slowEvery; and hostile ones, whose clients send their own
// messages without pause from a goroutine of their own each.
type flood struct {
	sessions []session
	readers  sync.WaitGroup // and the hostile senders
	received atomic.Int64
	sent     atomic.Int64 // hostile clients' messages
	stopping atomic.Bool
	mu       sync.Mutex
	err      error // the first reader failure before stop
}

// startFlood opens fast+slow+hostile sessions, starts each printing (the
// hostile ones' clients sending), and returns once every fast one has
// delivered a megabyte and every slow one a frame, and the hostile ones'
// messages come back.
func startFlood(ctx context.Context, t *target, fast, slow, hostile int) (*flood, error) {
	f := &flood{}
	n := fast + slow + hostile
	flowing := make(chan struct{}, n)
	for i := range n {
		s, _, err := openAndAsk(ctx, t)
		if err == nil {
			if i < fast+slow {
				err = s.input(ctx, floodCommand)
			} else {
				err = startCat(ctx, s)
			}
			if err != nil {
				s.close()
			}
		}
		if err != nil {
			_, _ = f.stop() // failing already
			return nil, err
		}
		f.sessions = append(f.sessions, s)
		pace, first := time.Duration(0), int64(1<<20)
		switch {
		case i >= fast+slow:
			first = 1
			f.readers.Go(func() { f.send(s) })
		case i >= fast:
			pace, first = slowEvery, 1
		}
		f.readers.Go(func() { f.read(s, pace, first, flowing) })
	}
	for range n {
		select {
		case <-flowing:
		case <-ctx.Done():
			_, _ = f.stop() // failing already
			return nil, fmt.Errorf("waiting for the flood to flow: %w", ctx.Err())
		}
	}
	f.mu.Lock()
	err := f.err
	f.mu.Unlock()
	if err != nil {
		_, _ = f.stop()
		return nil, fmt.Errorf("a flooding session failed: %w", err)
	}
	return f, nil
}

// hostileMessages are what a hostile client sends, in turn, without
// pause: a keystroke, a resize to the largest terminal the server keeps
// (server/vt's MaxCols), a keystroke, and a resize to the smallest. The
// two that, sent this way, had one connection take most of a CPU of the
// server's before it gave a client's messages turns (issue 7).
var hostileMessages = [][]byte{
	{cmdInput, 'a'},
	[]byte(`1{"columns":1000,"rows":1000}`),
	{cmdInput, 'a'},
	[]byte(`1{"columns":2,"rows":2}`),
}

// send is a hostile client: it sends hostileMessages without pause until
// stop aborts its session. Its session runs cat, so that every keystroke
// comes back as output, which read takes.
func (f *flood) send(s session) {
	c, ok := s.(*client)
	if !ok {
		f.fail(errors.New("a hostile client needs a server"))
		s.abort() // so that its reader, waiting for the keystrokes back, ends too
		return
	}
	_ = c.conn.SetWriteDeadline(time.Time{}) // as long as the server reads; stop aborts it
	for i := 0; ; i++ {
		if err := c.conn.WriteMessage(websocket.BinaryMessage, hostileMessages[i%len(hostileMessages)]); err != nil {
			if !f.stopping.Load() {
				f.fail(err)
			}
			return
		}
		f.sent.Add(1)
	}
}

// fail records a session's failure before stop, the first one counting.
func (f *flood) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = err
	}
}

// read discards a flooding session's output until stop aborts it, a frame
// every pace (0: at once). It signals flowing once, after first bytes.
func (f *flood) read(s session, pace time.Duration, first int64, flowing chan<- struct{}) {
	var mine int64
	ctx := context.Background() // stop aborts the session, which ends output
	for {
		if pace > 0 {
			time.Sleep(pace)
		}
		b, err := s.output(ctx)
		if err != nil {
			if !f.stopping.Load() {
				f.fail(err)
				if mine < first {
					flowing <- struct{}{} // let startFlood see the failure rather than wait
				}
			}
			return
		}
		before := mine
		mine += int64(len(b))
		f.received.Add(int64(len(b)))
		if before < first && mine >= first {
			flowing <- struct{}{}
		}
	}
}

// stop ends every flooding session, joins the readers, and returns what
// they received and the first failure.
func (f *flood) stop() (int64, error) {
	f.stopping.Store(true)
	for _, s := range f.sessions {
		s.abort()
	}
	f.readers.Wait()
	for _, s := range f.sessions {
		s.close()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil && !errors.Is(f.err, context.Canceled) {
		return f.received.Load(), f.err
	}
	return f.received.Load(), nil
}
