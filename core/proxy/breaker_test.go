package proxy

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
	if observe(cfg, eps, eps[0], outcome5xx, now) {
		t.Fatal("ejected after one failure of two")
	}
	if !observe(cfg, eps, eps[0], outcome5xx, now) {
		t.Fatal("not ejected after two failures in a row")
	}
	if !eps[0].ejected(now.Add(999*time.Millisecond)) || eps[0].ejected(now.Add(time.Second)) {
		t.Error("the ejection does not last exactly the base time")
	}
	observe(cfg, eps, eps[1], outcome5xx, now)
	if !observe(cfg, eps, eps[1], outcomeGateway, now) {
		t.Fatal("a second endpoint (50%) not ejected")
	}
	observe(cfg, eps, eps[2], outcome5xx, now)
	if observe(cfg, eps, eps[2], outcome5xx, now) {
		t.Error("a third endpoint ejected past max_ejected_percent 50")
	}
	if skip := ejectedSkip(cfg, eps, now); len(skip) != 2 || !skip[eps[0]] || !skip[eps[1]] {
		t.Errorf("skip set %v, want a and b", skip)
	}
	// Ejected again right away, the endpoint stays out twice as long.
	later := now.Add(time.Second)
	observe(cfg, eps, eps[0], outcome5xx, later)
	observe(cfg, eps, eps[0], outcome5xx, later)
	if !eps[0].ejected(later.Add(1500 * time.Millisecond)) {
		t.Error("a second ejection did not last twice the base time")
	}
	// A success resets the count.
	observe(cfg, eps, eps[3], outcome5xx, now)
	observe(cfg, eps, eps[3], outcomeOK, now)
	if observe(cfg, eps, eps[3], outcome5xx, now) {
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
