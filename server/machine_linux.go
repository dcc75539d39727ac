package server

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// machineMemory is the memory this process may use: the machine's, or its
// cgroup's limit when that is lower (a container, a Kubernetes pod).
func machineMemory() int64 {
	var si unix.Sysinfo_t
	mem := int64(0)
	if unix.Sysinfo(&si) == nil {
		mem = int64(si.Totalram) * int64(si.Unit)
	}
	if lim := cgroupMemoryLimit(); lim > 0 && (mem == 0 || lim < mem) {
		mem = lim
	}
	return mem
}

// cgroupMemoryLimit reads the memory limit of this process's cgroup (v2,
// else v1); 0 when there is none or it cannot be read.
func cgroupMemoryLimit() int64 {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return 0
	}
	defer f.Close()
	var v2path, v1path string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			v2path = parts[2]
		case strings.Contains(","+parts[1]+",", ",memory,"):
			v1path = parts[2]
		}
	}
	read := func(p string) int64 {
		b, err := os.ReadFile(p)
		if err != nil {
			return 0
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil || n <= 0 || n >= 1<<62 {
			return 0 // "max", or v1's "no limit" (a huge number)
		}
		return n
	}
	if v1path != "" {
		if n := read("/sys/fs/cgroup/memory" + v1path + "/memory.limit_in_bytes"); n > 0 {
			return n
		}
	}
	if v2path != "" {
		return read("/sys/fs/cgroup" + v2path + "/memory.max")
	}
	return 0
}

func machineCores() int { return min(runtime.NumCPU(), runtime.GOMAXPROCS(0)) }
