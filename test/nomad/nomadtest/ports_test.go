package nomadtest

import (
	"testing"
	"time"

	"github.com/weftmesh/weft/test/harness"
)

// Two agents at once get disjoint slices of the schedulers' span, and a
// released slice can be taken again.
func TestPortSlicesAreExclusive(t *testing.T) {
	dir := portLockDir
	portLockDir = t.TempDir() // no other process's agents
	defer func() { portLockDir = dir }()
	a, err := lockPortSlice(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer a.release()
	b, err := lockPortSlice(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer b.release()
	for _, s := range []*portSlice{a, b} {
		if s.lo < harness.SchedulerPortsLo || s.hi > harness.SchedulerPortsHi || s.hi-s.lo != portSliceSize {
			t.Errorf("slice [%d, %d) is not a slice of %d ports of [%d, %d)", s.lo, s.hi, portSliceSize, harness.SchedulerPortsLo, harness.SchedulerPortsHi)
		}
	}
	if a.lo < b.hi && b.lo < a.hi {
		t.Fatalf("two agents at once got overlapping slices [%d, %d) and [%d, %d)", a.lo, a.hi, b.lo, b.hi)
	}
	lo := a.lo
	a.release()
	// Every other slice held: the released one is the one to take.
	var held []*portSlice
	defer func() {
		for _, s := range held {
			s.release()
		}
	}()
	for {
		s, err := lockPortSlice(0)
		if err != nil {
			t.Fatalf("the released slice [%d, ...) was not taken again: %v", lo, err)
		}
		held = append(held, s)
		if s.lo == lo {
			break
		}
	}
}
