package balance

import (
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/core/meshapi"
)

// DefaultOutlierInterval is the sweep interval when a configuration gives
// none.
const DefaultOutlierInterval = 10 * time.Second

// Reasons an endpoint is ejected, as Event.Reason and in Stats.
const (
	ReasonConsecutive5xx     = "consecutive_5xx"
	ReasonConsecutiveGateway = "consecutive_gateway_errors"
	ReasonConsecutiveLocal   = "consecutive_local_failures"
	ReasonSuccessRate        = "success_rate"
)

// outlier is an Endpoint's outlier-detection state. Only a Detector
// changes ejected; Endpoint.Ejected reads it.
type outlier struct {
	mu                     sync.Mutex
	c5xx, cGateway, cLocal uint32
	tries, failed          uint64 // in the current interval
	ejections              int
	ejected                bool
	reason                 string
	ejectedUntil           time.Time
	// quiet: in the set, not ejected, since the interval began.
	quiet bool
	// The last interval's tries and success rate (percent; -1: no tries).
	lastTries uint64
	lastRate  float64
}

// Outcome is how one try went, for outlier detection.
type Outcome int

// Outcomes of one try.
const (
	OutcomeOK Outcome = iota
	Outcome5xx
	OutcomeGateway // 502, 503, 504: also a 5xx
	OutcomeLocal   // no connection, or it broke
)

// OutcomeOf is the outcome of a try answered with status code.
func OutcomeOf(code int) Outcome {
	switch {
	case code == 502 || code == 503 || code == 504:
		return OutcomeGateway
	case code >= 500:
		return Outcome5xx
	}
	return OutcomeOK
}

// Ejected reports whether outlier detection keeps e out now. It stays
// true until the Detector's timer returns e at the end of its ejection
// time.
func (e *Endpoint) Ejected() bool {
	e.out.mu.Lock()
	defer e.out.mu.Unlock()
	return e.out.ejected
}

// Clock is the time a Detector keeps: the real one (nil in Options), or
// a fake in tests.
type Clock interface {
	Now() time.Time
	// At returns a channel that receives once the time is t or later
	// (at once when it already is), and a function that stops it.
	At(t time.Time) (<-chan time.Time, func())
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) At(t time.Time) (<-chan time.Time, func()) {
	tm := time.NewTimer(time.Until(t))
	return tm.C, func() { tm.Stop() }
}

// Event is an ejection or a return, for logs and metrics.
type Event struct {
	Endpoint *Endpoint
	Ejected  bool      // false: returned to the set
	Reason   string    // why it was ejected (Reason*)
	Until    time.Time // an ejection: when it ends
	// Success-rate ejections: the endpoint's rate and the threshold it
	// fell below, in percent.
	Rate, Threshold float64
}

// DetectorOptions configure NewDetector. Both may be nil.
type DetectorOptions struct {
	Clock  Clock
	Notify func(Event) // called for each ejection and return, never under a lock
}

// A Detector runs outlier detection for the endpoints of one upstream:
// Observe counts each try's outcome and ejects on a consecutive-failure
// threshold; its own goroutine, while a configuration asks for outlier
// detection, sweeps every interval (success-rate ejections) and returns
// each ejected endpoint when its ejection time ends, traffic or none.
// A nil *Detector detects nothing. Close stops the goroutine.
type Detector struct {
	clock  Clock
	notify func(Event)
	cfg    atomic.Pointer[detectorConfig]
	wake   chan struct{} // an ejection moved the next deadline

	mu        sync.Mutex // run state and ejection decisions
	quit      chan struct{}
	done      chan struct{}
	closed    bool
	nextSweep time.Time
}

type detectorConfig struct {
	od  *meshapi.OutlierDetection
	eps []*Endpoint
}

// NewDetector returns a Detector with no configuration; Update gives it
// one.
func NewDetector(opts DetectorOptions) *Detector {
	d := &Detector{clock: opts.Clock, notify: opts.Notify, wake: make(chan struct{}, 1)}
	if d.clock == nil {
		d.clock = realClock{}
	}
	if d.notify == nil {
		d.notify = func(Event) {}
	}
	return d
}

// Update makes od (nil: no outlier detection) over eps the Detector's
// configuration. It starts the goroutine when od asks for detection and
// none runs, and stops it (waiting for it to end) when od is nil. A new
// interval starts a new sweep period.
func (d *Detector) Update(od *meshapi.OutlierDetection, eps []*Endpoint) {
	d.mu.Lock()
	old := d.cfg.Load()
	d.cfg.Store(&detectorConfig{od: od, eps: eps})
	if old == nil || old.od.GetInterval().AsDuration() != od.GetInterval().AsDuration() {
		d.nextSweep = time.Time{}
	}
	if od == nil || d.closed {
		d.stopLocked()
		return
	}
	if d.quit == nil {
		d.quit, d.done = make(chan struct{}), make(chan struct{})
		go d.run(d.quit, d.done)
	}
	d.mu.Unlock()
	d.poke()
}

// Close stops the goroutine and waits for it to end. Later Updates start
// none. It is idempotent.
func (d *Detector) Close() {
	if d == nil {
		return
	}
	d.mu.Lock()
	d.closed = true
	d.stopLocked()
}

// stopLocked stops the goroutine, if one runs, unlocks d.mu and waits for
// the goroutine to end.
func (d *Detector) stopLocked() {
	quit, done := d.quit, d.done
	d.quit, d.done = nil, nil
	d.mu.Unlock()
	if quit != nil {
		close(quit)
		<-done
	}
}

func (d *Detector) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// run sweeps and returns endpoints on time until quit closes.
func (d *Detector) run(quit, done chan struct{}) {
	defer close(done)
	for {
		next, evs := d.step(d.clock.Now())
		for _, ev := range evs {
			d.notify(ev)
		}
		c, stop := d.clock.At(next)
		select {
		case <-c:
		case <-d.wake:
		case <-quit:
			stop()
			return
		}
		stop()
	}
}

// step returns the endpoints whose ejection ended by now, runs the sweep
// when its interval is over, and says when the next step is due.
func (d *Detector) step(now time.Time) (time.Time, []Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	cfg := d.cfg.Load()
	if cfg == nil || cfg.od == nil {
		return now.Add(DefaultOutlierInterval), nil
	}
	iv := cfg.od.GetInterval().AsDuration()
	if iv <= 0 {
		iv = DefaultOutlierInterval
	}
	var evs []Event
	for _, e := range cfg.eps {
		if e.out.returnIfDue(now) {
			evs = append(evs, Event{Endpoint: e, Reason: e.out.reasonNow()})
		}
	}
	switch {
	case d.nextSweep.IsZero():
		// A new period: what came before counts in the first sweep.
		d.nextSweep = now.Add(iv)
	case !now.Before(d.nextSweep):
		evs = append(evs, d.sweep(cfg, now)...)
		d.nextSweep = now.Add(iv)
	}
	next := d.nextSweep
	for _, e := range cfg.eps {
		if until, ok := e.out.ejectedTill(); ok && until.Before(next) {
			next = until
		}
	}
	return next, evs
}

// sweep ends an interval: it takes each endpoint's tries of the interval
// and, in success-rate mode, ejects the endpoints below the threshold,
// the lowest rate first, within max_ejected_percent.
func (d *Detector) sweep(cfg *detectorConfig, now time.Time) []Event {
	type sample struct {
		e    *Endpoint
		rate float64
	}
	sr := cfg.od.GetSuccessRate()
	var qual []sample
	for _, e := range cfg.eps {
		tries, failed := e.out.endInterval()
		if sr != nil && tries > 0 && tries >= uint64(sr.GetRequestVolume()) {
			qual = append(qual, sample{e, 100 * float64(tries-failed) / float64(tries)})
		}
	}
	defer func() {
		for _, e := range cfg.eps {
			e.out.decay()
		}
	}()
	if sr == nil || len(qual) == 0 || len(qual) < int(sr.GetMinimumHosts()) {
		return nil
	}
	rates := make([]float64, len(qual))
	for i, s := range qual {
		rates[i] = s.rate
	}
	threshold := SuccessRateThreshold(rates, float64(sr.GetStdevFactorMilli())/1000)
	sort.SliceStable(qual, func(i, j int) bool { return qual[i].rate < qual[j].rate })
	var evs []Event
	for _, s := range qual {
		if s.rate >= threshold {
			break
		}
		if s.e.Ejected() || !d.capAllows(cfg, s.e) {
			continue
		}
		ev := s.e.out.eject(cfg.od, now, ReasonSuccessRate)
		ev.Endpoint, ev.Rate, ev.Threshold = s.e, s.rate, threshold
		evs = append(evs, ev)
	}
	return evs
}

// SuccessRateThreshold is the success rate below which an endpoint is an
// outlier: the mean of rates less factor times their (population)
// standard deviation.
func SuccessRateThreshold(rates []float64, factor float64) float64 {
	if len(rates) == 0 {
		return 0
	}
	var sum float64
	for _, r := range rates {
		sum += r
	}
	mean := sum / float64(len(rates))
	var sq float64
	for _, r := range rates {
		sq += (r - mean) * (r - mean)
	}
	return mean - factor*math.Sqrt(sq/float64(len(rates)))
}

// capAllows reports whether ejecting ep keeps the ejected endpoints of
// cfg within max_ejected_percent. Call with d.mu held.
func (d *Detector) capAllows(cfg *detectorConfig, ep *Endpoint) bool {
	ejected := 0
	for _, e := range cfg.eps {
		if e != ep && e.Ejected() {
			ejected++
		}
	}
	return (ejected+1)*100 <= int(cfg.od.GetMaxEjectedPercent())*len(cfg.eps)
}

// Observe records a try's outcome on ep: a failure (a 5xx or a failed
// connection) counts against its success rate, and when a consecutive
// count reaches its threshold ep is ejected, unless that would eject
// more than max_ejected_percent of the upstream. It reports whether it
// ejected ep.
func (d *Detector) Observe(ep *Endpoint, outcome Outcome) bool {
	if d == nil {
		return false
	}
	cfg := d.cfg.Load()
	if cfg == nil || cfg.od == nil {
		return false
	}
	reason := ep.out.record(cfg.od, outcome)
	if reason == "" {
		return false
	}
	d.mu.Lock()
	if ep.Ejected() || !d.capAllows(cfg, ep) {
		d.mu.Unlock()
		return false
	}
	ev := ep.out.eject(cfg.od, d.clock.Now(), reason)
	ev.Endpoint = ep
	d.mu.Unlock()
	d.poke()
	d.notify(ev)
	return true
}

// Skip is the endpoints of eps ejected now, as a skip set, or nil when
// none is, or when all are (then ejection is ignored: better a failing
// instance than none).
func (d *Detector) Skip(eps []*Endpoint) map[*Endpoint]bool {
	if d == nil {
		return nil
	}
	if cfg := d.cfg.Load(); cfg == nil || cfg.od == nil {
		return nil
	}
	var skip map[*Endpoint]bool
	for _, e := range eps {
		if e.Ejected() {
			if skip == nil {
				skip = make(map[*Endpoint]bool)
			}
			skip[e] = true
		}
	}
	if len(skip) == len(eps) {
		return nil
	}
	return skip
}

// Configured reports whether the configuration in force asks for
// outlier detection.
func (d *Detector) Configured() bool {
	if d == nil {
		return false
	}
	cfg := d.cfg.Load()
	return cfg != nil && cfg.od != nil
}

// EndpointStats is an endpoint's outlier-detection state, for the admin
// endpoint.
type EndpointStats struct {
	ID        string    `json:"id"`
	Addr      string    `json:"addr"`
	Inflight  int64     `json:"inflight"`
	Ejected   bool      `json:"ejected"`
	Reason    string    `json:"reason,omitempty"`      // why it is (or was last) ejected
	Until     time.Time `json:"until,omitzero"`        // when the ejection ends
	Ejections int       `json:"ejections"`             // the multiplier of the base ejection time
	LastTries uint64    `json:"last_interval_tries"`   // tries in the last full interval
	LastRate  float64   `json:"last_interval_success"` // their success rate in percent; -1: no tries
}

// Stats is the state of the Detector's endpoints, in configuration order.
func (d *Detector) Stats() []EndpointStats {
	if d == nil {
		return nil
	}
	cfg := d.cfg.Load()
	if cfg == nil {
		return nil
	}
	out := make([]EndpointStats, 0, len(cfg.eps))
	for _, e := range cfg.eps {
		o := &e.out
		o.mu.Lock()
		s := EndpointStats{
			ID: e.ID, Addr: e.Addr, Inflight: e.Inflight(), Ejected: o.ejected, Reason: o.reason,
			Ejections: o.ejections, LastTries: o.lastTries, LastRate: o.lastRate,
		}
		if o.ejected {
			s.Until = o.ejectedUntil
		}
		if o.lastTries == 0 {
			s.LastRate = -1
		}
		o.mu.Unlock()
		out = append(out, s)
	}
	return out
}

// record counts outcome and returns the reason of the consecutive check
// it trips, or "".
func (o *outlier) record(od *meshapi.OutlierDetection, outcome Outcome) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.tries++
	switch outcome {
	case OutcomeOK:
		o.c5xx, o.cGateway, o.cLocal = 0, 0, 0
	case Outcome5xx:
		o.failed++
		o.c5xx++
		o.cGateway = 0
	case OutcomeGateway:
		o.failed++
		o.c5xx++
		o.cGateway++
	case OutcomeLocal:
		o.failed++
		o.cLocal++
	}
	switch {
	case od.GetConsecutive_5Xx() > 0 && o.c5xx >= od.GetConsecutive_5Xx():
		return ReasonConsecutive5xx
	case od.GetConsecutiveGatewayErrors() > 0 && o.cGateway >= od.GetConsecutiveGatewayErrors():
		return ReasonConsecutiveGateway
	case od.GetConsecutiveLocalFailures() > 0 && o.cLocal >= od.GetConsecutiveLocalFailures():
		return ReasonConsecutiveLocal
	}
	return ""
}

// eject takes the endpoint out for base time x ejections (the count goes
// down by one for each whole interval spent in the set: decay).
func (o *outlier) eject(od *meshapi.OutlierDetection, now time.Time, reason string) Event {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.ejections++
	o.ejected = true
	o.quiet = false
	o.reason = reason
	o.ejectedUntil = now.Add(time.Duration(o.ejections) * od.GetBaseEjectionTime().AsDuration())
	o.c5xx, o.cGateway, o.cLocal = 0, 0, 0
	return Event{Ejected: true, Reason: reason, Until: o.ejectedUntil}
}

// returnIfDue ends an ejection whose time is over by now.
func (o *outlier) returnIfDue(now time.Time) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.ejected || now.Before(o.ejectedUntil) {
		return false
	}
	o.ejected = false
	return true
}

// ejectedTill is when the ejection in force ends, if one is.
func (o *outlier) ejectedTill() (time.Time, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.ejectedUntil, o.ejected
}

func (o *outlier) reasonNow() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.reason
}

// decay ends an interval for the ejection count: one less when the
// endpoint spent the whole interval in the set.
func (o *outlier) decay() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.quiet && !o.ejected && o.ejections > 0 {
		o.ejections--
	}
	o.quiet = !o.ejected
}

// endInterval takes the interval's counts and starts a new interval.
func (o *outlier) endInterval() (tries, failed uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	tries, failed = o.tries, o.failed
	o.lastTries = tries
	o.lastRate = 0
	if tries > 0 {
		o.lastRate = 100 * float64(tries-failed) / float64(tries)
	}
	o.tries, o.failed = 0, 0
	return tries, failed
}
