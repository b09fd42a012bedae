package controller

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/weftmesh/weft/core/model"
)

// The controller warns once per unisolated instance, again only after it
// was isolated in between, and never about an isolated one.
func TestIsolationWarnings(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	w := &isolationWarnings{}
	snap := func(isos ...model.Isolation) model.Snapshot {
		s := model.Snapshot{Adapter: "local"}
		for i, iso := range isos {
			s.Instances = append(s.Instances, model.Instance{ID: []string{"a-0", "b-0", "c-0"}[i], Service: "svc", Address: "127.0.0.2", Ports: map[string]int{"app": 8080}, Isolation: iso})
		}
		return s
	}
	count := func() map[string]int {
		m := map[string]int{}
		for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			for _, id := range []string{"a-0", "b-0", "c-0"} {
				if strings.Contains(line, "instance="+id) && strings.Contains(line, "NOT ISOLATED") {
					m[id]++
				}
			}
		}
		return m
	}
	w.warn(log, snap(model.IsolationNone, model.IsolationGuard, model.IsolationUnknown))
	w.warn(log, snap(model.IsolationNone, model.IsolationGuard, model.IsolationUnknown))
	if got := count(); got["a-0"] != 1 || got["b-0"] != 0 || got["c-0"] != 1 {
		t.Errorf("warnings per instance %v, want a-0 and c-0 once", got)
	}
	w.warn(log, snap(model.IsolationGuard, model.IsolationGuard, model.IsolationNetNS))
	w.warn(log, snap(model.IsolationNone, model.IsolationNone, model.IsolationNetNS))
	if got := count(); got["a-0"] != 2 || got["b-0"] != 1 || got["c-0"] != 1 {
		t.Errorf("warnings per instance %v, want a-0 twice (it lost its guard), b-0 once, c-0 once", got)
	}
}
