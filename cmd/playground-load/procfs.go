//go:build linux

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/procfs"
)

// What /proc says about a server and the processes under it. Everything
// here reads only; a process that ends while it is being read is skipped.

// procSnapshot is a server process and its descendants at one moment.
type procSnapshot struct {
	RSS         int64 // the server process's resident memory, bytes
	Threads     int
	FDs         int
	Mounts      int   // lines of its mountinfo: mounts in its mount namespace
	Descendants int   // processes under it: containers, shells, bwrap ...
	DescRSS     int64 // their resident memory, bytes, shared pages counted in each
	DescPSS     int64 // their proportional share, bytes (RSS where unreadable)
}

// snapshot reads pid and its descendants.
func snapshot(pid int) (procSnapshot, error) {
	var s procSnapshot
	st, err := readStatus(pid)
	if err != nil {
		return s, fmt.Errorf("server pid %d: %w", pid, err)
	}
	s.RSS, s.Threads = st.rss, st.threads
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		s.FDs = len(ents)
	} else {
		s.FDs = -1 // not ours to read
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid)); err == nil {
		s.Mounts = bytes.Count(b, []byte("\n"))
	} else {
		s.Mounts = -1
	}
	for _, d := range descendants(pid) {
		dst, err := readStatus(d)
		if err != nil {
			continue // ended meanwhile
		}
		s.Descendants++
		s.DescRSS += dst.rss
		if pss, err := readPSS(d); err == nil {
			s.DescPSS += pss
		} else {
			s.DescPSS += dst.rss
		}
	}
	return s, nil
}

type status struct {
	rss     int64
	threads int
}

func readStatus(pid int) (status, error) {
	var st status
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return st, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		switch k {
		case "VmRSS":
			st.rss = kB(v)
		case "Threads":
			st.threads, _ = strconv.Atoi(strings.TrimSpace(v)) // 0 if odd
		}
	}
	return st, sc.Err()
}

// readPSS is a process's proportional set size: each shared page divided
// among the processes sharing it, so the sum over processes is what they
// really hold.
func readPSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "Pss:"); ok {
			return kB(v), nil
		}
	}
	return 0, fmt.Errorf("pid %d: no Pss in smaps_rollup", pid)
}

// kB parses "  1234 kB" into bytes.
func kB(v string) int64 {
	f := strings.Fields(v)
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.ParseInt(f[0], 10, 64) // 0 if odd
	return n << 10
}

// descendants lists every process under pid, from each process's parent
// in /proc/PID/stat.
func descendants(pid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		pp, err := ppid(p)
		if err != nil {
			continue
		}
		children[pp] = append(children[pp], p)
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

func ppid(pid int) (int, error) {
	st, err := procStat(pid)
	return st.PPID, err
}

// procStat reads process pid's /proc/PID/stat.
func procStat(pid int) (procfs.ProcStat, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return procfs.ProcStat{}, err
	}
	return p.Stat()
}

// cpuTime is the CPU time, user and system, a process has used; 0 when
// unknown. Its resolution is the kernel's clock tick, 10 ms at USER_HZ 100.
func cpuTime(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	st, err := procStat(pid)
	if err != nil {
		return 0
	}
	return time.Duration(st.UTime+st.STime) * time.Second / userHZ
}

// hostCPU is the machine's busy and total CPU time so far, in clock
// ticks, from /proc/stat: busy is all but idle and iowait.
func hostCPU() (busy, total int64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return 0, 0
	}
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64) // 0 if odd
		if i >= 8 {
			break // guest time is counted in user already
		}
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}

// cpuMeter measures how busy the machine is over an interval.
type cpuMeter struct{ busy, total int64 }

func startCPU() cpuMeter {
	b, t := hostCPU()
	return cpuMeter{b, t}
}

// busyPct is the machine's busy share since start, in percent of all CPUs.
func (m cpuMeter) busyPct() float64 {
	b, t := hostCPU()
	if t <= m.total {
		return 0
	}
	return round(100*float64(b-m.busy)/float64(t-m.total), 0)
}

// userHZ is the unit of /proc's CPU times; 100 on every Linux
// architecture Go supports but alpha.
const userHZ = 100

// exe is the path of the program a process runs, or "".
func exe(pid int) string {
	p, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)) // "" when unreadable
	return p
}

// cmdline is a process's command line, or nil.
func cmdline(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}

// memAvailable is the host's MemAvailable, bytes.
func memAvailable() int64 { return meminfo("MemAvailable") }

// memTotal is the host's MemTotal, bytes.
func memTotal() int64 { return meminfo("MemTotal") }

func meminfo(key string) int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			return kB(v)
		}
	}
	return 0
}

// selfRSS is this process's resident memory, bytes.
func selfRSS() int64 {
	st, err := readStatus(os.Getpid())
	if err != nil {
		return 0
	}
	return st.rss
}

// listenerPid finds the process with a listening TCP socket on port, from
// /proc/net/tcp{,6} and every process's descriptors; 0 if none is visible.
func listenerPid(port int) int {
	if port <= 0 {
		return 0
	}
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for line := range strings.Lines(string(b)) {
			fs := strings.Fields(line)
			// sl local_address rem_address st ... inode (10th)
			if len(fs) < 10 || fs[3] != "0A" { // 0A: LISTEN
				continue
			}
			_, hexPort, ok := strings.Cut(fs[1], ":")
			if !ok {
				continue
			}
			if p, err := strconv.ParseInt(hexPort, 16, 32); err == nil && int(p) == port {
				inodes["socket:["+fs[9]+"]"] = true
			}
		}
	}
	if len(inodes) == 0 {
		return 0
	}
	ents, _ := os.ReadDir("/proc") // empty when unreadable
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		fds, _ := os.ReadDir(filepath.Join("/proc", e.Name(), "fd")) // others' are unreadable
		for _, fd := range fds {
			if l, err := os.Readlink(filepath.Join("/proc", e.Name(), "fd", fd.Name())); err == nil && inodes[l] {
				return pid
			}
		}
	}
	return 0
}

// runDelay is how long the threads of pid have waited on a CPU's run
// queue, runnable but not running, in all (the second field of each
// /proc/PID/task/TID/schedstat; threads that ended are not counted); 0
// when unknown.
func runDelay(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	dir := fmt.Sprintf("/proc/%d/task", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var sum int64
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "schedstat"))
		if err != nil {
			continue // ended meanwhile
		}
		f := strings.Fields(string(b))
		if len(f) < 2 {
			continue
		}
		n, _ := strconv.ParseInt(f[1], 10, 64) // 0 if odd
		sum += n
	}
	return time.Duration(sum)
}

// loadAvg is the machine's load average over the last minute, from
// /proc/loadavg: how many tasks were running or waiting to run, on
// average. Other work on the machine shows here.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64) // 0 if odd
	return v
}

// treeCPU is the CPU time pid and every process under it have used (those
// still running); 0 when unknown.
func treeCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	d := cpuTime(pid)
	for _, c := range descendants(pid) {
		d += cpuTime(c)
	}
	return d
}
