package proxy

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/spiffe"
)

// The golden signals a sidecar reports to the controller (issue 14): a
// statCell per peer (inbound: each calling service; outbound: each
// upstream route and subset) counts requests, successes, denials, a
// latency histogram with the fixed meshapi.LatencyBoundsMs, and (on the
// peer's connection-level cell) connections and bytes. Cells are made when
// a configuration is applied and found through pointers the request
// already holds (outbound: its route and split; inbound: the caller's
// cell by a map lookup on the caller's identity, whose strings the
// connection already has): counting a request is a few atomic adds and
// allocates nothing. report.go turns them into StatsReports.

const (
	// maxCallerCells bounds the inbound cells of callers the
	// configuration did not name (an intention that allows any caller):
	// the callers past it share the overflow cell (peer OtherPeer).
	maxCallerCells = 64
	// maxCells bounds every cell of a sidecar; past it a new route or
	// caller counts in the overflow cell.
	maxCells = 4096
	// maxDenials is how many denials one report carries (the latest).
	maxDenials = 20
	// maxDenialText bounds a denial's path and reason.
	maxDenialText = 256
)

// OtherPeer is the peer of the overflow cell: callers past
// maxCallerCells.
const OtherPeer = "(other)"

type cellKey struct {
	dir                  meshapi.StatsDirection
	peer, ns, route, sub string
}

// peerKey is a caller as its certificate names it.
type peerKey struct{ ns, svc string }

// statCell counts one peer's traffic. Every field but sent is atomic; sent
// belongs to the reporter.
type statCell struct {
	key                         cellKey
	requests, successes, denied atomic.Uint64
	bytesIn, bytesOut, conns    atomic.Uint64
	active                      atomic.Int64
	buckets                     [meshapi.LatencyBuckets]atomic.Uint64
	gen                         atomic.Uint64 // the stats generation that last bound it
	sent                        cellCounts    // as last reported
}

// cellCounts is a cell's counters at one moment.
type cellCounts struct {
	requests, successes, denied, bytesIn, bytesOut, conns uint64
	buckets                                               [meshapi.LatencyBuckets]uint64
}

// observe counts one finished request.
func (c *statCell) observe(ok bool, d time.Duration) {
	c.requests.Add(1)
	if ok {
		c.successes.Add(1)
	}
	c.buckets[latencyBucket(d)].Add(1)
}

// latencyBucket is the index of the bucket d falls in: the first bound
// (0.5 ms doubling) it does not exceed, or the last bucket.
func latencyBucket(d time.Duration) int {
	const first = 500 * time.Microsecond
	i := 0
	for b := first; i < meshapi.LatencyBuckets-1 && d > b; b *= 2 {
		i++
	}
	return i
}

// succeeded says whether a request counts as a success: not refused by
// the mesh's authorization, an HTTP status below 500 (0, nothing written
// because the client went away, is not), and for gRPC a status that is
// OK or the client's error.
func succeeded(code int, grpcStatus string, refused bool) bool {
	if refused || code == 0 || code >= 500 {
		return false
	}
	if grpcStatus == "" {
		return true
	}
	n, err := strconv.Atoi(grpcStatus)
	if err != nil {
		return false
	}
	switch n {
	case 2, 4, 12, 13, 14, 15: // UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS
		return false
	}
	return true
}

// denial is one refused request or connection, kept for the next report.
type denial struct {
	at                        time.Time
	caller, method, path, why string
}

// stats holds a sidecar's cells.
type stats struct {
	mu      sync.Mutex // guards cells, dynamic, denials, gen
	cells   map[cellKey]*statCell
	dynamic int // inbound cells made for callers the configuration did not name
	gen     uint64
	other   *statCell // inbound overflow
	// callers are the inbound cells by caller: replaced whole (copy on
	// write) when a caller gets a cell.
	callers atomic.Pointer[map[peerKey]*statCell]
	denials []denial // the latest maxDenials, oldest first
	dropped atomic.Uint64
}

func newStats() *stats {
	s := &stats{cells: map[cellKey]*statCell{}}
	s.other = s.cellLocked(cellKey{dir: meshapi.StatsDirection_STATS_INBOUND, peer: OtherPeer})
	m := map[peerKey]*statCell{}
	s.callers.Store(&m)
	return s
}

// cellLocked returns the cell of k, made if need be; s.mu is held.
func (s *stats) cellLocked(k cellKey) *statCell {
	c := s.cells[k]
	if c == nil {
		if len(s.cells) >= maxCells && s.other != nil {
			return s.other
		}
		c = &statCell{key: k}
		s.cells[k] = c
	}
	c.gen.Store(s.gen)
	return c
}

// caller returns the inbound cell of a caller: the one the configuration
// made for it, or one made now while fewer than maxCallerCells were, or
// the overflow cell.
func (s *stats) caller(id spiffe.Identity) *statCell {
	if id.Service == "" {
		return s.other
	}
	if c := (*s.callers.Load())[peerKey{id.Namespace, id.Service}]; c != nil {
		return c
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := *s.callers.Load()
	k := peerKey{id.Namespace, id.Service}
	if c := cur[k]; c != nil {
		return c
	}
	if s.dynamic >= maxCallerCells {
		return s.other
	}
	s.dynamic++
	c := s.cellLocked(cellKey{dir: meshapi.StatsDirection_STATS_INBOUND, peer: id.Service, ns: id.Namespace})
	next := make(map[peerKey]*statCell, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	next[k] = c
	s.callers.Store(&next)
	return c
}

// bind makes the cells of a configuration: inbound, one per calling
// service its intentions name (the callers they leave open get theirs on
// their first call); outbound, one per upstream, route and split, each
// kept on the route or pool the request will hold. Cells of an earlier
// configuration carry on under the same key, so its counts are not lost.
func (s *stats) bind(cfg *meshapi.ProxyConfig) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	cur := *s.callers.Load()
	next := make(map[peerKey]*statCell, len(cur))
	for k, v := range cur {
		next[k] = v
		v.gen.Store(s.gen)
	}
	own := cfg.GetNamespace()
	for _, r := range cfg.GetInbound().GetAuthz().GetRules() {
		ns := r.GetSourceNamespace()
		if ns == "" {
			ns = own
		}
		if r.GetSource() == "*" || ns == "*" || r.GetSource() == "" {
			continue
		}
		k := peerKey{ns, r.GetSource()}
		if next[k] == nil {
			next[k] = s.cellLocked(cellKey{dir: meshapi.StatsDirection_STATS_INBOUND, peer: k.svc, ns: k.ns})
		}
	}
	s.callers.Store(&next)
}

// bindOutbound gives an upstream's state its cells: st.all the
// upstream's (route "", subset "": requests no route took, and every
// connection and byte), each route and split its own.
func (s *stats) bindOutbound(st *outboundState, wantID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ns := ""
	if id, err := spiffe.Parse(wantID); err == nil {
		ns = id.Namespace
	}
	k := cellKey{dir: meshapi.StatsDirection_STATS_OUTBOUND, peer: st.service, ns: ns}
	st.all.cell = s.cellLocked(k)
	for _, rt := range st.routes {
		rk := k
		rk.route = rt.name
		rt.cell = s.cellLocked(rk)
		for _, p := range rt.splits {
			pk := rk
			pk.sub = p.subset
			p.cell = s.cellLocked(pk)
		}
	}
}

// outboundCell is the cell of a request as it was routed.
func (st *outboundState) outboundCell(pk *picked) *statCell {
	switch {
	case pk == nil || pk.route == nil:
		return st.all.cell
	case len(pk.route.splits) > 0 && pk.pool != nil && pk.pool.cell != nil:
		return pk.pool.cell
	default:
		return pk.route.cell
	}
}

// denied counts a refusal in the caller's cell and keeps it for the next
// report. It is off the path of allowed requests and may allocate.
func (s *stats) denied(c *statCell, caller spiffe.Identity, method, path, why string) {
	c.denied.Add(1)
	d := denial{at: time.Now(), caller: caller.String(), method: cut(method, 16), path: cut(path, maxDenialText), why: cut(why, maxDenialText)}
	s.mu.Lock()
	if len(s.denials) == maxDenials {
		copy(s.denials, s.denials[1:])
		s.denials = s.denials[:maxDenials-1]
	}
	s.denials = append(s.denials, d)
	s.mu.Unlock()
}

// cut bounds s to n bytes of valid UTF-8 (a report is protobuf, whose
// strings must be).
func cut(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.ToValidUTF8(s, "")
}

func (c *statCell) connOpened() {
	c.conns.Add(1)
	c.active.Add(1)
}

// inbound counts a finished inbound request in its caller's cell.
func (s *stats) inbound(caller spiffe.Identity, rec *statusWriter, refused bool, d time.Duration) {
	s.caller(caller).observe(succeeded(rec.status(), rec.grpcStatus(), refused), d)
}

// count counts a finished outbound request, in Prometheus by route and
// subset and in its cell (pk nil: before routing).
func (o *outbound) count(st *outboundState, pk *picked, code int, grpcStatus string, d time.Duration) {
	route, subset := "", ""
	if pk != nil {
		if pk.route != nil {
			route = pk.route.name
			if len(pk.route.splits) > 0 && pk.pool != nil {
				subset = pk.pool.subset
			}
		}
	}
	o.p.metrics.request(dirOutbound, st.service, route, subset, code, d)
	st.outboundCell(pk).observe(succeeded(code, grpcStatus, false), d)
}
