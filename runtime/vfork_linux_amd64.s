#include "textflag.h"

// func rawVforkClone3(args, size uintptr) (pid, errno uintptr)
//
// clone3 for a child that shares this thread's stack (CLONE_VM with
// CLONE_VFORK and no stack of its own), as syscall's rawVforkSyscall: the
// return address is kept in R12, not on the stack, which the child uses
// and overwrites before this thread runs again; each puts it back before
// it returns.
TEXT ·rawVforkClone3(SB),NOSPLIT|NOFRAME,$0-32
	MOVQ	args+0(FP), DI
	MOVQ	size+8(FP), SI
	MOVQ	$0, DX
	MOVQ	$0, R10
	MOVQ	$0, R8
	MOVQ	$0, R9
	MOVQ	$435, AX // SYS_clone3
	POPQ	R12
	SYSCALL
	PUSHQ	R12
	CMPQ	AX, $0xfffffffffffff001
	JLS	ok
	MOVQ	$-1, pid+16(FP)
	NEGQ	AX
	MOVQ	AX, errno+24(FP)
	RET
ok:
	MOVQ	AX, pid+16(FP)
	MOVQ	$0, errno+24(FP)
	RET
