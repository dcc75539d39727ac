package runtime

import (
	"os"
	"path/filepath"
)

// A container's init (and the playground-ids helper) is entered from this
// package's initialisation, not from main: Go initialises every package of
// a program before main runs, and the server's binary holds packages whose
// initialisation costs milliseconds and megabytes a container never uses
// (the embedded page's index, the metrics library's collectors). This
// package imports none of them, so it is initialised before them and its
// init takes the init path at once: measured with GODEBUG=inittrace=1, a
// container's init reached this point about 4 ms after exec instead of
// about 10 ms (on a quiet 2-vCPU machine), having allocated about 0.3 MB
// instead of about 2.1 MB; the init then holds 1.85 MB of anonymous
// memory for the session's life instead of 3.7 MB.
// MaybeInit stays the documented entry point (it also marks the server's
// inherited fds close-on-exec); calling it after this is harmless.
func init() {
	switch filepath.Base(os.Args[0]) {
	case initArg0, idsArg0:
		MaybeInit() // never returns on these paths
	case spawnArg0:
		spawnMain() // never returns
	}
}
