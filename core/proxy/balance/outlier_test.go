package balance

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/weftmesh/weft/core/meshapi"
)

// fakeClock is a Clock that moves only when a test advances it.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers map[*fakeTimer]bool
}

type fakeTimer struct {
	at time.Time
	c  chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Unix(1000, 0), timers: map[*fakeTimer]bool{}}
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) At(t time.Time) (<-chan time.Time, func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	tm := &fakeTimer{at: t, c: make(chan time.Time, 1)}
	if !f.now.Before(t) {
		tm.c <- f.now
		return tm.c, func() {}
	}
	f.timers[tm] = true
	return tm.c, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		delete(f.timers, tm)
	}
}

// Advance moves the clock by d and fires the timers due.
func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	for tm := range f.timers {
		if !f.now.Before(tm.at) {
			tm.c <- f.now
			delete(f.timers, tm)
		}
	}
}

type odCfg struct {
	consecutive5xx, maxPercent uint32
	base, interval             time.Duration
	sr                         *meshapi.OutlierSuccessRate
}

func (o odCfg) proto() *meshapi.OutlierDetection {
	od := &meshapi.OutlierDetection{
		Consecutive_5Xx:   o.consecutive5xx,
		BaseEjectionTime:  durationpb.New(o.base),
		MaxEjectedPercent: o.maxPercent,
		SuccessRate:       o.sr,
	}
	if o.interval > 0 {
		od.Interval = durationpb.New(o.interval)
	}
	return od
}

// manualDetector is a Detector whose steps the test takes itself: its
// goroutine is stopped, so nothing moves behind the test's back.
func manualDetector(t *testing.T, od *meshapi.OutlierDetection, eps []*Endpoint) (*Detector, *fakeClock) {
	t.Helper()
	clk := newFakeClock()
	d := NewDetector(DetectorOptions{Clock: clk})
	d.Close()
	d.cfg.Store(&detectorConfig{od: od, eps: eps})
	return d, clk
}

func TestOutlierConsecutiveEjection(t *testing.T) {
	es := hashEps("a", "b", "c", "d")
	d, clk := manualDetector(t, odCfg{consecutive5xx: 2, base: time.Second, maxPercent: 50}.proto(), es)
	now := clk.Now()
	if d.Observe(es[0], Outcome5xx) {
		t.Fatal("ejected after one failure of two")
	}
	if !d.Observe(es[0], Outcome5xx) {
		t.Fatal("not ejected after two failures in a row")
	}
	if d.step(now.Add(999 * time.Millisecond)); !es[0].Ejected() {
		t.Error("returned before its base ejection time")
	}
	d.Observe(es[1], Outcome5xx)
	if !d.Observe(es[1], OutcomeGateway) {
		t.Fatal("a second Endpoint (50%) not ejected")
	}
	d.Observe(es[2], Outcome5xx)
	if d.Observe(es[2], Outcome5xx) {
		t.Error("a third Endpoint ejected past max_ejected_percent 50")
	}
	if skip := d.Skip(es); len(skip) != 2 || !skip[es[0]] || !skip[es[1]] {
		t.Errorf("skip set %v, want a and b", skip)
	}
	if d.step(now.Add(time.Second)); es[0].Ejected() || es[1].Ejected() {
		t.Error("not returned when the base ejection time ended")
	}
	// Ejected again right away, the Endpoint stays out twice as long.
	clk.Advance(time.Second)
	d.Observe(es[0], Outcome5xx)
	d.Observe(es[0], Outcome5xx)
	if d.step(clk.Now().Add(1500 * time.Millisecond)); !es[0].Ejected() {
		t.Error("a second ejection did not last twice the base time")
	}
	if d.step(clk.Now().Add(2 * time.Second)); es[0].Ejected() {
		t.Error("a second ejection lasted past twice the base time")
	}
	// A success resets the count.
	d.Observe(es[3], Outcome5xx)
	d.Observe(es[3], OutcomeOK)
	if d.Observe(es[3], Outcome5xx) {
		t.Error("ejected although a success came between the failures")
	}
}

func TestSuccessRateThreshold(t *testing.T) {
	for _, tc := range []struct {
		rates  []float64
		factor float64
		want   float64
	}{
		{[]float64{100, 100, 100}, 1.9, 100},
		{[]float64{100, 0}, 1, 0},                       // mean 50, stdev 50
		{[]float64{100, 100, 50}, 1, 83.3333 - 23.5702}, // mean 83.33, stdev 23.57
		{[]float64{90, 90, 90, 90, 40}, 1.9, 80 - 1.9*20},
	} {
		got := SuccessRateThreshold(tc.rates, tc.factor)
		if d := got - tc.want; d > 0.001 || d < -0.001 {
			t.Errorf("threshold of %v x %v = %.4f, want %.4f", tc.rates, tc.factor, got, tc.want)
		}
	}
}

// TestSuccessRateEjection runs one sweep over endpoints whose tries in the
// interval are given as successes/failures, and checks which are ejected.
func TestSuccessRateEjection(t *testing.T) {
	type host struct{ ok, failed int }
	sr := func(minHosts, volume, factorMilli uint32) *meshapi.OutlierSuccessRate {
		return &meshapi.OutlierSuccessRate{MinimumHosts: minHosts, RequestVolume: volume, StdevFactorMilli: factorMilli}
	}
	for _, tc := range []struct {
		name       string
		sr         *meshapi.OutlierSuccessRate
		maxPercent uint32
		hosts      []host
		want       string // ids ejected, in order
	}{
		{"one bad of five", sr(5, 10, 1900), 50, []host{{100, 0}, {100, 0}, {100, 0}, {100, 0}, {50, 50}}, "e"},
		{"half failing of three, factor 1", sr(3, 10, 1000), 50, []host{{10, 0}, {10, 0}, {5, 5}}, "c"},
		// With three hosts one outlier is at most sqrt(2) = 1.41 standard
		// deviations below the mean: a factor of 1.9 ejects nothing.
		{"three hosts cannot pass 1.9", sr(3, 10, 1900), 50, []host{{10, 0}, {10, 0}, {0, 10}}, ""},
		{"all equal", sr(3, 10, 1000), 50, []host{{5, 5}, {5, 5}, {5, 5}}, ""},
		{"too few hosts", sr(4, 10, 1000), 50, []host{{10, 0}, {10, 0}, {5, 5}}, ""},
		// c's 9 tries are under the request volume: it does not count, so
		// only a and b qualify, fewer than minimum_hosts.
		{"request volume gate", sr(3, 10, 1000), 50, []host{{10, 0}, {10, 0}, {4, 5}}, ""},
		{"request volume gate keeps the others", sr(3, 10, 1000), 50,
			[]host{{10, 0}, {10, 0}, {10, 0}, {5, 5}, {0, 3}}, "d"},
		{"cap: lowest rate first", sr(5, 10, 500), 20,
			[]host{{100, 0}, {100, 0}, {100, 0}, {100, 0}, {100, 0}, {100, 0}, {60, 40}, {20, 80}, {40, 60}, {100, 0}}, "hi"},
		{"cap 10 of 10 hosts", sr(5, 10, 500), 10,
			[]host{{100, 0}, {100, 0}, {100, 0}, {100, 0}, {100, 0}, {100, 0}, {60, 40}, {20, 80}, {40, 60}, {100, 0}}, "h"},
		// A configuration from elsewhere with request_volume 0: an
		// endpoint without tries has no rate and does not count.
		{"request volume 0", sr(3, 0, 1000), 50, []host{{10, 0}, {10, 0}, {0, 0}, {5, 5}}, "d"},
		{"no success-rate block", nil, 50, []host{{100, 0}, {100, 0}, {100, 0}, {100, 0}, {0, 100}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var names []string
			for i := range tc.hosts {
				names = append(names, string(rune('a'+i)))
			}
			es := hashEps(names...)
			od := odCfg{base: 30 * time.Second, interval: 10 * time.Second, maxPercent: tc.maxPercent, sr: tc.sr}.proto()
			d, clk := manualDetector(t, od, es)
			d.step(clk.Now()) // starts the interval
			for i, h := range tc.hosts {
				for range h.ok {
					d.Observe(es[i], OutcomeOK)
				}
				for k := range h.failed {
					// Alternate 5xx and connection failures: both count,
					// and no consecutive check is configured.
					d.Observe(es[i], []Outcome{Outcome5xx, OutcomeLocal}[k%2])
				}
			}
			now := clk.Now().Add(10 * time.Second)
			next, evs := d.step(now)
			got := ""
			for _, ev := range evs {
				if !ev.Ejected || ev.Reason != ReasonSuccessRate || !ev.Until.Equal(now.Add(30*time.Second)) {
					t.Errorf("event %+v, want a success-rate ejection until %v", ev, now.Add(30*time.Second))
				}
				got += ev.Endpoint.ID
			}
			if got != tc.want {
				t.Errorf("ejected %q, want %q", got, tc.want)
			}
			for _, e := range es {
				if e.Ejected() != strings.Contains(tc.want, e.ID) {
					t.Errorf("%s: Ejected() = %v", e.ID, e.Ejected())
				}
			}
			if !next.Equal(now.Add(10 * time.Second)) {
				t.Errorf("next step at %v, want one interval on, %v", next, now.Add(10*time.Second))
			}
			// The next interval starts from zero: no tries, no ejection.
			if _, evs := d.step(now.Add(10 * time.Second)); len(evs) != 0 {
				t.Errorf("an empty interval gave events %+v", evs)
			}
		})
	}
}

// TestSuccessRateEjectionGrows checks that a success-rate ejection lasts
// base time x ejections, like a consecutive one, and that the count goes
// down by one per whole interval spent in the set.
func TestSuccessRateEjectionGrows(t *testing.T) {
	es := hashEps("a", "b", "c")
	od := odCfg{base: 30 * time.Second, interval: 10 * time.Second, maxPercent: 50,
		sr: &meshapi.OutlierSuccessRate{MinimumHosts: 3, RequestVolume: 4, StdevFactorMilli: 1000}}.proto()
	d, clk := manualDetector(t, od, es)
	now := clk.Now()
	d.step(now)
	interval := func(cBad bool) []Event {
		for _, e := range es[:2] {
			for range 4 {
				d.Observe(e, OutcomeOK)
			}
		}
		c := []Outcome{OutcomeOK, OutcomeOK, OutcomeOK, OutcomeOK}
		if cBad {
			c = []Outcome{OutcomeOK, OutcomeOK, Outcome5xx, Outcome5xx}
		}
		for _, o := range c {
			d.Observe(es[2], o)
		}
		now = now.Add(10 * time.Second)
		_, evs := d.step(now)
		return evs
	}
	// Ejected at 10s for 30s; back at 40s; ejected again at 50s (no whole
	// interval in the set since): for 60s.
	for i, want := range []time.Duration{30 * time.Second, 0, 0, -1, 60 * time.Second} {
		evs := interval(i == 0 || i == 4)
		switch {
		case want > 0:
			if len(evs) != 1 || !evs[0].Ejected || !evs[0].Until.Equal(now.Add(want)) {
				t.Fatalf("interval %d: %+v, want c ejected for %v", i, evs, want)
			}
		case want < 0:
			if len(evs) != 1 || evs[0].Ejected || es[2].Ejected() {
				t.Fatalf("interval %d: %+v, want c returned", i, evs)
			}
		default:
			if len(evs) != 0 {
				t.Fatalf("interval %d: %+v, want nothing", i, evs)
			}
		}
	}
	// Back at 110s; two whole intervals in the set (110-130s) take the
	// count from 2 to 0, so the next ejection lasts the base time again.
	for range 8 {
		interval(false)
	}
	if es[2].Ejected() {
		t.Fatal("c still ejected")
	}
	if evs := interval(true); len(evs) != 1 || !evs[0].Until.Equal(now.Add(30*time.Second)) {
		t.Fatalf("after a quiet time: %+v, want c ejected for the base time 30s", evs)
	}
}

// TestDetectorTimerReturns checks, with the goroutine running on a fake
// clock, that an ejected endpoint returns when its ejection time ends
// with no traffic at all, and that a success-rate sweep happens on the
// timer.
func TestDetectorTimerReturns(t *testing.T) {
	clk := newFakeClock()
	start := clk.Now()
	events := make(chan Event, 16)
	d := NewDetector(DetectorOptions{Clock: clk, Notify: func(ev Event) { events <- ev }})
	defer d.Close()
	es := hashEps("a", "b", "c")
	od := odCfg{consecutive5xx: 2, base: 5 * time.Second, interval: time.Hour, maxPercent: 50}.proto()
	d.Update(od, es)
	d.Observe(es[0], Outcome5xx)
	d.Observe(es[0], Outcome5xx)
	if ev := next(t, events); !ev.Ejected || ev.Endpoint != es[0] {
		t.Fatalf("event %+v, want a ejected", ev)
	}
	// The goroutine sets its timer for the ejection's end (5s), not for
	// the sweep (1h).
	waitTimerAt(t, clk, start.Add(5*time.Second))
	clk.Advance(5 * time.Second)
	if ev := next(t, events); ev.Ejected || ev.Endpoint != es[0] || es[0].Ejected() {
		t.Fatalf("event %+v, want a returned", ev)
	}

	// Success-rate mode on the same Detector: the sweep runs on the timer.
	od = odCfg{base: 5 * time.Second, interval: 10 * time.Second, maxPercent: 50,
		sr: &meshapi.OutlierSuccessRate{MinimumHosts: 3, RequestVolume: 2, StdevFactorMilli: 1000}}.proto()
	d.Update(od, es)
	for _, e := range es[1:] {
		d.Observe(e, OutcomeOK)
		d.Observe(e, OutcomeOK)
	}
	d.Observe(es[0], OutcomeOK)
	d.Observe(es[0], OutcomeLocal)
	sweep := clk.Now().Add(10 * time.Second) // a new interval starts a new period
	waitTimerAt(t, clk, sweep)
	clk.Advance(10 * time.Second)
	if ev := next(t, events); !ev.Ejected || ev.Endpoint != es[0] || ev.Reason != ReasonSuccessRate {
		t.Fatalf("event %+v, want a ejected by success rate", ev)
	}
	// Its second ejection: it comes back after twice the base time,
	// without traffic.
	waitTimerAt(t, clk, sweep.Add(10*time.Second))
	clk.Advance(10 * time.Second)
	if ev := next(t, events); ev.Ejected || ev.Endpoint != es[0] {
		t.Fatalf("event %+v, want a returned", ev)
	}
}

// waitTimerAt waits (bounded) until the Detector's goroutine sleeps on a
// timer for at, so that an Advance cannot race with it setting one.
func waitTimerAt(t *testing.T, clk *fakeClock, at time.Time) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		clk.mu.Lock()
		var set []time.Time
		found := false
		for tm := range clk.timers {
			set = append(set, tm.at)
			found = found || tm.at.Equal(at)
		}
		clk.mu.Unlock()
		if found {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Detector's goroutine set no timer for %v within 5s (timers: %v)", at, set)
		}
		runtime.Gosched()
	}
}

func next(t *testing.T, events chan Event) Event {
	t.Helper()
	select {
	case ev := <-events:
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
	}
	return Event{}
}

// detectorGoroutines counts the goroutines running a Detector.
func detectorGoroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	// A goroutine not yet started shows only its wrapper frame; "created
	// by" is there in every state.
	return strings.Count(string(buf), "created by github.com/weftmesh/weft/core/proxy/balance.(*Detector).Update")
}

// TestDetectorGoroutine checks that the goroutine runs only while a
// configuration asks for outlier detection, and that Close ends it.
func TestDetectorGoroutine(t *testing.T) {
	base := detectorGoroutines()
	es := hashEps("a", "b")
	od := odCfg{consecutive5xx: 2, base: time.Second, maxPercent: 50}.proto()
	var ds []*Detector
	for range 3 {
		d := NewDetector(DetectorOptions{})
		d.Update(od, es)
		d.Update(od, es) // a new configuration: the same goroutine
		ds = append(ds, d)
	}
	if got := detectorGoroutines() - base; got != 3 {
		t.Fatalf("%d goroutines for 3 Detectors", got)
	}
	ds[0].Update(nil, es) // outlier detection removed: stopped (Update waits)
	ds[1].Close()
	ds[1].Close()        // idempotent
	ds[1].Update(od, es) // closed: starts none
	if got := detectorGoroutines() - base; got != 1 {
		t.Fatalf("%d goroutines, want 1 after one Update(nil) and one Close", got)
	}
	ds[0].Close()
	ds[2].Close()
	if got := detectorGoroutines() - base; got != 0 {
		t.Fatalf("%d goroutines left after Close", got)
	}
	var nilD *Detector
	nilD.Close()
	if nilD.Observe(es[0], Outcome5xx) || nilD.Skip(es) != nil {
		t.Error("a nil Detector detected something")
	}
}

func TestSkipAllEjected(t *testing.T) {
	es := hashEps("a", "b")
	d, _ := manualDetector(t, odCfg{consecutive5xx: 1, base: time.Second, maxPercent: 100}.proto(), es)
	d.Observe(es[0], Outcome5xx)
	if skip := d.Skip(es); len(skip) != 1 {
		t.Errorf("skip %v, want a", skip)
	}
	d.Observe(es[1], Outcome5xx)
	if skip := d.Skip(es); skip != nil {
		t.Errorf("skip %v with every endpoint ejected, want none", skip)
	}
	d.cfg.Store(&detectorConfig{eps: es})
	if skip := d.Skip(es[:1]); skip != nil {
		t.Errorf("skip %v without outlier detection configured", skip)
	}
	st := fmt.Sprint(d.Stats())
	if !strings.Contains(st, "consecutive_5xx") {
		t.Errorf("stats %s do not name the reason", st)
	}
}

// TestDetectorZeroInterval: a configuration without an interval sweeps
// every DefaultOutlierInterval, never in a busy loop.
func TestDetectorZeroInterval(t *testing.T) {
	es := hashEps("a")
	d, clk := manualDetector(t, &meshapi.OutlierDetection{Consecutive_5Xx: 1}, es)
	now := clk.Now()
	if next, _ := d.step(now); !next.Equal(now.Add(DefaultOutlierInterval)) {
		t.Errorf("next step at %v, want %v", next, now.Add(DefaultOutlierInterval))
	}
	if next, _ := d.step(now.Add(DefaultOutlierInterval)); !next.Equal(now.Add(2 * DefaultOutlierInterval)) {
		t.Errorf("next step after a sweep at %v, want one more interval", next)
	}
}
