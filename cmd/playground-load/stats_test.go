//go:build linux

package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
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

// A failed start's error carries the reason the server's log gives: the
// client is told only that the log says why (CI once failed with no more).
func TestFailedStartSaysWhy(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "server.log")
	log := `{"level":"info","message":"listening"}
{"level":"error","session":"a","error":"first","message":"start failed"}
not json
{"level":"error","session":"b","error":"clone: resource temporarily unavailable","message":"start failed"}
{"level":"info","message":"session end"}
`
	if err := os.WriteFile(logPath, []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	tg := &target{logPath: logPath}
	closed := closeReason(&websocket.CloseError{Code: websocket.CloseInternalServerErr, Text: "could not start a terminal"})
	err := tg.withServerReason(fmt.Errorf("waiting for the answer: %w; output so far %q", closed, ""))
	if want := "the server's log's last start failure: clone: resource temporarily unavailable"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q, want it to end %q", err, want)
	}
	if !strings.Contains(err.Error(), `server closed the session: 1011 "could not start a terminal"; output`) {
		t.Errorf("error %q: the close's own text changed", err)
	}
	other := closeReason(&websocket.CloseError{Code: websocket.CloseNormalClosure})
	if got := tg.withServerReason(other); got != other {
		t.Errorf("a normal close became %q", got)
	}
}

func TestPairedRatio(t *testing.T) {
	for _, c := range []struct {
		a, b []float64
		want float64
	}{
		// The run of 2026-12-04 22:13 UTC: the medians' ratio 3.80/3.76
		// is 1.01, while round by round self was the faster in two.
		{[]float64{4.20, 3.80, 3.27}, []float64{3.76, 4.11, 3.30}, 3.27 / 3.30},
		{[]float64{2, 4}, []float64{1, 1}, 2},       // the lower middle of an even count
		{[]float64{2, 0, 6}, []float64{1, 1, 2}, 2}, // a round without a figure does not count
		{[]float64{1, 2, 3}, []float64{1}, 1},       // only the rounds both took
		{nil, []float64{1}, 0},
		{[]float64{0}, []float64{1}, 0},
	} {
		if got := pairedRatio(c.a, c.b); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("pairedRatio(%v, %v) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}
