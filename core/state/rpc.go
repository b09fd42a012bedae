package state

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// Requests between replicas, over the raft port (transport.go): one
// request and one answer per connection, each a length-prefixed JSON
// frame.
const (
	opInfo     = "info"      // who are you, is there a cluster
	opApply    = "apply"     // commit this command (the leader only)
	opAddVoter = "add_voter" // add this replica to the cluster (forwarded to the leader)
	opPeer     = "peer"      // a message for a HandlePeer handler (peer.go)
)

type rpcRequest struct {
	Op   string `json:"op"`
	Cmd  []byte `json:"cmd,omitempty"`
	ID   string `json:"id,omitempty"`
	Addr string `json:"addr,omitempty"`
	// peer
	Kind string `json:"kind,omitempty"`
	Body []byte `json:"body,omitempty"`
}

type rpcResponse struct {
	Err       string `json:"err,omitempty"`
	NotLeader bool   `json:"not_leader,omitempty"`
	Leader    string `json:"leader,omitempty"`
	// info
	ID         string `json:"id,omitempty"`
	Addr       string `json:"addr,omitempty"`
	Configured bool   `json:"configured,omitempty"`
	// apply
	Result result `json:"result"`
	Index  uint64 `json:"index,omitempty"`
}

// rpcTimeout bounds one request between replicas.
const rpcTimeout = applyTimeout

func (n *Node) serveRPC(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(rpcTimeout + time.Second))
	var req rpcRequest
	if err := readFrame(c, &req); err != nil {
		return
	}
	// A request that came while this replica was still starting waits
	// for raft (it would find none: a crash, seen when three replicas
	// start together).
	select {
	case <-n.ready:
	case <-time.After(rpcTimeout):
		return
	}
	_ = writeFrame(c, n.answer(req))
}

func (n *Node) answer(req rpcRequest) rpcResponse {
	leader, _ := n.raft.LeaderWithID()
	isLeader := n.raft.State() == raft.Leader
	switch req.Op {
	case opInfo:
		return rpcResponse{ID: n.id, Addr: n.addr, Configured: n.configured(), Leader: string(leader)}
	case opApply:
		if !isLeader {
			return rpcResponse{NotLeader: true, Leader: string(leader)}
		}
		f := n.raft.Apply(req.Cmd, applyTimeout)
		if err := f.Error(); err != nil {
			// A transfer in progress refuses the entry before it is
			// appended: the follower that forwarded it retries with the
			// next leader, as a write on the leader itself does (apply).
			return rpcResponse{Err: err.Error(), NotLeader: errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) ||
				errors.Is(err, raft.ErrLeadershipTransferInProgress)}
		}
		res, _ := f.Response().(result)
		return rpcResponse{Result: res, Index: f.Index()}
	case opAddVoter:
		if req.ID == "" || req.Addr == "" || len(req.ID) > 128 || len(req.Addr) > 256 {
			return rpcResponse{Err: "add_voter needs an id and an address"}
		}
		if !isLeader {
			if leader == "" {
				return rpcResponse{Err: "no leader to add a replica through", NotLeader: true}
			}
			resp, err := n.call(string(leader), req)
			if err != nil {
				return rpcResponse{Err: fmt.Sprintf("forwarding to the leader %s: %v", leader, err)}
			}
			return resp
		}
		if err := n.raft.AddVoter(raft.ServerID(req.ID), raft.ServerAddress(req.Addr), 0, applyTimeout).Error(); err != nil {
			return rpcResponse{Err: "adding the replica: " + err.Error()}
		}
		n.log.Info("raft: added a replica", "id", req.ID, "raft_addr", req.Addr)
		return rpcResponse{}
	case opPeer:
		return n.answerPeer(req)
	}
	return rpcResponse{Err: fmt.Sprintf("unknown request %q", req.Op)}
}

// call sends one request to the replica at addr.
func (n *Node) call(addr string, req rpcRequest) (rpcResponse, error) {
	c, err := dialPeer(addr, rpcTimeout, n.o.TLS, connRPC)
	if err != nil {
		return rpcResponse{}, fmt.Errorf("dialling raft peer %s: %w", addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(rpcTimeout + time.Second))
	if err := writeFrame(c, req); err != nil {
		return rpcResponse{}, fmt.Errorf("sending to raft peer %s: %w", addr, err)
	}
	var resp rpcResponse
	if err := readFrame(c, &resp); err != nil {
		return rpcResponse{}, fmt.Errorf("reading raft peer %s: %w", addr, err)
	}
	if resp.Err != "" && req.Op != opApply {
		return resp, fmt.Errorf("raft peer %s: %s", addr, resp.Err)
	}
	return resp, nil
}
