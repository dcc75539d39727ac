package runtime

// vforkHere: on this architecture a start whose id maps are written after
// init's exec is cloned with CLONE_VM|CLONE_VFORK (cloneInit).
const vforkHere = true

// rawVforkClone3 is clone3(args, size) for a CLONE_VM|CLONE_VFORK child
// without a stack of its own (vfork_linux_amd64.s).
func rawVforkClone3(args, size uintptr) (pid, errno uintptr)
