//go:build !race

package runtime

// raceDataOverhead: see race_on.go. None without the race detector.
const raceDataOverhead = 0
