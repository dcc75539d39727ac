//go:build linux

package main

import (
	"math"
	"slices"
	"time"
)

// pct is the p-th percentile of ds by the nearest-rank method: the
// smallest sample that at least p% of the samples are at or below. p=100
// is the maximum. ds is not modified.
func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	rank = max(1, min(rank, len(s)))
	return s[rank-1]
}

// ms is d in milliseconds, rounded to microseconds.
func ms(d time.Duration) float64 { return round(float64(d)/float64(time.Millisecond), 3) }

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

const (
	kib = 1 << 10
	mib = 1 << 20
)
