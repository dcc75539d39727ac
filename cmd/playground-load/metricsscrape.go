//go:build linux

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// metric reads one unlabelled gauge or counter from a playground server's
// /metrics, its public Prometheus text.
func (t *target) metric(ctx context.Context, name string) (float64, error) {
	if t.httpURL == "" {
		return 0, errors.New("no /metrics")
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.httpURL+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := statsClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("/metrics: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("/metrics has no %s", name)
}

// waitMetric polls a metric until ok says it is where it should be.
func (t *target) waitMetric(ctx context.Context, name string, ok func(float64) bool) (float64, error) {
	for {
		v, err := t.metric(ctx, name)
		if err == nil && ok(v) {
			return v, nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = fmt.Errorf("%s stayed at %g", name, v)
			}
			return v, fmt.Errorf("%w: %v", ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
