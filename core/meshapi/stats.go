package meshapi

// LatencyBoundsMs are the upper bounds, in milliseconds, of the latency
// histograms the sidecars count with and the controller adds up
// (StatsReport): 0.5 ms doubling to 32.768 s, 17 bounds, so 18 buckets
// (the last counts what took longer). A percentile read from them is
// exact to within one bucket, a factor of two. Both ends of the Report
// RPC must agree on them: StatsReport.latency_bounds carries their
// number, and the controller refuses a report counted with another.
var LatencyBoundsMs = func() []float64 {
	b := make([]float64, 17)
	v := 0.5
	for i := range b {
		b[i] = v
		v *= 2
	}
	return b
}()

// LatencyBuckets is len(LatencyBoundsMs)+1, the buckets of a histogram.
const LatencyBuckets = 18
