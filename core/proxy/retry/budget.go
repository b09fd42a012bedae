package retry

import (
	"sync"
	"time"
)

// Budget bounds retries to a share of recent requests: over the last
// budgetWindow seconds, retries may number at most percent of the
// requests plus minPerSecond for each second of the window.
type Budget struct {
	mu      sync.Mutex
	now     func() time.Time
	buckets [budgetWindow]budgetBucket
}

const budgetWindow = 10 // seconds

type budgetBucket struct {
	sec               int64
	requests, retries int
}

func (b *Budget) bucket() *budgetBucket {
	sec := b.now().Unix()
	bk := &b.buckets[sec%budgetWindow]
	if bk.sec != sec {
		*bk = budgetBucket{sec: sec}
	}
	return bk
}

func (b *Budget) request() {
	b.mu.Lock()
	b.bucket().requests++
	b.mu.Unlock()
}

// allow takes a retry from the budget, if there is one left.
func (b *Budget) allow(percent, minPerSecond int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	cur := b.bucket()
	oldest := cur.sec - budgetWindow + 1
	var requests, retries int
	for _, bk := range b.buckets {
		if bk.sec >= oldest {
			requests += bk.requests
			retries += bk.retries
		}
	}
	if (retries+1)*100 > requests*percent+minPerSecond*budgetWindow*100 {
		return false
	}
	cur.retries++
	return true
}
