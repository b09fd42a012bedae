package guard_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/proxy/guard"
)

// clock is a settable time for the tracker.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestThresholdBlocksAddressesOnly(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	var blocks []string
	tr := guard.New(guard.Options{Now: clk.now, OnBlock: func(s string, _ time.Time, _ string) { blocks = append(blocks, s) }})
	const ip, id = "203.0.113.7", "spiffe://weft.local/ns/default/svc/web"
	// The zero policy blocks nothing, whatever the count.
	for range 500 {
		tr.Note(ip, guard.Handshake)
	}
	if tr.Blocked(ip) {
		t.Fatal("blocked with blocking off")
	}
	tr.Set(guard.Policy{Threshold: 10, Window: 10 * time.Second, BlockFor: time.Minute, Addresses: true})
	clk.add(time.Hour) // a fresh window
	for i := range 9 {
		if tr.Note(ip, guard.Denied) {
			t.Fatalf("blocked after %d signals, threshold 10", i+1)
		}
		tr.Note(id, guard.Denied)
	}
	if !tr.Note(ip, guard.Denied) || !tr.Blocked(ip) {
		t.Fatal("not blocked at the threshold")
	}
	tr.Note(id, guard.Denied)
	if tr.Blocked(id) {
		t.Error("an identity was blocked with identities off")
	}
	if len(blocks) != 1 || blocks[0] != ip {
		t.Errorf("OnBlock heard %v, want [%s]", blocks, ip)
	}
	if b := tr.BlockedSources(); len(b) != 1 || b[0].Source != ip || !b[0].Until.Equal(clk.now().Add(time.Minute)) {
		t.Errorf("BlockedSources = %+v", b)
	}
	clk.add(time.Minute)
	if tr.Blocked(ip) {
		t.Error("still blocked after BlockFor")
	}
	top := tr.Top(5)
	if len(top) != 2 || top[0].Source != ip || top[0].ByKind["handshake"] != 500 || top[0].ByKind["denied"] != 10 {
		t.Errorf("Top = %+v", top)
	}
	c := tr.Counts()
	if c.ByKind["handshake"] != 500 || c.ByKind["denied"] != 20 || c.Blocks != 1 || c.Blocked != 0 {
		t.Errorf("Counts = %+v", c)
	}
}

// Signals spread thinner than the threshold per window never block.
func TestSlowSignalsDoNotBlock(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	tr := guard.New(guard.Options{Now: clk.now})
	tr.Set(guard.Policy{Threshold: 10, Window: 10 * time.Second, Addresses: true})
	for i := range 100 {
		clk.add(2 * time.Second) // 5 a window
		if tr.Note("198.51.100.1", guard.RateLimited) {
			t.Fatalf("blocked after %d signals at half the threshold's rate", i+1)
		}
	}
}

// A flood from many addresses costs a fixed table.
func TestBounded(t *testing.T) {
	tr := guard.New(guard.Options{Capacity: 64})
	tr.Set(guard.Policy{Threshold: 1, Addresses: true})
	for i := range 10000 {
		tr.Note(fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255), guard.Handshake)
	}
	c := tr.Counts()
	if c.Tracked != 64 || c.Blocked != 64 || c.Evicted != 10000-64 {
		t.Errorf("Counts = %+v, want 64 tracked and blocked, the rest evicted", c)
	}
	if len(tr.Top(1000)) != 64 {
		t.Error("Top lists more than the table holds")
	}
	if tr.Note("", guard.Denied) || tr.Note("x", guard.Kind("nope")) {
		t.Error("an empty source or unknown kind was noted")
	}
}

// Blocked costs no allocation when nothing is blocked.
func TestBlockedFastPath(t *testing.T) {
	tr := guard.New(guard.Options{})
	if n := testing.AllocsPerRun(100, func() { tr.Blocked("192.0.2.1") }); n != 0 {
		t.Errorf("Blocked allocates %v", n)
	}
}
