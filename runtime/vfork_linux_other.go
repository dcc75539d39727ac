//go:build linux && !amd64

package runtime

// vforkHere: elsewhere a start is cloned as a copy of the spawner
// (cloneInit), as Go's ForkExec does for a new user namespace.
const vforkHere = false

func rawVforkClone3(args, size uintptr) (pid, errno uintptr) {
	panic("rawVforkClone3: not on this architecture")
}
