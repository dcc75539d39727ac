package initproc

import (
	"fmt"
	"syscall"
)

// BecomeRoot makes init container root once the parent has written its
// maps (Map): no supplementary groups, then gid and uid 0, on every
// thread (Go's syscall package applies them to all threads). It is init's
// first act in the subordinate-id mode.
func BecomeRoot() error {
	if err := syscall.Setgroups(nil); err != nil {
		// The server's supplementary groups are host groups: none may
		// stay (newgidmap allows setgroups for a subgid map).
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setresgid(0, 0, 0); err != nil {
		return fmt.Errorf("setresgid 0: %w (are the gid maps written?)", err)
	}
	if err := syscall.Setresuid(0, 0, 0); err != nil {
		return fmt.Errorf("setresuid 0: %w (are the uid maps written?)", err)
	}
	return nil
}
