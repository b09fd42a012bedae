package balance

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/weftmesh/weft/core/meshapi"
)

func TestOutlierEjection(t *testing.T) {
	od := &outlierCfg{consecutive5xx: 2, base: time.Second, maxPercent: 50}
	eps := hashEps("a", "b", "c", "d")
	now := time.Unix(0, 0)
	cfg := od.proto()
	if Observe(cfg, eps, eps[0], Outcome5xx, now) {
		t.Fatal("ejected after one failure of two")
	}
	if !Observe(cfg, eps, eps[0], Outcome5xx, now) {
		t.Fatal("not ejected after two failures in a row")
	}
	if !eps[0].Ejected(now.Add(999*time.Millisecond)) || eps[0].Ejected(now.Add(time.Second)) {
		t.Error("the ejection does not last exactly the base time")
	}
	Observe(cfg, eps, eps[1], Outcome5xx, now)
	if !Observe(cfg, eps, eps[1], OutcomeGateway, now) {
		t.Fatal("a second Endpoint (50%) not ejected")
	}
	Observe(cfg, eps, eps[2], Outcome5xx, now)
	if Observe(cfg, eps, eps[2], Outcome5xx, now) {
		t.Error("a third Endpoint ejected past max_ejected_percent 50")
	}
	if skip := EjectedSkip(cfg, eps, now); len(skip) != 2 || !skip[eps[0]] || !skip[eps[1]] {
		t.Errorf("skip set %v, want a and b", skip)
	}
	// Ejected again right away, the Endpoint stays out twice as long.
	later := now.Add(time.Second)
	Observe(cfg, eps, eps[0], Outcome5xx, later)
	Observe(cfg, eps, eps[0], Outcome5xx, later)
	if !eps[0].Ejected(later.Add(1500 * time.Millisecond)) {
		t.Error("a second ejection did not last twice the base time")
	}
	// A success resets the count.
	Observe(cfg, eps, eps[3], Outcome5xx, now)
	Observe(cfg, eps, eps[3], OutcomeOK, now)
	if Observe(cfg, eps, eps[3], Outcome5xx, now) {
		t.Error("ejected although a success came between the failures")
	}
}

type outlierCfg struct {
	consecutive5xx uint32
	base           time.Duration
	maxPercent     uint32
}

func (o *outlierCfg) proto() *meshapi.OutlierDetection {
	return &meshapi.OutlierDetection{
		Consecutive_5Xx:   o.consecutive5xx,
		BaseEjectionTime:  durationpb.New(o.base),
		MaxEjectedPercent: o.maxPercent,
	}
}
