//go:build !linux

package main

import "os"

func termiosOf(*os.File) (struct{}, error) { return struct{}{}, errNoTerminal }
