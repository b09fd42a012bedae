package api

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"

	"github.com/weftmesh/weft/core/state"
)

// Replica is what the admin API reads of, and asks of, a controller's
// raft replica (core/state.Node implements it).
type Replica interface {
	Status() state.Status
	Peers() ([]state.Peer, error)
	RemovePeer(idOrAddr string) error
	SaveSnapshot(w io.Writer) error
	RestoreSnapshot(r io.Reader) error
}

// RaftPeers is the answer of GET /v1/operator/raft/peers.
type RaftPeers struct {
	Peers []state.Peer `json:"peers"`
}

// RemovePeerRequest is the body of POST /v1/operator/raft/remove-peer.
type RemovePeerRequest struct {
	// Peer is a server's ID or raft address.
	Peer string `json:"peer"`
}

// Snapshot is the body of GET and PUT /v1/operator/snapshot: the file
// `weft operator snapshot save` writes.
type Snapshot struct {
	Data []byte `json:"data"`
}

// maxSnapshotBody bounds a restored snapshot (base64 in JSON).
const maxSnapshotBody = 128 << 20

// routeReplica serves the operator endpoints of a replicated controller:
// GET /v1/operator/raft/peers, POST /v1/operator/raft/remove-peer, GET
// and PUT /v1/operator/snapshot. Without a replica they answer 404 with
// what to do.
func routeReplica(mux *http.ServeMux, o Options) {
	noRaft := func(w http.ResponseWriter) bool {
		if o.Replica == nil {
			http.Error(w, "this controller runs without raft (no --raft-dir): it has no peers and no replicated state to save; its state is in its DATA_DIR (back up DATA_DIR/ca)", http.StatusNotFound)
			return true
		}
		return false
	}
	mux.HandleFunc("GET /v1/operator/raft/peers", func(w http.ResponseWriter, r *http.Request) {
		if noRaft(w) {
			return
		}
		peers, err := o.Replica.Peers()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, RaftPeers{Peers: peers})
	})
	mux.HandleFunc("POST /v1/operator/raft/remove-peer", func(w http.ResponseWriter, r *http.Request) {
		if noRaft(w) {
			return
		}
		var req RemovePeerRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<12)).Decode(&req); err != nil || req.Peer == "" {
			http.Error(w, `send {"peer": "<ID or raft address>"}, as weft operator raft list-peers shows them`, http.StatusBadRequest)
			return
		}
		if err := o.Replica.RemovePeer(req.Peer); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		writeJSON(w, struct{}{})
	})
	mux.HandleFunc("GET /v1/operator/snapshot", func(w http.ResponseWriter, r *http.Request) {
		if noRaft(w) {
			return
		}
		var buf bytes.Buffer
		if err := o.Replica.SaveSnapshot(&buf); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		writeJSON(w, Snapshot{Data: buf.Bytes()})
	})
	mux.HandleFunc("PUT /v1/operator/snapshot", func(w http.ResponseWriter, r *http.Request) {
		if noRaft(w) {
			return
		}
		var req Snapshot
		if err := json.NewDecoder(io.LimitReader(r.Body, maxSnapshotBody)).Decode(&req); err != nil {
			http.Error(w, "decoding the snapshot: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := o.Replica.RestoreSnapshot(bytes.NewReader(req.Data)); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		writeJSON(w, struct{}{})
	})
}
