package runtime

// TreeOwner is one entry of a tree given to the subordinate ids
// (SubIDs.OwnTree): its owner inside the container and its mode.
type TreeOwner struct {
	// Path is the entry's path inside the tree, with no symlink on the
	// way ("usr/bin/passwd"; "." for the tree itself).
	Path string `json:"p"`
	// UID and GID are container ids, 0 to 65535.
	UID int `json:"u"`
	GID int `json:"g"`
	// Mode is the permission bits and setuid, setgid and sticky
	// (0o4755), set after the owner; 0 for a symlink, which has none.
	Mode uint32 `json:"m,omitempty"`
}
