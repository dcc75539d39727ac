//go:build linux

package main

import (
	"cmp"
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

// reportedRound is which of a target's rounds its figures come from: the
// first that failed, so that no failure is hidden, else the round whose
// key is the median (the lower middle of an even count). It also returns
// every round's key, in the order taken.
func reportedRound[T any](rounds []T, failed func(T) bool, key func(T) float64) (int, []float64) {
	keys := make([]float64, len(rounds))
	for i, r := range rounds {
		keys[i] = key(r)
	}
	if i := slices.IndexFunc(rounds, failed); i >= 0 {
		return i, keys
	}
	order := make([]int, len(rounds))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(keys[a], keys[b]) })
	return order[(len(order)-1)/2], keys
}

// pairedRatio is the median of a[i]/b[i] over the rounds both targets
// took (round i of each, taken a few seconds apart as the targets take
// their turns), the lower middle of an even count: a ratio that the
// machine's drift between rounds moves less than the ratio of the two
// targets' medians. 0 when no round of both has a figure.
func pairedRatio(a, b []float64) float64 {
	var rs []float64
	for i := range min(len(a), len(b)) {
		if a[i] > 0 && b[i] > 0 {
			rs = append(rs, a[i]/b[i])
		}
	}
	if len(rs) == 0 {
		return 0
	}
	slices.Sort(rs)
	return rs[(len(rs)-1)/2]
}
