package controller

import (
	"fmt"
	"log/slog"
	"sync"

	"github.com/weftmesh/weft/core/model"
)

// isolationWarnings logs, once per instance, that an instance's app port
// and outbound ports are open beside its sidecar.
type isolationWarnings struct {
	mu     sync.Mutex
	warned map[string]map[string]bool // by adapter, then instance ID
	seq    map[string]uint64          // by adapter: the Seq of its last snapshot
}

func (w *isolationWarnings) warn(log *slog.Logger, s model.Snapshot) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.warned == nil {
		w.warned = map[string]map[string]bool{}
	}
	// Keyed without building a key: every snapshot of every adapter
	// passes here, ten thousand instances at a time.
	warned := w.warned[s.Adapter]
	if warned == nil {
		warned = map[string]bool{}
		w.warned[s.Adapter] = warned
	}
	ins := s.Instances
	if s.Delta != nil && w.seq[s.Adapter] != 0 && s.Delta.From == w.seq[s.Adapter] {
		// The rest were looked at in an earlier snapshot.
		ins = s.Delta.Upserts
		for _, id := range s.Delta.Removed {
			delete(warned, id)
		}
	}
	if w.seq == nil {
		w.seq = map[string]uint64{}
	}
	w.seq[s.Adapter] = s.Seq
	for _, in := range ins {
		if in.Isolated() {
			delete(warned, in.ID) // warned again if it loses its isolation
			continue
		}
		if warned[in.ID] {
			continue
		}
		warned[in.ID] = true
		log.Warn("INSTANCE NOT ISOLATED: its app port or its outbound ports are open to local processes, which can skip the mesh's mTLS and policy, forge X-Weft-Caller, or call upstreams as this service",
			"adapter", s.Adapter, "instance", in.ID, "service", in.Service, "isolation", isolationName(in.Isolation),
			"app", fmt.Sprintf("%s:%d", in.Address, in.Ports[model.PortApp]))
	}
}

// isolationName spells an isolation for people: an unknown one is none.
func isolationName(i model.Isolation) string {
	if i == model.IsolationUnknown {
		return "none (not reported)"
	}
	return string(i)
}
