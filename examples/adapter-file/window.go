package main

import (
	"bytes"
	"encoding/json"
	"sort"
)

// The rewritten stretch. Tooling that moves one endpoint in a file of ten
// thousand rewrites a few bytes of it: the new file is the last one up to
// some byte, and again from some byte to its end. Every record the parser
// found wholly in that common beginning or end, with the byte beside it,
// is the same record, in the same array, and what lies between them is
// all that needs reading: it must be a run of array elements with the
// commas that join them to the records kept, which json.Valid checks
// with brackets around it. Anything else (the change reaches outside the
// instances array, the stretch is not such a run) is left to the full
// parse, which also explains what is wrong.

// window returns the new file's array, records and what each decoded to
// (nil for the records of the rewritten stretch), and ok, when data is the
// last file with one stretch of its instances array rewritten.
func (p *parser) window(data []byte) (arr span, spans []span, decs []*decoded, ok bool) {
	old := p.last
	if old == nil {
		return span{}, nil, nil, false
	}
	pre := commonPrefix(old, data)
	if pre == len(old) && pre == len(data) { // the same file
		return p.arr, p.spans, p.decs, true
	}
	suf := commonSuffix(old[pre:], data[pre:])
	oldEnd := len(old) - suf // the stretch is old[pre:oldEnd], data[pre:len(data)-suf]
	// The array's brackets must both be outside the stretch.
	if pre <= p.arr.start || oldEnd > p.arr.end {
		return span{}, nil, nil, false
	}
	// Kept before: records ending before the stretch (so that the byte
	// after each is the same too); kept after: records starting after its
	// first byte (so that the byte before each is the same).
	a := sort.Search(len(p.spans), func(k int) bool { return p.spans[k].end >= pre })
	b := sort.Search(len(p.spans), func(k int) bool { return p.spans[k].start > oldEnd })
	if b < a {
		return span{}, nil, nil, false
	}
	shift := len(data) - len(old)
	lo, hi := p.arr.start+1, p.arr.end+shift
	if a > 0 {
		lo = p.spans[a-1].end
	}
	if b < len(p.spans) {
		hi = p.spans[b].start + shift
	}
	if lo > hi {
		return span{}, nil, nil, false
	}
	i, j, ok := between(data, lo, hi, a > 0, b < len(p.spans))
	if !ok {
		return span{}, nil, nil, false
	}
	var mid []span
	if i < j {
		// The records of the stretch sit two levels down (the file's
		// object, its array): the limit, then the syntax.
		if _, ok := depthOK(data[i:j], maxDepth-2); !ok {
			return span{}, nil, nil, false
		}
		wrapped := make([]byte, 0, j-i+2)
		wrapped = append(append(append(wrapped, '['), data[i:j]...), ']')
		if !json.Valid(wrapped) {
			return span{}, nil, nil, false
		}
		mid = elements(wrapped, span{0, len(wrapped) - 1})
		for k := range mid {
			mid[k].start += i - 1
			mid[k].end += i - 1
		}
	}
	n := a + len(mid) + len(p.spans) - b
	spans = make([]span, 0, n)
	spans = append(append(spans, p.spans[:a]...), mid...)
	for _, s := range p.spans[b:] {
		spans = append(spans, span{s.start + shift, s.end + shift})
	}
	decs = make([]*decoded, n)
	copy(decs, p.decs[:a])
	copy(decs[a+len(mid):], p.decs[b:])
	// A record of the stretch that was one of the records it replaced
	// (moved, or written again alike) is not decoded again.
	if len(mid) > 0 && b > a {
		replaced := make(map[string]*decoded, b-a)
		for _, d := range p.decs[a:b] {
			replaced[d.raw] = d
		}
		for k, s := range mid {
			decs[a+k] = replaced[string(data[s.start:s.end])]
		}
	}
	return span{p.arr.start, p.arr.end + shift}, spans, decs, true
}

// between checks what lies in data[lo:hi], between the records kept before
// (if before) and after (if after), and returns where the elements in it
// are, without the commas that join them to those records: i == j for
// none. ok is false where it cannot be a run of array elements so joined.
func between(data []byte, lo, hi int, before, after bool) (i, j int, ok bool) {
	i, j = min(skipSpace(data, lo), hi), hi
	for j > i && isSpace(data[j-1]) {
		j--
	}
	if before {
		if i == j {
			return i, i, !after // "[..., x]" and no comma before what follows
		}
		if data[i] != ',' {
			return 0, 0, false
		}
		if i = min(skipSpace(data, i+1), j); i == j {
			return i, i, after // one comma, between x and what follows
		}
	} else if i == j {
		return i, i, true
	}
	if after {
		if data[j-1] != ',' {
			return 0, 0, false
		}
		for j--; j > i && isSpace(data[j-1]); j-- {
		}
		if i == j {
			return 0, 0, false
		}
	}
	return i, j, true
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// commonPrefix is how many bytes a and b begin with alike.
func commonPrefix(a, b []byte) int {
	n := min(len(a), len(b))
	i := 0
	for ; i+256 <= n && bytes.Equal(a[i:i+256], b[i:i+256]); i += 256 {
	}
	for ; i < n && a[i] == b[i]; i++ {
	}
	return i
}

// commonSuffix is how many bytes a and b end with alike.
func commonSuffix(a, b []byte) int {
	n := min(len(a), len(b))
	i := 0
	for ; i+256 <= n && bytes.Equal(a[len(a)-i-256:len(a)-i], b[len(b)-i-256:len(b)-i]); i += 256 {
	}
	for ; i < n && a[len(a)-1-i] == b[len(b)-1-i]; i++ {
	}
	return i
}
