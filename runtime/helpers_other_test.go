//go:build !linux

package runtime

func beforeTests() error { return nil }

func maybeAttacker() {}

func afterTests() {}

func closeSharedHosts() error { return nil }
