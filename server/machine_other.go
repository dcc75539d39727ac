//go:build !linux

package server

import "runtime"

// machineMemory is unknown here: the cap goes by cores alone.
func machineMemory() int64 { return 0 }

func machineCores() int { return runtime.NumCPU() }
