package guard

import (
	"container/list"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Kind is what a signal says about its source.
type Kind string

// The kinds of signals. The set is fixed: metrics carry it as a label.
const (
	Handshake   Kind = "handshake"    // a refused TLS handshake (foreign CA, expired, wrong identity, not TLS)
	Denied      Kind = "denied"       // authorization refused a request or connection
	RateLimited Kind = "rate_limited" // a rate limit refused a request
	ConnLimited Kind = "conn_limited" // a connection limit (in all, per caller, per source) closed a connection
	BadRequest  Kind = "bad_request"  // a malformed or oversized request (400, 413, 431)
	JWT         Kind = "jwt"          // an end-user token that failed validation
)

// Kinds lists every kind, in a fixed order.
var Kinds = []Kind{Handshake, Denied, RateLimited, ConnLimited, BadRequest, JWT}

func kindIndex(k Kind) int {
	for i, x := range Kinds {
		if x == k {
			return i
		}
	}
	return -1
}

// Defaults.
const (
	DefaultCapacity  = 1024
	DefaultThreshold = 100
	DefaultWindow    = 10 * time.Second
	DefaultBlockFor  = time.Minute
)

// Options configure a Tracker.
type Options struct {
	// Capacity bounds the sources tracked and the sources blocked.
	// Default: DefaultCapacity.
	Capacity int
	// Now replaces time.Now in tests.
	Now func() time.Time
	// OnBlock, when set, hears of every block (to log it). Called without
	// the tracker's lock held.
	OnBlock func(source string, until time.Time, reason string)
}

// Policy says when a source is blocked: Threshold signals within Window
// block it for BlockFor, if blocking is on for its sort (Addresses for IP
// addresses, Identities for SPIFFE IDs). The zero Policy blocks nothing.
type Policy struct {
	Threshold  int
	Window     time.Duration
	BlockFor   time.Duration
	Addresses  bool
	Identities bool
}

// Source is one source's signals, as Top lists them.
type Source struct {
	Source string            `json:"source"`
	Total  uint64            `json:"total"`
	ByKind map[string]uint64 `json:"by_kind"`
	// Recent is the signals within the window (an estimate over the
	// last two windows), which the threshold is held to.
	Recent float64   `json:"recent"`
	Last   time.Time `json:"last"`
}

// Block is a source refused until Until.
type Block struct {
	Source string    `json:"source"`
	Until  time.Time `json:"until"`
	Reason string    `json:"reason"`
}

type entry struct {
	source   string
	byKind   [8]uint64
	total    uint64
	winStart time.Time
	n, prev  float64 // signals in the current and the previous window
	last     time.Time
	elem     *list.Element
}

// Tracker counts signals by source and blocks sources. Safe for
// concurrent use.
type Tracker struct {
	o       Options
	pol     atomic.Pointer[Policy]
	nBlock  atomic.Int64 // len(blocked): Blocked's fast path
	counts  [8]atomic.Uint64
	blocks  atomic.Uint64
	evicted atomic.Uint64

	mu      sync.Mutex
	entries map[string]*entry
	lru     *list.List // front: most recently noted
	blocked map[string]Block
}

// New returns a Tracker that tracks and blocks nothing until Set.
func New(o Options) *Tracker {
	if o.Capacity <= 0 {
		o.Capacity = DefaultCapacity
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	t := &Tracker{o: o, entries: map[string]*entry{}, lru: list.New(), blocked: map[string]Block{}}
	t.pol.Store(&Policy{})
	return t
}

// Set swaps the blocking policy in. A zero Window or BlockFor gets the
// default; blocks in force stay until they end.
func (t *Tracker) Set(p Policy) {
	if p.Window <= 0 {
		p.Window = DefaultWindow
	}
	if p.BlockFor <= 0 {
		p.BlockFor = DefaultBlockFor
	}
	if p.Threshold <= 0 {
		p.Threshold = DefaultThreshold
	}
	t.pol.Store(&p)
}

// Policy returns the policy in force.
func (t *Tracker) Policy() Policy { return *t.pol.Load() }

// IsIdentity says whether a source is a mesh identity rather than an
// address.
func IsIdentity(source string) bool { return strings.HasPrefix(source, "spiffe://") }

// Note records a signal of kind from source, and reports whether the
// source is blocked now (this signal may have crossed the threshold).
func (t *Tracker) Note(source string, kind Kind) bool {
	if source == "" {
		return false
	}
	i := kindIndex(kind)
	if i < 0 {
		return false
	}
	t.counts[i].Add(1)
	pol := t.pol.Load()
	now := t.o.Now()
	t.mu.Lock()
	e := t.entries[source]
	if e == nil {
		if len(t.entries) >= t.o.Capacity {
			old := t.lru.Back()
			oe := old.Value.(*entry)
			t.lru.Remove(old)
			delete(t.entries, oe.source)
			t.evicted.Add(1)
		}
		e = &entry{source: source, winStart: now}
		e.elem = t.lru.PushFront(e)
		t.entries[source] = e
	} else {
		t.lru.MoveToFront(e.elem)
	}
	e.byKind[i]++
	e.total++
	e.last = now
	recent := e.roll(now, pol.Window) + 1
	e.n++
	var newBlock *Block
	if _, already := t.blocked[source]; !already && recent >= float64(pol.Threshold) && t.mayBlock(pol, source) {
		b := Block{Source: source, Until: now.Add(pol.BlockFor),
			Reason: fmt.Sprintf("%.0f signals in %s (the threshold is %d), the last %s", recent, pol.Window, pol.Threshold, kind)}
		t.addBlock(b)
		newBlock = &b
	}
	_, blocked := t.blocked[source]
	t.mu.Unlock()
	if newBlock != nil {
		t.blocks.Add(1)
		if t.o.OnBlock != nil {
			t.o.OnBlock(newBlock.Source, newBlock.Until, newBlock.Reason)
		}
	}
	return blocked
}

func (t *Tracker) mayBlock(p *Policy, source string) bool {
	if IsIdentity(source) {
		return p.Identities
	}
	return p.Addresses
}

// addBlock adds b, making room by dropping the block that ends soonest.
// Call with mu held.
func (t *Tracker) addBlock(b Block) {
	if len(t.blocked) >= t.o.Capacity {
		var first string
		var at time.Time
		for s, x := range t.blocked {
			if first == "" || x.Until.Before(at) {
				first, at = s, x.Until
			}
		}
		delete(t.blocked, first)
	}
	t.blocked[b.Source] = b
	t.nBlock.Store(int64(len(t.blocked)))
}

// roll moves e's window on to now and returns the estimate of the
// signals within the last window before this one.
func (e *entry) roll(now time.Time, w time.Duration) float64 {
	if el := now.Sub(e.winStart); el >= w {
		if el >= 2*w {
			e.prev = 0
		} else {
			e.prev = e.n
		}
		e.n = 0
		e.winStart = e.winStart.Add(el.Truncate(w))
	}
	frac := 1 - float64(now.Sub(e.winStart))/float64(w)
	return e.n + e.prev*max(0, frac)
}

// Blocked reports whether source is blocked now. With nothing blocked it
// costs one atomic load.
func (t *Tracker) Blocked(source string) bool {
	if t.nBlock.Load() == 0 {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	b, ok := t.blocked[source]
	if !ok {
		return false
	}
	if !t.o.Now().Before(b.Until) {
		delete(t.blocked, source)
		t.nBlock.Store(int64(len(t.blocked)))
		return false
	}
	return true
}

// Unblock ends a block at once (an operator's decision, a test).
func (t *Tracker) Unblock(source string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.blocked, source)
	t.nBlock.Store(int64(len(t.blocked)))
}

// Top returns the n sources with the most signals within the window, most
// first (ties: the most signals in all, then by name).
func (t *Tracker) Top(n int) []Source {
	pol := t.pol.Load()
	now := t.o.Now()
	t.mu.Lock()
	out := make([]Source, 0, len(t.entries))
	for _, e := range t.entries {
		s := Source{Source: e.source, Total: e.total, Recent: e.roll(now, pol.Window), Last: e.last, ByKind: map[string]uint64{}}
		for i, k := range Kinds {
			if e.byKind[i] > 0 {
				s.ByKind[string(k)] = e.byKind[i]
			}
		}
		out = append(out, s)
	}
	t.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Recent != b.Recent {
			return a.Recent > b.Recent
		}
		if a.Total != b.Total {
			return a.Total > b.Total
		}
		return a.Source < b.Source
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// BlockedSources returns the blocks in force, ending soonest first.
func (t *Tracker) BlockedSources() []Block {
	now := t.o.Now()
	t.mu.Lock()
	out := make([]Block, 0, len(t.blocked))
	for s, b := range t.blocked {
		if !now.Before(b.Until) {
			delete(t.blocked, s)
			continue
		}
		out = append(out, b)
	}
	t.nBlock.Store(int64(len(t.blocked)))
	t.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Until.Equal(out[j].Until) {
			return out[i].Until.Before(out[j].Until)
		}
		return out[i].Source < out[j].Source
	})
	return out
}

// Counts are a Tracker's counters since it started.
type Counts struct {
	ByKind  map[string]uint64 `json:"by_kind"`
	Blocks  uint64            `json:"blocks"`  // blocks started
	Tracked int               `json:"tracked"` // sources in the table now
	Blocked int               `json:"blocked"` // sources blocked now
	Evicted uint64            `json:"evicted"` // sources dropped from a full table
}

// Counts returns the counters.
func (t *Tracker) Counts() Counts {
	c := Counts{ByKind: map[string]uint64{}, Blocks: t.blocks.Load(), Evicted: t.evicted.Load()}
	for i, k := range Kinds {
		c.ByKind[string(k)] = t.counts[i].Load()
	}
	t.mu.Lock()
	c.Tracked = len(t.entries)
	c.Blocked = len(t.blocked)
	t.mu.Unlock()
	return c
}
