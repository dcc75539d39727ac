package deploy

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

// The autoscaler's queries run on Prometheus's own query engine over a
// few series held in memory (the engine is real; the storage is a list,
// since Prometheus's TSDB would bring a Kubernetes client along).

type floatSample struct {
	t int64
	f float64
}

func (s floatSample) T() int64                      { return s.t }
func (s floatSample) F() float64                    { return s.f }
func (s floatSample) H() *histogram.Histogram       { return nil }
func (s floatSample) FH() *histogram.FloatHistogram { return nil }
func (s floatSample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }

type listSeriesSet struct {
	series []storage.Series
	i      int
}

func (s *listSeriesSet) Next() bool                        { s.i++; return s.i <= len(s.series) }
func (s *listSeriesSet) At() storage.Series                { return s.series[s.i-1] }
func (s *listSeriesSet) Err() error                        { return nil }
func (s *listSeriesSet) Warnings() annotations.Annotations { return nil }

// memStorage holds series of one sample each, at time 0.
type memStorage []storage.Series

func (m memStorage) Querier(_, _ int64) (storage.Querier, error) {
	return &storage.MockQuerier{SelectMockFunction: func(_ bool, _ *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
		var out []storage.Series
	next:
		for _, s := range m {
			for _, matcher := range ms {
				if !matcher.Matches(s.Labels().Get(matcher.Name)) {
					continue next
				}
			}
			out = append(out, s)
		}
		sort.Slice(out, func(i, j int) bool { return labels.Compare(out[i].Labels(), out[j].Labels()) < 0 })
		return &listSeriesSet{series: out}
	}}, nil
}

// sessionsActive is the gauge as scraped: namespace, pod → value.
func sessionsActive(pods map[[2]string]float64) memStorage {
	var m memStorage
	for k, v := range pods {
		lset := labels.FromStrings("__name__", "playground_sessions_active", "namespace", k[0], "pod", k[1])
		m = append(m, storage.NewListSeries(lset, []chunks.Sample{floatSample{0, v}}))
	}
	return m
}

// TestAutoscalerQueries: the ScaledObject's two queries give the sessions
// of this namespace, and one more than the highest ordinal holding a
// session (no value, which KEDA reads as 0, when none does).
func TestAutoscalerQueries(t *testing.T) {
	b := build(t, "overlays/example")
	queries := map[string]string{}
	for _, tr := range b.scaled.Spec.Triggers {
		queries[tr.Name] = tr.Metadata["query"]
	}
	ns := b.namespace.Name
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 100000, Timeout: 10 * time.Second, LookbackDelta: 5 * time.Minute})
	for _, tc := range []struct {
		name, trigger string
		pods          map[[2]string]float64
		want          []float64 // one value, or none
	}{
		{"sessions", "sessions", map[[2]string]float64{{ns, "playground-0"}: 3, {ns, "playground-2"}: 5, {ns, "playground-3"}: 0, {"other", "playground-7"}: 9}, []float64{8}},
		{"highest pod in use", "highest-pod-in-use", map[[2]string]float64{{ns, "playground-0"}: 3, {ns, "playground-1"}: 0, {ns, "playground-2"}: 5, {ns, "playground-3"}: 0, {"other", "playground-7"}: 9}, []float64{3}},
		{"the last pod in use", "highest-pod-in-use", map[[2]string]float64{{ns, "playground-0"}: 0, {ns, "playground-9"}: 1}, []float64{10}},
		{"no pod in use", "highest-pod-in-use", map[[2]string]float64{{ns, "playground-0"}: 0, {ns, "playground-1"}: 0}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := queries[tc.trigger]
			if q == "" {
				t.Fatalf("no trigger %s in %v", tc.trigger, queries)
			}
			qry, err := engine.NewInstantQuery(context.Background(), sessionsActive(tc.pods), nil, q, time.Unix(30, 0))
			if err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			res := qry.Exec(context.Background())
			if res.Err != nil {
				t.Fatalf("%s: %v", q, res.Err)
			}
			vec, err := res.Vector()
			if err != nil {
				t.Fatal(err)
			}
			var got []float64
			for _, s := range vec {
				got = append(got, s.F)
			}
			if len(got) != len(tc.want) || len(got) == 1 && got[0] != tc.want[0] {
				t.Errorf("%s = %v, want %v", tc.trigger, got, tc.want)
			}
		})
	}
}
