package main

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"

	"github.com/weftmesh/weft/core/meshserver"
	"github.com/weftmesh/weft/core/model"
)

// OutboundReport is one outbound (upstream) listener of a sidecar, as its
// compiled configuration has it.
type OutboundReport struct {
	Upstream string `json:"upstream"`
	Address  string `json:"address"`
	Port     int    `json:"port"`
}

// outboundReports returns the outbound listeners in the compiled
// configuration of an instance, if it has one.
func outboundReports(srv *meshserver.Server, id string) []OutboundReport {
	cfg, _, ok := srv.Config(id)
	if !ok || cfg == nil {
		return nil
	}
	var out []OutboundReport
	for _, u := range cfg.GetUpstreams() {
		addr := u.GetBindAddress()
		if addr == "" {
			addr = "127.0.0.1" // where the sidecar binds a listener without one
		}
		out = append(out, OutboundReport{Upstream: u.GetName(), Address: addr, Port: int(u.GetLocalPort())})
	}
	return out
}

// appReport returns where the sidecar of an instance reaches its app
// ("ip:port"), as its compiled configuration has it, or "" before it has
// one. It can differ from the instance's address: an app on host
// networking is told to listen on 127.0.0.1.
func appReport(srv *meshserver.Server, id string) string {
	cfg, _, ok := srv.Config(id)
	if !ok || cfg == nil || cfg.GetInbound().GetAppPort() == 0 {
		return ""
	}
	in := cfg.GetInbound()
	return net.JoinHostPort(in.GetAppAddress(), strconv.Itoa(int(in.GetAppPort())))
}

// isolationWarnings logs, once per instance, that an instance's app port
// and outbound ports are open beside its sidecar.
type isolationWarnings struct {
	mu     sync.Mutex
	warned map[string]bool // adapter/instance
}

func (w *isolationWarnings) warn(log *slog.Logger, s model.Snapshot) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, in := range s.Instances {
		key := s.Adapter + "/" + in.ID
		if in.Isolated() {
			delete(w.warned, key) // warned again if it loses its isolation
			continue
		}
		if w.warned[key] {
			continue
		}
		w.warned[key] = true
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

// isolationCell is the ISOLATION column of `weft status`: loud when the
// app port is open.
func isolationCell(iso string) string {
	switch model.Isolation(iso) {
	case model.IsolationGuard, model.IsolationNetNS:
		return iso
	default:
		return "NONE (app port open)"
	}
}
