package load

import "time"

// Schedule is an open-loop, constant-rate plan: request k (counting from
// 0 across all connections) is due at Start + k/Rate. Connection c of
// Conns sends requests c, c+Conns, c+2*Conns, ... so the connections
// interleave evenly and together send exactly Rate requests a second.
// Latency is measured from the due time, not from when the request was
// actually written: a request that waits behind a slow one is charged
// for the wait (no coordinated omission).
type Schedule struct {
	Start time.Time
	Rate  float64 // requests per second, > 0
	Conns int
}

// Due returns when the j-th request of connection c is due.
func (s Schedule) Due(c, j int) time.Time {
	k := int64(c) + int64(j)*int64(s.Conns)
	return s.Start.Add(time.Duration(float64(k) * 1e9 / s.Rate))
}

// Count returns how many requests connection c sends in [Start, Start+d).
func (s Schedule) Count(c int, d time.Duration) int {
	n := 0
	for j := 0; s.Due(c, j).Before(s.Start.Add(d)); j++ {
		n++
	}
	return n
}
