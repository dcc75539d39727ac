//go:build !unix

package testenv

import (
	"errors"
	"os"
)

// lockFile fails outside Unix, where no test makes a Debian rootfs.
func lockFile(*os.File) error { return errors.ErrUnsupported }
