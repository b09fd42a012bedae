package balance

import (
	"sync"
	"time"

	"github.com/weftmesh/weft/core/meshapi"
)

// outlier is an Endpoint's outlier-detection state.
type outlier struct {
	mu                      sync.Mutex
	c5xx, cGateway, cLocal  uint32
	ejections               int
	ejectedUntil, lastEject time.Time
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

// Ejected reports whether outlier detection keeps e out at now.
func (e *Endpoint) Ejected(now time.Time) bool {
	e.out.mu.Lock()
	defer e.out.mu.Unlock()
	return now.Before(e.out.ejectedUntil)
}

// Observe records a try's outcome on ep and ejects it when a count
// reaches its threshold, unless that would eject more than
// max_ejected_percent of eps. It reports whether it ejected ep.
func Observe(od *meshapi.OutlierDetection, eps []*Endpoint, ep *Endpoint, outcome Outcome, now time.Time) bool {
	if od == nil {
		return false
	}
	o := &ep.out
	o.mu.Lock()
	switch outcome {
	case OutcomeOK:
		o.c5xx, o.cGateway, o.cLocal = 0, 0, 0
	case Outcome5xx:
		o.c5xx++
		o.cGateway = 0
	case OutcomeGateway:
		o.c5xx++
		o.cGateway++
	case OutcomeLocal:
		o.cLocal++
	}
	trip := (od.GetConsecutive_5Xx() > 0 && o.c5xx >= od.GetConsecutive_5Xx()) ||
		(od.GetConsecutiveGatewayErrors() > 0 && o.cGateway >= od.GetConsecutiveGatewayErrors()) ||
		(od.GetConsecutiveLocalFailures() > 0 && o.cLocal >= od.GetConsecutiveLocalFailures())
	already := now.Before(o.ejectedUntil)
	o.mu.Unlock()
	if !trip || already {
		return false
	}
	ejected := 0
	for _, e := range eps {
		if e != ep && e.Ejected(now) {
			ejected++
		}
	}
	if (ejected+1)*100 > int(od.GetMaxEjectedPercent())*len(eps) {
		return false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if iv := od.GetInterval().AsDuration(); iv > 0 && !o.lastEject.IsZero() {
		o.ejections = max(0, o.ejections-int(now.Sub(o.lastEject)/iv))
	}
	o.ejections++
	o.lastEject = now
	o.ejectedUntil = now.Add(time.Duration(o.ejections) * od.GetBaseEjectionTime().AsDuration())
	o.c5xx, o.cGateway, o.cLocal = 0, 0, 0
	return true
}

// EjectedSkip is the endpoints of eps ejected now, as a skip set, or nil
// when none is, or when all are (then ejection is ignored: better a failing
// instance than none).
func EjectedSkip(od *meshapi.OutlierDetection, eps []*Endpoint, now time.Time) map[*Endpoint]bool {
	if od == nil {
		return nil
	}
	var skip map[*Endpoint]bool
	for _, e := range eps {
		if e.Ejected(now) {
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
