package api

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/weftmesh/weft/core/ca"
)

// nodeToken answers POST /v1/join-tokens with a node: a node token for the
// node proxy of req.Node, for the instances adapter req.Adapter places
// there (a launcher that runs a node proxy itself, as the local adapter
// does for its own).
func (h *handler) nodeToken(w http.ResponseWriter, req JoinTokenRequest) {
	if req.Adapter == "" || req.Instance != "" || req.Service != "" || !validNodeName(req.Node) {
		http.Error(w, "a node token needs adapter and node (1 to 253 printable characters without spaces), and no instance or service", http.StatusBadRequest)
		return
	}
	ttl := time.Duration(req.TTLSeconds) * time.Second
	if ttl <= 0 || ttl > time.Hour {
		ttl = 10 * time.Minute
	}
	tok, err := ca.MintNodeToken(ca.DeriveJoinKey(h.o.Authority.JoinSecret(), req.Adapter), req.Adapter, req.Node, ttl)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(JoinTokenResponse{Token: tok, ExpiresIn: ttl.String()})
}

func validNodeName(n string) bool {
	if n == "" || len(n) > 253 {
		return false
	}
	for i := 0; i < len(n); i++ {
		if c := n[i]; c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}
