package state

import (
	"errors"
	"fmt"
	"slices"
	"sync"
)

// Messages between replicas outside the raft log: what changes every
// second and need not be durable (the sidecars' golden-signal reports,
// their demand on global rate limits; core/relay) goes from the replica
// that received it to every other one, over the same authenticated
// connections as raft (transport.go: TLS with the controller's own
// certificate, and the state key proven), one request per message.

// MaxPeerMessage bounds one message's body; a sender splits what is
// larger. It leaves room in a frame (maxFrame) for the JSON encoding's
// base64, which makes 4 bytes of 3.
const MaxPeerMessage = maxCommandBytes / 4 * 3 / 2

// PeerHandler takes the body of a message a peer replica sent (SendPeers)
// with the kind it was registered for. An error goes back to the sender.
type PeerHandler func(body []byte) error

// HandlePeer registers h for the messages of kind; a message of a kind
// nobody registered is refused.
func (n *Node) HandlePeer(kind string, h PeerHandler) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.handlers == nil {
		n.handlers = map[string]PeerHandler{}
	}
	n.handlers[kind] = h
}

func (n *Node) answerPeer(req rpcRequest) rpcResponse {
	n.mu.Lock()
	h := n.handlers[req.Kind]
	n.mu.Unlock()
	if h == nil {
		return rpcResponse{Err: fmt.Sprintf("no handler for peer messages of kind %q", req.Kind)}
	}
	if err := h(req.Body); err != nil {
		return rpcResponse{Err: err.Error()}
	}
	return rpcResponse{}
}

// SendPeers sends body, of kind, to every other replica of the cluster's
// configuration at once, and returns when each has answered or failed
// (within rpcTimeout): the errors of those that failed, joined. A replica
// that is down misses the message; nothing retries it.
func (n *Node) SendPeers(kind string, body []byte) error {
	if len(body) > MaxPeerMessage {
		return fmt.Errorf("sending a %s message of %d bytes to the peers: over the limit of %d", kind, len(body), MaxPeerMessage)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, addr := range n.peerAddrs() {
		if addr == n.addr {
			continue
		}
		wg.Go(func() {
			if _, err := n.call(addr, rpcRequest{Op: opPeer, Kind: kind, Body: body}); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// SendPeer sends body, of kind, to the one replica at addr, which must be
// in the cluster's configuration (a replica never sends to an address
// that is not a peer's), and returns when it has answered or failed
// (within rpcTimeout).
func (n *Node) SendPeer(addr, kind string, body []byte) error {
	if len(body) > MaxPeerMessage {
		return fmt.Errorf("sending a %s message of %d bytes to %s: over the limit of %d", kind, len(body), addr, MaxPeerMessage)
	}
	if addr == n.addr || !slices.Contains(n.peerAddrs(), addr) {
		return fmt.Errorf("sending a %s message to %s: not a peer replica of this cluster", kind, addr)
	}
	_, err := n.call(addr, rpcRequest{Op: opPeer, Kind: kind, Body: body})
	return err
}

// Addr is this replica's raft address, as its peers know it.
func (n *Node) Addr() string { return n.addr }
