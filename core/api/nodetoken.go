package api

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/weftmesh/weft/core/ca"
	"github.com/weftmesh/weft/core/model"
)

// nodeToken answers POST /v1/join-tokens with a node: a node token for the
// node proxy of req.Node, for the instances adapter req.Adapter places
// there (a launcher that runs a node proxy itself, as the local adapter
// does for its own). With a service (and namespace) as well, it is an
// application token: for the proxy of that application on the node, and
// its instances only.
func (h *handler) nodeToken(w http.ResponseWriter, req JoinTokenRequest) {
	if req.Adapter == "" || req.Instance != "" || !validNodeName(req.Node) {
		http.Error(w, "a node token needs adapter and node (1 to 253 printable characters without spaces), and no instance; add service (and namespace) for an application token", http.StatusBadRequest)
		return
	}
	if (req.Service != "" && !model.ValidName(req.Service)) || (req.Namespace != "" && (req.Service == "" || !model.ValidName(req.Namespace))) {
		http.Error(w, "an application token needs a valid service name, and a namespace only with a service", http.StatusBadRequest)
		return
	}
	ttl := time.Duration(req.TTLSeconds) * time.Second
	if ttl <= 0 || ttl > time.Hour {
		ttl = 10 * time.Minute
	}
	key := ca.DeriveJoinKey(h.o.Authority.JoinSecret(), req.Adapter)
	var tok string
	var err error
	if req.Service != "" {
		tok, err = ca.MintApplicationToken(key, req.Adapter, req.Node, req.Namespace, req.Service, ttl)
	} else {
		tok, err = ca.MintNodeToken(key, req.Adapter, req.Node, ttl)
	}
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
