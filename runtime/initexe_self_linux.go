//go:build !playground_embedinit

package runtime

// embeddedInit is empty: an ordinary build re-executes itself as every
// container's init (see initExecutable).
var embeddedInit []byte
