//go:build !unix

package runtime

import "syscall"

var signalNames = map[syscall.Signal]string{
	syscall.SIGINT: "INT", syscall.SIGKILL: "KILL", syscall.SIGTERM: "TERM",
}
