package budget

import (
	"math"
	"sort"
	"sync"
	"time"
)

// FloorFraction is the part of an even split every member keeps however
// idle it is: with N a second among k members, at least
// FloorFraction*N/k each. It is what an idle instance admits at once when
// load reaches it, before its next report; it is also the most a member
// can hold unused under contention.
const FloorFraction = 0.05

// Allocate divides n among members by their demand (requests a second
// each saw; negative or NaN counts as none) and returns their shares,
// which sum to n: each gets at least FloorFraction of an even split; under
// contention (demand above what is left) the rest goes in proportion to
// demand, otherwise each gets its demand and the spare is split evenly.
func Allocate(n float64, demand []float64) []float64 {
	k := len(demand)
	if k == 0 {
		return nil
	}
	if !(n > 0) || math.IsInf(n, 0) {
		return make([]float64, k)
	}
	d := make([]float64, k)
	for i, v := range demand {
		if v > 0 && !math.IsInf(v, 1) {
			d[i] = v
		} else if math.IsInf(v, 1) {
			d[i] = math.MaxFloat64 / float64(k+1)
		}
	}
	floor := FloorFraction * n / float64(k)
	share := make([]float64, k)
	// Demand that fits: each gets max(demand, floor), and the spare
	// is split evenly.
	var need float64
	for _, v := range d {
		need += math.Max(v, floor)
	}
	if need <= n {
		spare := (n - need) / float64(k)
		for i, v := range d {
			share[i] = math.Max(v, floor) + spare
		}
		return share
	}
	// Contention: the floor for those whose proportional part would be
	// below it, the rest in proportion to demand among the others.
	atFloor := make([]bool, k)
	for {
		left, sum, nFloor := n, 0.0, 0
		for i, v := range d {
			if atFloor[i] {
				left -= floor
				nFloor++
			} else {
				sum += v
			}
		}
		changed := false
		for i, v := range d {
			if atFloor[i] {
				share[i] = floor
				continue
			}
			if sum > 0 {
				share[i] = left * v / sum
			} else {
				share[i] = left / float64(k-nFloor)
			}
			if share[i] < floor {
				atFloor[i], changed = true, true
			}
		}
		if !changed {
			return share
		}
	}
}

// BurstShare is a member's part of a limit's burst: in proportion to its
// share of the rate, but at least a quarter second of its share (capped at
// the whole burst) and at least 1. A bucket of a request or two loses the
// tokens that jitter in arrivals would have used: split into k buckets,
// the limit would admit less than its rate. The cost: after an idle time
// the members together may admit up to burst + N/4 + k requests at once,
// where one bucket would admit burst.
func BurstShare(burst uint32, n, share float64) uint32 {
	if !(n > 0) || !(share > 0) {
		return 1
	}
	prop := math.Ceil(float64(burst) * math.Min(1, share/n))
	quarter := math.Min(math.Ceil(share/4), float64(burst))
	return uint32(max(1, prop, quarter))
}

// Key names one global limit: the rate limit of a service.
type Key struct {
	Namespace, Service, Limit string
}

// Options configure a Pool.
type Options struct {
	// ReportEvery is how often sidecars are asked to report. 0: 1s.
	ReportEvery time.Duration
	// Expiry is how long a member counts after its last report. 0: three
	// ReportEvery.
	Expiry time.Duration
	// Granted, if set, is told of every report Grant took (not of those
	// Observe took), after the grant: controller replicas pass them on to
	// each other (core/relay), so that every replica's Pool holds every
	// member and grants the same shares.
	Granted func(k Key, instance string, n float64, requests uint64, window time.Duration, at time.Time)
}

// Pool keeps the members of every global limit and their demand, and
// grants each its share. It is safe for concurrent use.
type Pool struct {
	o      Options
	mu     sync.Mutex
	groups map[Key]*group
	swept  time.Time
}

type group struct {
	members map[string]*member
}

type member struct {
	demand float64 // requests a second, smoothed
	seen   time.Time
	share  float64
}

// NewPool returns an empty Pool.
func NewPool(o Options) *Pool {
	if o.ReportEvery <= 0 {
		o.ReportEvery = time.Second
	}
	if o.Expiry <= 0 {
		o.Expiry = 3 * o.ReportEvery
	}
	return &Pool{o: o, groups: map[Key]*group{}}
}

// ReportEvery is how often sidecars should report.
func (p *Pool) ReportEvery() time.Duration { return p.o.ReportEvery }

// Grant records that instance's limit k took requests over window, and
// returns its share of the limit's n requests a second and the number of
// members the limit was divided among (this one included).
func (p *Pool) Grant(k Key, instance string, n float64, requests uint64, window time.Duration, now time.Time) (share float64, members int) {
	share, members = p.update(k, instance, n, requests, window, now)
	if p.o.Granted != nil {
		p.o.Granted(k, instance, n, requests, window, now)
	}
	return share, members
}

// Observe takes a report another controller replica granted (its
// Options.Granted), as Grant would, without a grant and without telling
// Granted: the member counts here too, and the shares are divided among
// every replica's members.
func (p *Pool) Observe(k Key, instance string, n float64, requests uint64, window time.Duration, now time.Time) {
	p.update(k, instance, n, requests, window, now)
}

func (p *Pool) update(k Key, instance string, n float64, requests uint64, window time.Duration, now time.Time) (share float64, members int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sweep(now)
	g := p.groups[k]
	if g == nil {
		g = &group{members: map[string]*member{}}
		p.groups[k] = g
	}
	rate := 0.0
	if window > 0 {
		rate = float64(requests) / window.Seconds()
	}
	m := g.members[instance]
	if m == nil {
		m = &member{demand: rate}
		g.members[instance] = m
	} else {
		// Smoothed over about two reports: one short or late window
		// does not swing the shares.
		m.demand = (m.demand + rate) / 2
	}
	m.seen = now
	ids := make([]string, 0, len(g.members))
	for id, o := range g.members {
		if now.Sub(o.seen) > p.o.Expiry {
			delete(g.members, id)
			continue
		}
		ids = append(ids, id)
	}
	sort.Strings(ids)
	demand := make([]float64, len(ids))
	for i, id := range ids {
		demand[i] = g.members[id].demand
	}
	shares := Allocate(n, demand)
	for i, id := range ids {
		g.members[id].share = shares[i]
	}
	return m.share, len(ids)
}

// sweep drops, at most once per Expiry, the members and limits nobody
// reported for.
func (p *Pool) sweep(now time.Time) {
	if now.Sub(p.swept) < p.o.Expiry {
		return
	}
	p.swept = now
	for k, g := range p.groups {
		for id, m := range g.members {
			if now.Sub(m.seen) > p.o.Expiry {
				delete(g.members, id)
			}
		}
		if len(g.members) == 0 {
			delete(p.groups, k)
		}
	}
}

// Member is one member of a limit as Snapshot shows it.
type Member struct {
	Instance string
	Demand   float64 // requests a second, smoothed
	Share    float64 // its share at its last report
}

// Snapshot returns the members of limit k, by instance ID.
func (p *Pool) Snapshot(k Key) []Member {
	p.mu.Lock()
	defer p.mu.Unlock()
	g := p.groups[k]
	if g == nil {
		return nil
	}
	var out []Member
	for id, m := range g.members {
		out = append(out, Member{Instance: id, Demand: m.demand, Share: m.share})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Instance < out[j].Instance })
	return out
}
