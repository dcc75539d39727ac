package initproc

import (
	"fmt"
	"syscall"
)

// BecomeRoot makes init container root once the parent has written its
// maps, after init's exec: no supplementary groups where the namespace
// allows setgroups (a range of ids is mapped), then gid and uid 0, on
// every thread (Go's syscall package applies them to all threads). It is
// init's first act. With the single-id map setgroups is
// denied: the server's supplementary groups stay, unmapped (nogroup
// inside), as they did when Go set the credential before the exec.
func BecomeRoot(setgroups bool) error {
	if setgroups {
		if err := syscall.Setgroups(nil); err != nil {
			// The server's supplementary groups are host groups: none
			// may stay (newgidmap allows setgroups for a subgid map).
			return fmt.Errorf("setgroups: %w", err)
		}
	}
	if err := syscall.Setresgid(0, 0, 0); err != nil {
		return fmt.Errorf("setresgid 0: %w (are the gid maps written?)", err)
	}
	if err := syscall.Setresuid(0, 0, 0); err != nil {
		return fmt.Errorf("setresuid 0: %w (are the uid maps written?)", err)
	}
	return nil
}
