//go:build linux

package main

import (
	"slices"
	"testing"
)

// TestReportedRound: a target's figures come from its median round, or
// from a round that failed, so that no failure hides behind a median.
func TestReportedRound(t *testing.T) {
	type round struct {
		v   float64
		bad bool
	}
	failed := func(r round) bool { return r.bad }
	key := func(r round) float64 { return r.v }
	for _, tc := range []struct {
		rounds []round
		want   int
	}{
		{[]round{{3, false}, {1, false}, {2, false}}, 2},
		{[]round{{1, false}, {2, false}, {9, false}, {3, false}}, 1}, // the lower middle
		{[]round{{1, false}, {5, true}, {2, false}}, 1},
		{[]round{{4, false}}, 0},
	} {
		got, keys := reportedRound(tc.rounds, failed, key)
		if got != tc.want {
			t.Errorf("%v: round %d, want %d", tc.rounds, got, tc.want)
		}
		var want []float64
		for _, r := range tc.rounds {
			want = append(want, r.v)
		}
		if !slices.Equal(keys, want) {
			t.Errorf("%v: keys %v, want %v", tc.rounds, keys, want)
		}
	}
}
