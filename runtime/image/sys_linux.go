package image

import (
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// DefaultOwners is KeepOwners for root in the host's user namespace, whose
// server gives each container an id range and an id-mapped view of the
// tree, and OwnEntries otherwise (root inside a user namespace cannot
// give files ids it has not mapped).
func DefaultOwners() Owners {
	if os.Geteuid() == 0 && initialUserNS() {
		return KeepOwners
	}
	return OwnEntries
}

func initialUserNS() bool {
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return len(f) == 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295"
}

// syncTree writes the file system holding dir to disk, once for the whole
// unpack, so a tree moved into the cache survives a crash whole.
func syncTree(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}
