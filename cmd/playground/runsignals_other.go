//go:build !unix

package main

import "os"

// Outside Unix there are no user signals, no SIGWINCH and no job control;
// containers need Linux there anyway (runtime's stubs say so).
var (
	userSignals   []os.Signal
	resizeSignals []os.Signal
)

func ignoreTTIN() {}
