//go:build !linux

package main

import (
	"errors"
	"os"
)

var errNoTerminal = errors.New("terminal control needs Linux")

func isTerminal(*os.File) bool                      { return false }
func terminalSize(*os.File) (uint16, uint16, error) { return 0, 0, errNoTerminal }
func makeRaw(*os.File) (func(), error)              { return nil, errNoTerminal }
