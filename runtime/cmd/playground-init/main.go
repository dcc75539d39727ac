// Command playground-init is a container's init and nothing else: the
// init package of the playground server without the server. A server
// built by deploy/build.sh embeds it and executes it, from a sealed
// in-memory copy, for every container's init instead of re-executing its
// own binary. Being a fifth of the size, with a few dozen packages to
// initialise instead of a hundred and forty, it reaches init's first line
// with about half the CPU time and page faults (DESIGN.md has the
// figures). Init is entered from the
// initialisation of package initproc, as in the server's binary; this
// main only answers the server's check of its build stamp.
package main

import (
	"fmt"
	"os"

	"github.com/guntainer/playground/runtime/internal/initproc"
)

func main() {
	if len(os.Args) == 2 && os.Args[1] == "--build-stamp" {
		fmt.Println(initproc.BuildStamp)
		return
	}
	fmt.Fprintln(os.Stderr, "playground-init: a container's init, embedded in the playground server (deploy/build.sh); not for direct use")
	os.Exit(2)
}
