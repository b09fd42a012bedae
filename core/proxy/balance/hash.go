package balance

import (
	"hash/fnv"
	"net/http"
	"slices"
	"sort"
	"strconv"

	"github.com/weftmesh/weft/core/meshapi"
)

// random picks any Endpoint not skipped, uniformly.
type random struct {
	eps  []*Endpoint
	intn func(int) int
}

func (r *random) Pick(skip map[*Endpoint]bool) *Endpoint {
	cand := r.eps
	if len(skip) > 0 {
		cand = nil
		for _, e := range r.eps {
			if !skip[e] {
				cand = append(cand, e)
			}
		}
	}
	if len(cand) == 0 {
		return nil
	}
	return cand[r.intn(len(cand))]
}

// HashBalancer keeps a key on one Endpoint while the endpoints stay the
// same, and moves few keys when they change.
type HashBalancer interface {
	Balancer
	// PickHash returns the Endpoint for key h, or the next one along when
	// it is skipped.
	PickHash(h uint64, skip map[*Endpoint]bool) *Endpoint
}

// Hash hashes a key, s (FNV-1a, then a finalizer that spreads close
// inputs), as HashKey does: a HashBalancer's key for s.
func Hash(s string) uint64 {
	f := fnv.New64a()
	f.Write([]byte(s))
	x := f.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// ringHash places ringReplicas points per Endpoint on a ring of hashes; a
// key goes to the first point at or after its hash.
type ringHash struct {
	random
	points []ringPoint
}

type ringPoint struct {
	h  uint64
	ep *Endpoint
}

const ringReplicas = 128

func newRingHash(eps []*Endpoint, intn func(int) int) *ringHash {
	r := &ringHash{random: random{eps: eps, intn: intn}}
	for _, e := range eps {
		for i := range ringReplicas {
			r.points = append(r.points, ringPoint{Hash(e.ID + "#" + strconv.Itoa(i)), e})
		}
	}
	sort.Slice(r.points, func(i, j int) bool { return r.points[i].h < r.points[j].h })
	return r
}

func (r *ringHash) PickHash(h uint64, skip map[*Endpoint]bool) *Endpoint {
	n := len(r.points)
	if n == 0 {
		return nil
	}
	i := sort.Search(n, func(i int) bool { return r.points[i].h >= h })
	for k := range n {
		if e := r.points[(i+k)%n].ep; !skip[e] {
			return e
		}
	}
	return nil
}

// maglev fills a lookup table of maglevSize slots, each Endpoint taking
// slots in the order of its own permutation, so that every Endpoint holds
// nearly the same share and a change moves few slots.
type maglev struct {
	random
	table []*Endpoint
}

const maglevSize = 65537 // prime

func newMaglev(eps []*Endpoint, intn func(int) int) *maglev {
	m := &maglev{random: random{eps: eps, intn: intn}}
	if len(eps) == 0 {
		return m
	}
	// Endpoints in a stable order, so equal sets build equal tables.
	sorted := slices.Clone(eps)
	slices.SortFunc(sorted, func(a, b *Endpoint) int {
		if a.ID != b.ID {
			if a.ID < b.ID {
				return -1
			}
			return 1
		}
		if a.Addr < b.Addr {
			return -1
		}
		if a.Addr > b.Addr {
			return 1
		}
		return 0
	})
	offset := make([]uint64, len(sorted))
	skipBy := make([]uint64, len(sorted))
	next := make([]uint64, len(sorted))
	for i, e := range sorted {
		offset[i] = Hash(e.ID+"|offset") % maglevSize
		skipBy[i] = Hash(e.ID+"|skip")%(maglevSize-1) + 1
	}
	m.table = make([]*Endpoint, maglevSize)
	filled := 0
	for filled < maglevSize {
		for i, e := range sorted {
			for {
				c := (offset[i] + next[i]*skipBy[i]) % maglevSize
				next[i]++
				if m.table[c] == nil {
					m.table[c] = e
					filled++
					break
				}
			}
			if filled == maglevSize {
				break
			}
		}
	}
	return m
}

func (m *maglev) PickHash(h uint64, skip map[*Endpoint]bool) *Endpoint {
	if len(m.table) == 0 {
		return nil
	}
	i := h % maglevSize
	for k := uint64(0); k < maglevSize; k++ {
		if e := m.table[(i+k)%maglevSize]; !skip[e] {
			return e
		}
	}
	return nil
}

// HashKey is the key a request hashes to under hp, and false when the
// request has none (it then goes to a random Endpoint).
func HashKey(hp *meshapi.HashPolicy, r *http.Request, self string) (uint64, bool) {
	switch {
	case hp.GetHeader() != "":
		if v := r.Header.Values(hp.GetHeader()); len(v) > 0 {
			return Hash(v[0]), true
		}
	case hp.GetCookie() != "":
		if c, err := r.Cookie(hp.GetCookie()); err == nil {
			return Hash(c.Value), true
		}
	case hp.GetSourceIdentity():
		return Hash(self), true
	}
	return 0, false
}
