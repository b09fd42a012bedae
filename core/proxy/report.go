package proxy

import (
	"context"
	"time"

	"github.com/weftmesh/weft/core/meshapi"
)

// StatsSender carries a sidecar's reports to the controller;
// core/proxy/control.Client is one. SendStats must return once ctx ends.
type StatsSender interface {
	SendStats(ctx context.Context, r *meshapi.StatsReport) error
}

// RunReports sends a StatsReport to s every interval until ctx ends (a
// zero or negative interval sends none). Each report holds what changed
// since the last report s took, so a report s could not take (the
// controller is slow or away: a send is given at most one interval) is
// not lost: its counts go in the next one, and ReportsDropped counts it.
// At most one report is in flight and none is queued; the request path
// never waits for the reporter.
func (p *Proxy) RunReports(ctx context.Context, interval time.Duration, s StatsSender) {
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	last := time.Now()
	var warned time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a := p.applied.Load()
		if a == nil {
			continue
		}
		now := time.Now()
		r, snap := p.stats.collect(a.cfg.GetInstanceId(), last, now)
		p.intrusionReport(r) // StatsReport fields 8-9 (protection.go)
		sctx, cancel := context.WithTimeout(ctx, interval)
		err := s.SendStats(sctx, r)
		cancel()
		if err != nil {
			p.stats.dropped.Add(1)
			p.metrics.reportsDropped.Inc()
			if ctx.Err() == nil && now.Sub(warned) > time.Minute {
				warned = now
				p.log.Warn("reporting stats to the controller; the counts go in the next report", "err", err)
			}
			continue
		}
		p.stats.commit(snap)
		p.metrics.reportsSent.Inc()
		last = now
	}
}

// sentCell is what a report took of one cell, for commit.
type sentCell struct {
	c *statCell
	n cellCounts
}

// collect builds a report of what changed in every cell since the last
// commit, and what commit must record once it is sent. Only the reporter
// calls it (and commit), so sent needs no lock.
func (s *stats) collect(instance string, from, to time.Time) (*meshapi.StatsReport, []sentCell) {
	r := &meshapi.StatsReport{
		InstanceId:     instance,
		StartUnixMs:    from.UnixMilli(),
		EndUnixMs:      to.UnixMilli(),
		ReportsDropped: s.dropped.Load(),
		LatencyBounds:  uint32(len(meshapi.LatencyBoundsMs)),
	}
	s.mu.Lock()
	cells := make([]*statCell, 0, len(s.cells))
	for k, c := range s.cells {
		// A cell no configuration binds any more goes once it has
		// nothing left to report.
		if c.gen.Load() != s.gen && c != s.other && c.active.Load() == 0 && c.counts() == c.sent {
			delete(s.cells, k)
			continue
		}
		cells = append(cells, c)
	}
	for _, d := range s.denials {
		r.Denials = append(r.Denials, &meshapi.StatsDenial{UnixMs: d.at.UnixMilli(), Caller: d.caller, Method: d.method, Path: d.path, Reason: d.why})
	}
	s.denials = s.denials[:0]
	s.mu.Unlock()
	var snap []sentCell
	for _, c := range cells {
		n := c.counts()
		active := c.active.Load()
		if n == c.sent && active == 0 {
			continue
		}
		o := &meshapi.StatsCell{
			Direction: c.key.dir, Peer: c.key.peer, PeerNamespace: c.key.ns, Route: c.key.route, Subset: c.key.sub,
			Requests: n.requests - c.sent.requests, Successes: n.successes - c.sent.successes, Denied: n.denied - c.sent.denied,
			BytesIn: n.bytesIn - c.sent.bytesIn, BytesOut: n.bytesOut - c.sent.bytesOut, Connections: n.conns - c.sent.conns,
			Active: active,
		}
		if o.Requests > 0 {
			o.LatencyBuckets = make([]uint64, meshapi.LatencyBuckets)
			for i := range n.buckets {
				o.LatencyBuckets[i] = n.buckets[i] - c.sent.buckets[i]
			}
		}
		r.Cells = append(r.Cells, o)
		snap = append(snap, sentCell{c, n})
	}
	return r, snap
}

// commit records that a report was sent: the next one counts from there.
func (s *stats) commit(snap []sentCell) {
	for _, sc := range snap {
		sc.c.sent = sc.n
	}
}

func (c *statCell) counts() cellCounts {
	// Successes before requests: a request is counted before its
	// success, so no report has more successes than requests.
	var n cellCounts
	n.successes = c.successes.Load()
	n.requests = c.requests.Load()
	n.denied, n.bytesIn, n.bytesOut, n.conns = c.denied.Load(), c.bytesIn.Load(), c.bytesOut.Load(), c.conns.Load()
	for i := range c.buckets {
		n.buckets[i] = c.buckets[i].Load()
	}
	return n
}
