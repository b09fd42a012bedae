package proxy

import (
	"encoding/json"
	"net/http"
	"sort"

	"github.com/weftmesh/weft/core/proxy/balance"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/weftmesh/weft/core/meshapi"
)

// AdminHandler serves the sidecar's admin endpoints:
//
//	GET /ready    200 once a certificate is held and a config applied, else 503 and why
//	GET /metrics  Prometheus text
//	GET /config   the applied config and its version as JSON (ConfigUpdate)
//	GET /stats    each upstream's endpoints as JSON: in flight, outlier
//	              ejection (reason, until, count), last interval's success rate
//	GET /health   the application's health as this sidecar sees it, as JSON:
//	              the active check (if any), healthy, why, and the checker's
//	              counts; 200 while healthy, 503 while down
func (p *Proxy) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		if err := p.Ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", p.metrics.handler())
	mux.HandleFunc("GET /config", func(w http.ResponseWriter, _ *http.Request) {
		v, cfg := p.Config()
		if cfg == nil {
			http.Error(w, "no configuration applied yet", http.StatusNotFound)
			return
		}
		b, err := protojson.MarshalOptions{Multiline: true, EmitUnpopulated: true}.Marshal(&meshapi.ConfigUpdate{Version: v, Config: cfg})
		if err != nil {
			http.Error(w, "encoding the config: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(append(b, '\n'))
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		b, err := json.MarshalIndent(p.Stats(), "", "  ")
		if err != nil {
			http.Error(w, "encoding the stats: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(append(b, '\n'))
	})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		v := p.health.state()
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			http.Error(w, "encoding the health state: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if !v.Healthy {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		w.Write(append(b, '\n'))
	})
	return mux
}

// Stats is what GET /stats shows.
type Stats struct {
	Upstreams []UpstreamStats `json:"upstreams"`
}

// UpstreamStats is one upstream's endpoints and their outlier state.
type UpstreamStats struct {
	Name             string                  `json:"name"`
	Service          string                  `json:"service"`
	OutlierDetection bool                    `json:"outlier_detection"`
	Endpoints        []balance.EndpointStats `json:"endpoints"`
}

// Stats is the state of every upstream's endpoints, by upstream name.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	var outs []*outbound
	for _, s := range p.sockets {
		if o, ok := s.handler().(*outbound); ok {
			outs = append(outs, o)
		}
	}
	p.mu.Unlock()
	st := Stats{Upstreams: []UpstreamStats{}}
	for _, o := range outs {
		cur := o.st.Load()
		st.Upstreams = append(st.Upstreams, UpstreamStats{
			Name: o.name, Service: cur.service, OutlierDetection: o.det.Configured(), Endpoints: o.det.Stats(),
		})
	}
	sort.Slice(st.Upstreams, func(i, j int) bool { return st.Upstreams[i].Name < st.Upstreams[j].Name })
	return st
}
