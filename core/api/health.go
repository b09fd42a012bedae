package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// Paths of the controller's health endpoints, which answer without the
// token: a kubelet's (or Nomad's, or a load balancer's) probe has none.
// They say only whether the controller serves; nothing about the mesh.
const (
	// HealthLivePath answers 200 while the process serves its admin API.
	HealthLivePath = "/v1/health/live"
	// HealthReadyPath answers 200 once the controller has compiled a
	// configuration (it can serve sidecars), 503 with the reason before.
	HealthReadyPath = "/v1/health/ready"
)

// Health is the JSON answer of the health endpoints.
type Health struct {
	// Status is "alive", "ready" or "starting".
	Status string `json:"status"`
	// Reason says why a controller is not ready yet.
	Reason string `json:"reason,omitempty"`
	// RaftCanIssue, for a replica, says whether its cluster has a leader
	// (new sidecars can join, the CA can rotate). It does not make the
	// replica unready: without a quorum it still serves its sidecars
	// their configurations and renews their certificates, and taking it
	// out of a Service would only move them to replicas as leaderless.
	RaftCanIssue *bool `json:"raft_can_issue,omitempty"`
}

// serveHealth answers r if it asks for a health endpoint, and says
// whether it did.
func serveHealth(w http.ResponseWriter, r *http.Request, o Options) bool {
	if r.URL.Path != HealthLivePath && r.URL.Path != HealthReadyPath {
		return false
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "the health endpoints answer GET", http.StatusMethodNotAllowed)
		return true
	}
	h := Health{Status: "alive"}
	code := http.StatusOK
	if r.URL.Path == HealthReadyPath {
		h = readiness(o)
		if h.Status != "ready" {
			code = http.StatusServiceUnavailable
		}
	}
	if o.Replica != nil {
		can := o.Replica.Status().CanIssue
		h.RaftCanIssue = &can
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	if r.Method == http.MethodGet {
		_ = json.NewEncoder(w).Encode(h)
	}
	return true
}

// readiness says whether the controller can serve sidecars: it has
// compiled at least once (its adapters' first snapshots are in, or it
// gave up waiting for them).
func readiness(o Options) Health {
	if o.Mesh.Builds() > 0 {
		return Health{Status: "ready"}
	}
	reason := "no configuration compiled yet"
	if waiting, _ := o.Mesh.Waiting(); len(waiting) > 0 {
		reason += fmt.Sprintf(": waiting for the first snapshot of adapter %s", strings.Join(waiting, ", "))
	}
	return Health{Status: "starting", Reason: reason}
}
