//go:build !linux

// Command playground-load measures web terminal servers from the outside;
// it reads the servers' figures from /proc, so it runs on Linux only.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "playground-load: needs Linux (it reads servers' figures from /proc)")
	os.Exit(1)
}
