//go:build linux

package main

import "math"

// PodFigure is how many sessions a pod holds at the resources it requests
// (issue 11), worked out from this run's figures, and how:
//
//   - memory: the request less the server's own memory with no session,
//     over the host memory each idle session costs (the many measurement:
//     the drop in MemAvailable per session, server, container processes
//     and kernel together);
//   - CPU: an idle session costs none, so the CPU bound is for sessions
//     that all type at once, at typingRate keystrokes a second each, each
//     keystroke costing what the echo measurement found the server and
//     the processes under it to use per round trip while idle (the
//     kernel's own threads not counted).
//
// The pod holds the smaller of the two. Startup is the time from the
// server's exec to /readyz 200 (the startup measurement), which the pod's
// own start (image, volumes, probes) adds to.
type PodFigure struct {
	MemoryMiB float64 `json:"memory_request_mib"`
	CPUs      float64 `json:"cpu_request"`
	// From the many measurement of Target.
	Target            string  `json:"target"`
	ServerIdleMiB     float64 `json:"server_idle_mib"`
	HostKiBPerSession float64 `json:"host_kib_per_session"`
	MemorySessions    int     `json:"memory_sessions"`
	// From the echo measurement of Target.
	CPUPerKeyMs float64 `json:"cpu_per_key_ms,omitempty"`
	KeysPerS    float64 `json:"keys_per_s"`
	CPUSessions int     `json:"cpu_sessions,omitempty"`
	Sessions    int     `json:"sessions"`
	// StartupMs is the startup measurement's p50 of StartupTarget.
	StartupMs     float64 `json:"startup_ms,omitempty"`
	StartupTarget string  `json:"startup_target,omitempty"`
}

// typingRate is the pace of the CPU bound: a fast typist's, for every
// session at once.
const typingRate = 5.0

// podFigure works the figure out from self's figures (or, with no self,
// none), for requests of memory bytes and cpus.
func (r *Report) podFigure() *PodFigure {
	self := r.find("self")
	if self == nil || self.Many == nil || self.Many.HostKiBPerSession <= 0 || r.podMemory <= 0 {
		return nil
	}
	p := &PodFigure{
		MemoryMiB:         round(float64(r.podMemory)/mib, 0),
		CPUs:              r.podCPU,
		Target:            "self",
		ServerIdleMiB:     self.Many.ServerRSSBeforeMiB,
		HostKiBPerSession: self.Many.HostKiBPerSession,
		KeysPerS:          typingRate,
	}
	room := float64(r.podMemory)/kib - p.ServerIdleMiB*1024
	p.MemorySessions = max(0, int(math.Floor(room/p.HostKiBPerSession)))
	p.Sessions = p.MemorySessions
	if self.Echo != nil && self.Echo.IdleCPUPerKeyMs > 0 {
		p.CPUPerKeyMs = self.Echo.IdleCPUPerKeyMs
		perSession := p.CPUPerKeyMs / 1000 * typingRate // CPUs
		p.CPUSessions = int(math.Floor(r.podCPU / perSession))
		p.Sessions = min(p.Sessions, p.CPUSessions)
	}
	for _, name := range []string{"serve", "self"} {
		if t := r.find(name); t != nil && t.Startup != nil && t.Startup.P50ms > 0 {
			p.StartupMs, p.StartupTarget = t.Startup.P50ms, name
			break
		}
	}
	return p
}
