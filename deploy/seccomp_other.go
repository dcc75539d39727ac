//go:build !linux

package deploy

import "errors"

// PodProfileJSON needs docker's profile, which its package builds on
// Linux only.
func PodProfileJSON() ([]byte, error) {
	return nil, errors.New("deploy: the seccomp profile is generated on Linux")
}
