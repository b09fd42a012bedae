package proxy

import (
	"encoding/json"
	"net/http"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/weftmesh/weft/core/meshapi"
)

// AdminHandler serves the sidecar's admin endpoints:
//
//	GET /ready    200 once a certificate is held and a config applied, else 503 and why
//	GET /metrics  Prometheus text
//	GET /config   the applied config and its version as JSON (ConfigUpdate)
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
