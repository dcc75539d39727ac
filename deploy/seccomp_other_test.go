//go:build !linux

package deploy

// Elsewhere the test binary is only the tests.
func maybeUnderProfile() {}
func maybeSession()      {}
