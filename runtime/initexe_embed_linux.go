//go:build playground_embedinit

package runtime

import _ "embed" // the small init binary: see initExecutable

// embeddedInit is runtime/cmd/playground-init, built by deploy/build.sh
// into initbin/ (or given to go build by -overlay) before this binary.
//
//go:embed initbin/playground-init
var embeddedInit []byte
