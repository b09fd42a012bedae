package telemetry

import (
	"testing"

	"github.com/weftmesh/weft/core/model"
)

// weft_controller_dropped counts what status lists under DROPPED, per
// reason: a proxy mode mismatch among them.
func TestDroppedMetric(t *testing.T) {
	m := NewMetrics(Sources{Dropped: func() ([]model.Dropped, map[string]int) {
		return nil, map[string]int{"proxy_mode_mismatch": 2, "undeclared_upstream": 1}
	}})
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "weft_controller_dropped" {
			continue
		}
		for _, s := range mf.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "reason" {
					got[l.GetValue()] = s.GetGauge().GetValue()
				}
			}
		}
	}
	if got["proxy_mode_mismatch"] != 2 || got["undeclared_upstream"] != 1 || len(got) != 2 {
		t.Fatalf("weft_controller_dropped = %v, want proxy_mode_mismatch 2 and undeclared_upstream 1", got)
	}
}
