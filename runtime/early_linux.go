package runtime

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/guntainer/playground/runtime/internal/initproc"
)

// A container's init is entered from the initialisation of package
// initproc, which this package imports, not from main: see initproc's
// package comment for why. The playground-ids helper and the spawner are
// entered from this package's initialisation, before the server's other
// packages (the embedded page's index, the metrics library's collectors),
// which they never use: measured with GODEBUG=inittrace=1, a process
// reached this point about 4 ms after exec instead of about 10 ms (on a
// quiet 2-vCPU machine), having allocated about 0.3 MB instead of about
// 2.1 MB. MaybeInit stays the documented entry point (it also marks the
// server's inherited fds close-on-exec); calling it after this is
// harmless.
func init() {
	switch filepath.Base(os.Args[0]) {
	case idsArg0:
		MaybeInit() // never returns on this path
	case spawnArg0:
		spawnMain() // never returns
	}
}

// MaybeInit is the entry point of the runtime's helper processes. Call it
// first thing in main (and in TestMain): when this process is one of them
// (the playground-ids helper), it does its work and exits, never
// returning; otherwise it returns at once. A container's init never gets
// here: it is entered, and ends, in initproc's initialisation.
//
// Outside a container, it marks every fd from 3 on close-on-exec: fds this
// process inherited (from a shell, a supervisor) must not pass on to a
// container's init or anything else it runs.
func MaybeInit() {
	if filepath.Base(os.Args[0]) == idsArg0 {
		os.Exit(idsMain(os.Args[1:]))
	}
	if err := initproc.CloseOnExecFrom(3); err != nil {
		fmt.Fprintln(os.Stderr, "playground: mark inherited fds close-on-exec:", err)
		os.Exit(1)
	}
}
