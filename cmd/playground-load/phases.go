//go:build linux

package main

import "time"

// PhaseFigure is one phase of a container's start over every start a
// measurement made: its median and mean.
type PhaseFigure struct {
	Name   string  `json:"name"`
	P50ms  float64 `json:"p50_ms"`
	MeanMs float64 `json:"mean_ms"`
}

// phaseFigures sums up a child server's phase log.
func phaseFigures(ps []phaseTimes) []PhaseFigure {
	out := make([]PhaseFigure, 0, len(ps))
	for _, p := range ps {
		if len(p.Ns) == 0 {
			continue
		}
		ds := make([]time.Duration, len(p.Ns))
		var sum time.Duration
		for i, n := range p.Ns {
			ds[i] = time.Duration(n)
			sum += ds[i]
		}
		out = append(out, PhaseFigure{Name: p.Name, P50ms: ms(pct(ds, 50)), MeanMs: ms(sum / time.Duration(len(ds)))})
	}
	return out
}

// phaseLayers names what each phase of a start is for, in the words of
// issue 6's layers: the reader's key to the phase table.
var phaseLayers = map[string]string{
	"id range, cgroup":          "the server plans the start: an id range, and on v2 the session's cgroup (limits), which init starts in; a v1 cgroup is made beside the next phase",
	"namespaces, exec of init":  "clone into new namespaces, exec of the sealed copy (memfd) of the binary",
	"cgroup, id maps, network":  "the parent writes id maps, starts the network helper (and, before this build, moved init into its v1 cgroups here)",
	"cgroup entered":            "v1 cgroups: a server's session's init moves its own thread in through tasks files the parent opened (before this build, it waited for the parent's move of the whole process, after its setup)",
	"init running":              "the init's Go runtime starts, until its first line of its own",
	"released":                  "init waits for and reads its configuration",
	"root and mounts":           "overlay root, /proc, /dev, /sys, masks, pivot_root (mounts)",
	"etc, hostname, lo":         "/etc files, hostname, loopback up",
	"pty":                       "the terminal",
	"cgroup namespace, keyring": "a new cgroup namespace and session keyring",
	"capabilities":              "the capability sets cut to the kept list (caps)",
	"no_new_privs, seccomp":     "no_new_privs and the seccomp filter (seccomp)",
	"fork and exec the program": "fork, rlimits and priority, exec of the shell",
	"ready":                     "init's ready message back to the server, the pty's fd with it",
	"exec of the program":       "init executes the shell in its own place (setsid, the terminal, execve: the server's sessions keep no resident init), until the server sees the sync socket close",
}
