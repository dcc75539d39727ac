//go:build !linux

package runtime

// Spawner reports the helper process that starts containers: none here.
func Spawner() (pid, fd int) { return 0, -1 }
