package telemetry

import (
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/core/api"
	"github.com/weftmesh/weft/core/meshapi"
)

// Defaults of Options.
const (
	DefaultStep  = 10 * time.Second
	DefaultSteps = 60 // 10 minutes of 10 s steps
	// MaxKeys bounds the services, edges, routes and instances one step
	// holds; past it a report's cells are counted as dropped.
	MaxKeys = 100000
	// maxDenials is how many recent denials are kept.
	maxDenials = 100
)

// Options tune a Collector.
type Options struct {
	// Step is the time one step of the window covers; Steps how many are
	// kept. Defaults: 10 s and 60 (10 minutes).
	Step  time.Duration
	Steps int
	// Now replaces time.Now (tests).
	Now func() time.Time
}

// Collector adds up the sidecars' reports (it is core/meshserver's
// Stats) over a window of steps and answers GET /v1/stats (it is
// core/api's StatsSource). Safe for concurrent use.
type Collector struct {
	o Options

	mu        sync.Mutex
	ring      []*step
	instances map[string]*instanceState
	denials   []api.Denial // newest last, at most maxDenials

	received, cellsDropped atomic.Uint64
	refusedMu              sync.Mutex
	refused                map[string]uint64
}

// counts are the additive golden signals of one subject over a window.
type counts struct {
	requests, successes, denied, bytesIn, bytesOut, conns uint64
	buckets                                               [meshapi.LatencyBuckets]uint64
}

// stepCounts are the golden signals of one subject in one step, kept
// in 32 bits (a step is 10 s: 400 million requests a second would
// overflow them; they stop at the largest value instead) and bytes in
// 64: 104 bytes a subject and step, half of 64-bit counters.
type stepCounts struct {
	bytesIn, bytesOut                  uint64
	requests, successes, denied, conns uint32
	buckets                            [meshapi.LatencyBuckets]uint32
}

func add32(a *uint32, n uint64) {
	*a = uint32(min(uint64(*a)+n, math.MaxUint32))
}

func (c *stepCounts) add(x *meshapi.StatsCell) {
	add32(&c.requests, x.GetRequests())
	add32(&c.successes, x.GetSuccesses())
	add32(&c.denied, x.GetDenied())
	add32(&c.conns, x.GetConnections())
	c.bytesIn += x.GetBytesIn()
	c.bytesOut += x.GetBytesOut()
	for i, n := range x.GetLatencyBuckets() {
		add32(&c.buckets[i], n)
	}
}

func (c *counts) merge(o *stepCounts) {
	c.requests += uint64(o.requests)
	c.successes += uint64(o.successes)
	c.denied += uint64(o.denied)
	c.bytesIn += o.bytesIn
	c.bytesOut += o.bytesOut
	c.conns += uint64(o.conns)
	for i := range c.buckets {
		c.buckets[i] += uint64(o.buckets[i])
	}
}

// sub takes o (a part of c) out of c.
func (c *counts) sub(o *counts) {
	c.requests -= min(c.requests, o.requests)
	c.successes -= min(c.successes, o.successes)
	c.denied -= min(c.denied, o.denied)
	for i := range c.buckets {
		c.buckets[i] -= min(c.buckets[i], o.buckets[i])
	}
}

type svcKey struct{ ns, svc string }

type edgeKey struct{ callerNS, caller, calleeNS, callee string }

type routeKey struct {
	edge          edgeKey
	route, subset string
}

// step holds the reports received in one step of time.
type step struct {
	index    int64 // time / Step
	services map[svcKey]*stepCounts
	edgesIn  map[edgeKey]*stepCounts // from the callees' reports
	edgesOut map[edgeKey]*stepCounts // from the callers' reports, all routes
	// routes are the named routes and subsets only: route "" subset ""
	// is the edge's (edgesOut) less them.
	routes    map[routeKey]*stepCounts
	instances map[string]*stepCounts
	reporters map[string]bool
}

func newStep(index int64) *step {
	return &step{index: index, services: map[svcKey]*stepCounts{}, edgesIn: map[edgeKey]*stepCounts{}, edgesOut: map[edgeKey]*stepCounts{},
		routes: map[routeKey]*stepCounts{}, instances: map[string]*stepCounts{}, reporters: map[string]bool{}}
}

// instanceState is what the newest report of an instance said.
type instanceState struct {
	service, ns string
	last        time.Time
	activeIn    map[edgeKey]int64    // open connections by caller, inbound
	dropped     uint64               // reports its sidecar could not send
	intrusions  *api.IntrusionReport // the last report's intrusion signals; nil: none
}

// New returns a collector with nothing collected.
func New(o Options) *Collector {
	if o.Step <= 0 {
		o.Step = DefaultStep
	}
	if o.Steps <= 0 {
		o.Steps = DefaultSteps
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Collector{o: o, ring: make([]*step, o.Steps), instances: map[string]*instanceState{}, refused: map[string]uint64{}}
}

// Window is the longest window the collector answers for.
func (c *Collector) Window() time.Duration { return c.o.Step * time.Duration(c.o.Steps) }

// stepAt returns the step of t, made (replacing one that fell out of the
// window) if need be; c.mu is held.
func (c *Collector) stepAt(t time.Time) *step {
	idx := t.UnixNano() / int64(c.o.Step)
	slot := int(idx % int64(c.o.Steps))
	s := c.ring[slot]
	if s == nil || s.index != idx {
		s = newStep(idx)
		c.ring[slot] = s
	}
	return s
}

func get[K comparable](m map[K]*stepCounts, k K, dropped *atomic.Uint64) *stepCounts {
	if v := m[k]; v != nil {
		return v
	}
	if len(m) >= MaxKeys {
		dropped.Add(1)
		return nil
	}
	v := &stepCounts{}
	m[k] = v
	return v
}

// Record adds one report of instance (of service in namespace, as its
// certificate says) to the step it was received in. Inbound cells count
// for the service, the instance and the edge from the caller the cell
// names; outbound cells for the edge from this service, by route and
// subset.
func (c *Collector) Record(instance, service, namespace string, received time.Time, r *meshapi.StatsReport) {
	c.received.Add(1)
	c.record(instance, service, namespace, received, r)
}

// Relayed adds a report another controller replica took from its sidecar
// (core/relay) as Record would, without counting it as one this replica
// received (weft_controller_reports_received_total).
//
// A relayed report's time is the other replica's word: one outside the
// window (older than it, or more than maxRelayedAhead ahead of this
// replica's clock) is not recorded but counted as refused, reason
// RefusedOutOfWindow. Recorded, it would replace a step of this window in
// the ring (or, years away, index outside it and stop the controller). One
// a little ahead (clocks a few seconds apart) counts now.
func (c *Collector) Relayed(instance, service, namespace string, received time.Time, r *meshapi.StatsReport) {
	now := c.o.Now()
	if received.After(now.Add(maxRelayedAhead)) || now.Sub(received) >= c.Window() || received.Before(now.Add(-c.Window())) {
		c.Refused(RefusedOutOfWindow)
		return
	}
	if received.After(now) {
		received = now
	}
	c.record(instance, service, namespace, received, r)
}

// RefusedOutOfWindow is the Refused reason of a relayed report dated
// outside the window.
const RefusedOutOfWindow = "relayed_out_of_window"

// maxRelayedAhead is how far ahead of this replica's clock a relayed
// report may be dated (another replica's clock running fast).
const maxRelayedAhead = time.Minute

func (c *Collector) record(instance, service, namespace string, received time.Time, r *meshapi.StatsReport) {
	self := svcKey{namespace, service}
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.stepAt(received)
	st.reporters[instance] = true
	is := c.instances[instance]
	if is == nil {
		is = &instanceState{}
		c.instances[instance] = is
	}
	// What holds "now" (open connections, dropped reports, intrusion
	// signals) comes from the newest report: reports another replica
	// relays (core/relay) may arrive after a newer one of the same sidecar.
	latest := !received.Before(is.last)
	if latest {
		is.service, is.ns, is.last, is.dropped = service, namespace, received, r.GetReportsDropped()
		is.activeIn = map[edgeKey]int64{}
	}
	for _, cell := range r.GetCells() {
		if cell.GetDirection() == meshapi.StatsDirection_STATS_INBOUND {
			e := edgeKey{cell.GetPeerNamespace(), cell.GetPeer(), namespace, service}
			if latest {
				is.activeIn[e] += cell.GetActive()
			}
			for _, k := range []*stepCounts{get(st.services, self, &c.cellsDropped), get(st.edgesIn, e, &c.cellsDropped), get(st.instances, instance, &c.cellsDropped)} {
				if k != nil {
					k.add(cell)
				}
			}
			continue
		}
		e := edgeKey{namespace, service, cell.GetPeerNamespace(), cell.GetPeer()}
		if k := get(st.edgesOut, e, &c.cellsDropped); k != nil {
			k.add(cell)
		}
		if cell.GetRoute() == "" && cell.GetSubset() == "" {
			continue
		}
		if k := get(st.routes, routeKey{e, cell.GetRoute(), cell.GetSubset()}, &c.cellsDropped); k != nil {
			k.add(cell)
		}
	}
	if latest {
		is.intrusions = intrusionReport(instance, service, received, r)
	}
	for _, d := range r.GetDenials() {
		c.denials = append(c.denials, api.Denial{Time: time.UnixMilli(d.GetUnixMs()).UTC(), Caller: d.GetCaller(), Callee: service,
			Method: d.GetMethod(), Path: d.GetPath(), Reason: d.GetReason()})
	}
	if len(r.GetDenials()) > 0 {
		// In time order, whatever order the reports came in.
		sort.SliceStable(c.denials, func(i, j int) bool { return c.denials[i].Time.Before(c.denials[j].Time) })
	}
	if n := len(c.denials); n > maxDenials {
		c.denials = append(c.denials[:0], c.denials[n-maxDenials:]...)
	}
}

// Refused counts a report the server refused, by reason.
func (c *Collector) Refused(reason string) {
	c.refusedMu.Lock()
	c.refused[reason]++
	c.refusedMu.Unlock()
}

// Counters are the collector's own figures, for the controller's
// /metrics.
type Counters struct {
	Received     uint64
	Refused      map[string]uint64
	CellsDropped uint64
	// SidecarDropped adds up what the sidecars say they could not send.
	SidecarDropped uint64
	Instances      int
}

// Counters returns the collector's own figures.
func (c *Collector) Counters() Counters {
	out := Counters{Received: c.received.Load(), CellsDropped: c.cellsDropped.Load(), Refused: map[string]uint64{}}
	c.refusedMu.Lock()
	for k, v := range c.refused {
		out.Refused[k] = v
	}
	c.refusedMu.Unlock()
	c.mu.Lock()
	for _, is := range c.instances {
		out.SidecarDropped += is.dropped
	}
	out.Instances = len(c.instances)
	c.mu.Unlock()
	return out
}

// Stats answers GET /v1/stats: every figure over the last window (at
// least one step, at most Window()), with a point per step for services
// and edges.
func (c *Collector) Stats(window time.Duration) api.StatsReport {
	now := c.o.Now()
	window = min(max(window, c.o.Step), c.Window())
	n := int64(window / c.o.Step)
	cur := now.UnixNano() / int64(c.o.Step)
	first := cur - n + 1
	secs := window.Seconds()
	out := api.StatsReport{Generated: now.UTC(), WindowSeconds: secs, LatencyBoundsMs: append([]float64(nil), meshapi.LatencyBoundsMs...),
		Services: []api.ServiceStats{}, Edges: []api.EdgeStats{}, Instances: []api.InstanceStats{}, RecentDenials: []api.Denial{}}

	c.mu.Lock()
	defer c.mu.Unlock()
	// The steps in the window, oldest first (nil where none arrived).
	steps := make([]*step, n)
	for i := range n {
		idx := first + i
		if s := c.ring[int(idx%int64(c.o.Steps))]; s != nil && s.index == idx {
			steps[i] = s
		}
	}
	stepTime := func(i int) time.Time { return time.Unix(0, (first+int64(i))*int64(c.o.Step)).UTC() }
	series := func(get func(*step) *stepCounts) ([]api.Point, counts) {
		var total counts
		pts := make([]api.Point, len(steps))
		for i, s := range steps {
			pts[i].Time = stepTime(i)
			if s == nil {
				continue
			}
			if k := get(s); k != nil {
				total.merge(k)
				var one counts
				one.merge(k)
				g := golden(&one, c.o.Step.Seconds(), false)
				pts[i].RPS, pts[i].SuccessRate, pts[i].P99Ms = g.RPS, g.SuccessRate, g.P99Ms
			}
		}
		return pts, total
	}

	reporters := map[string]bool{}
	svcs := map[svcKey]bool{}
	edges := map[edgeKey]bool{}
	routes := map[routeKey]bool{}
	insts := map[string]bool{}
	svcInstances := map[svcKey]map[string]bool{}
	for _, s := range steps {
		if s == nil {
			continue
		}
		for k := range s.reporters {
			reporters[k] = true
		}
		for k := range s.services {
			svcs[k] = true
		}
		for k := range s.edgesIn {
			edges[k] = true
		}
		for k := range s.edgesOut {
			edges[k] = true
		}
		for k := range s.routes {
			routes[k] = true
		}
		for k := range s.instances {
			insts[k] = true
		}
	}
	out.ReportingSidecars = len(reporters)
	for id := range reporters {
		if is := c.instances[id]; is != nil {
			k := svcKey{is.ns, is.service}
			if svcInstances[k] == nil {
				svcInstances[k] = map[string]bool{}
			}
			svcInstances[k][id] = true
		}
	}
	for k := range svcs {
		pts, total := series(func(s *step) *stepCounts { return s.services[k] })
		g := golden(&total, secs, true)
		for id := range svcInstances[k] {
			for _, a := range c.instances[id].activeIn {
				g.ActiveConnections += a
			}
		}
		out.Services = append(out.Services, api.ServiceStats{Service: k.svc, Namespace: k.ns, Golden: g, Series: pts, Instances: len(svcInstances[k])})
	}
	// An edge's figures are the callee's when its sidecars reported it
	// (the caller is the one its certificate names), else the caller's.
	inbound := map[edgeKey]bool{}
	for _, s := range steps {
		if s != nil {
			for k := range s.edgesIn {
				inbound[k] = true
			}
		}
	}
	byEdge := map[edgeKey][]api.RouteStats{}
	named := map[edgeKey]*counts{} // the named routes of each edge together
	for k := range routes {
		_, total := series(func(s *step) *stepCounts { return s.routes[k] })
		if named[k.edge] == nil {
			named[k.edge] = &counts{}
		}
		n := named[k.edge]
		n.requests += total.requests
		n.successes += total.successes
		n.denied += total.denied
		for i := range n.buckets {
			n.buckets[i] += total.buckets[i]
		}
		g := golden(&total, secs, true)
		// Connections and bytes are the whole edge's (the cell of route
		// ""), not a route's: they are left to the edge.
		g.BytesIn, g.BytesOut, g.Connections = 0, 0, 0
		byEdge[k.edge] = append(byEdge[k.edge], api.RouteStats{Route: k.route, Subset: k.subset, Golden: g})
	}
	// Route "" subset "": what the caller sent on the edge less its named
	// routes.
	for _, s := range steps {
		if s == nil {
			continue
		}
		for k := range s.edgesOut {
			if _, done := named[k]; !done {
				named[k] = nil
			}
		}
	}
	for k, n := range named {
		_, total := series(func(s *step) *stepCounts { return s.edgesOut[k] })
		if n != nil {
			total.sub(n)
		}
		if total.requests == 0 && n != nil {
			continue
		}
		g := golden(&total, secs, true)
		g.BytesIn, g.BytesOut, g.Connections = 0, 0, 0
		byEdge[k] = append(byEdge[k], api.RouteStats{Golden: g})
	}
	for k := range edges {
		from := func(s *step) *stepCounts { return s.edgesOut[k] }
		if inbound[k] {
			from = func(s *step) *stepCounts { return s.edgesIn[k] }
		}
		pts, total := series(from)
		g := golden(&total, secs, true)
		if inbound[k] {
			for id := range svcInstances[svcKey{k.calleeNS, k.callee}] {
				g.ActiveConnections += c.instances[id].activeIn[k]
			}
		}
		rs := byEdge[k]
		sort.Slice(rs, func(i, j int) bool {
			if rs[i].Route != rs[j].Route {
				return rs[i].Route < rs[j].Route
			}
			return rs[i].Subset < rs[j].Subset
		})
		out.Edges = append(out.Edges, api.EdgeStats{Caller: k.caller, CallerNamespace: k.callerNS, Callee: k.callee, CalleeNamespace: k.calleeNS,
			Golden: g, Series: pts, Routes: rs})
	}
	for id := range insts {
		_, total := series(func(s *step) *stepCounts { return s.instances[id] })
		is := c.instances[id]
		out.Instances = append(out.Instances, api.InstanceStats{Instance: id, Service: is.service, Golden: golden(&total, secs, true), LastReport: is.last.UTC()})
	}
	for i := len(c.denials) - 1; i >= 0; i-- {
		if d := c.denials[i]; !d.Time.Before(now.Add(-window)) {
			out.RecentDenials = append(out.RecentDenials, d)
		}
	}
	sort.Slice(out.Services, func(i, j int) bool {
		a, b := out.Services[i], out.Services[j]
		return a.Namespace+"/"+a.Service < b.Namespace+"/"+b.Service
	})
	sort.Slice(out.Edges, func(i, j int) bool {
		a, b := out.Edges[i], out.Edges[j]
		return a.Caller+"\x00"+a.Callee+"\x00"+a.CallerNamespace+"\x00"+a.CalleeNamespace < b.Caller+"\x00"+b.Callee+"\x00"+b.CallerNamespace+"\x00"+b.CalleeNamespace
	})
	sort.Slice(out.Instances, func(i, j int) bool { return out.Instances[i].Instance < out.Instances[j].Instance })
	return out
}

// golden turns counts over secs seconds into the golden signals (with
// the buckets when withBuckets).
func golden(k *counts, secs float64, withBuckets bool) api.Golden {
	g := api.Golden{Requests: k.requests, Successes: k.successes, BytesIn: k.bytesIn, BytesOut: k.bytesOut, Connections: k.conns, Denied: k.denied}
	if secs > 0 {
		g.RPS = float64(k.requests) / secs
	}
	if k.requests > 0 {
		g.SuccessRate = float64(k.successes) / float64(k.requests)
		g.P50Ms = Quantile(0.50, k.buckets[:])
		g.P95Ms = Quantile(0.95, k.buckets[:])
		g.P99Ms = Quantile(0.99, k.buckets[:])
		if withBuckets {
			g.LatencyBuckets = append([]uint64(nil), k.buckets[:]...)
		}
	}
	return g
}

// Quantile estimates the q-quantile (0 < q < 1) in milliseconds from
// counts per bucket of meshapi.LatencyBoundsMs, interpolating linearly
// within the bucket it falls in (as Prometheus's histogram_quantile
// does); one in the last bucket, which has no upper bound, is its lower
// bound. 0 when the buckets are empty.
func Quantile(q float64, buckets []uint64) float64 {
	var total uint64
	for _, n := range buckets {
		total += n
	}
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	bounds := meshapi.LatencyBoundsMs
	var cum uint64
	for i, n := range buckets {
		if n == 0 || float64(cum+n) < rank {
			cum += n
			continue
		}
		if i >= len(bounds) {
			return bounds[len(bounds)-1]
		}
		lo := 0.0
		if i > 0 {
			lo = bounds[i-1]
		}
		v := lo + (bounds[i]-lo)*(rank-float64(cum))/float64(n)
		return math.Round(v*1000) / 1000
	}
	return bounds[len(bounds)-1]
}

// Bucket is the index of the bucket of meshapi.LatencyBoundsMs that ms
// falls in.
func Bucket(ms float64) int {
	for i, b := range meshapi.LatencyBoundsMs {
		if ms <= b {
			return i
		}
	}
	return len(meshapi.LatencyBoundsMs)
}

// intrusionReport is the intrusion part of a report (StatsReport fields
// 8-9); nil when it has none.
func intrusionReport(instance, service string, at time.Time, r *meshapi.StatsReport) *api.IntrusionReport {
	if len(r.GetIntrusions()) == 0 && len(r.GetBlocked()) == 0 {
		return nil
	}
	ir := &api.IntrusionReport{Instance: instance, Service: service, Time: at.UTC()}
	for _, s := range r.GetIntrusions() {
		ir.Sources = append(ir.Sources, api.IntrusionSourceReport{Source: s.GetSource(), Total: s.GetTotal(), ByKind: s.GetByKind(), Last: time.UnixMilli(s.GetLastUnixMs()).UTC()})
	}
	for _, b := range r.GetBlocked() {
		ir.Blocked = append(ir.Blocked, api.BlockedSourceReport{Source: b.GetSource(), Until: time.UnixMilli(b.GetUntilUnixMs()).UTC(), Reason: b.GetReason()})
	}
	return ir
}

// Intrusions returns the intrusion signals each instance reported last,
// by instance ID (weft status).
func (c *Collector) Intrusions() []api.IntrusionReport {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []api.IntrusionReport
	for _, is := range c.instances {
		if is.intrusions != nil {
			out = append(out, *is.intrusions)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Instance < out[j].Instance })
	return out
}
