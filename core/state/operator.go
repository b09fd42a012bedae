package state

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/raft"
)

// Status is what `weft status`, `weft check` and GET /v1/status say of
// the replica's place in the cluster.
type Status struct {
	ID       string `json:"id"`
	Addr     string `json:"addr"`
	State    string `json:"state"` // Leader, Follower, Candidate, Shutdown
	Leader   string `json:"leader,omitempty"`
	LeaderID string `json:"leader_id,omitempty"`
	Peers    []Peer `json:"peers"`
	// CanIssue: a leader is known, so join tokens can be spent and the
	// CA rotated; false while the replica cannot reach a quorum.
	CanIssue bool `json:"can_issue"`
	// Problem says what is wrong, and what to do, when CanIssue is false.
	Problem      string     `json:"problem,omitempty"`
	NoLeaderFor  string     `json:"no_leader_for,omitempty"`
	AppliedIndex uint64     `json:"applied_index"`
	LastIndex    uint64     `json:"last_index"`
	LastContact  *time.Time `json:"last_contact,omitempty"`
}

// Peer is one server of the cluster's configuration.
type Peer struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	Suffrage string `json:"suffrage"`
	Leader   bool   `json:"leader"`
}

// Status reports the replica's view of the cluster.
func (n *Node) Status() Status {
	addr, id := n.raft.LeaderWithID()
	st := Status{ID: n.id, Addr: n.addr, State: n.raft.State().String(), Leader: string(addr), LeaderID: string(id),
		AppliedIndex: n.raft.AppliedIndex(), LastIndex: n.raft.LastIndex(), CanIssue: addr != ""}
	st.Peers, _ = n.Peers()
	if lc := n.raft.LastContact(); !lc.IsZero() {
		st.LastContact = &lc
	}
	if !st.CanIssue {
		n.mu.Lock()
		since := n.noLeader
		n.mu.Unlock()
		// Under a tenth of a second says nothing (not "0s").
		if d := time.Since(since); !since.IsZero() && d >= 100*time.Millisecond {
			if d < time.Second {
				d = d.Round(100 * time.Millisecond)
			} else {
				d = d.Round(time.Second)
			}
			st.NoLeaderFor = d.String()
		}
		if len(st.Peers) == 0 {
			st.Problem = "this replica is not in a cluster yet: it waits for --bootstrap-expect replicas to know one another, or for a --join to succeed"
		} else {
			st.Problem = fmt.Sprintf("no raft leader: this replica reaches no quorum of its %d peers; it cannot admit sidecars that join with a one-time join token or rotate the CA (sidecars keep serving, connected ones renew, and sidecars joining with a scheduler credential or a node token are still admitted). Bring replicas back; if they are gone for good, see docs/operations-raft.md (recovering from quorum loss)", len(st.Peers))
		}
	}
	return st
}

// Peers lists the cluster's servers.
func (n *Node) Peers() ([]Peer, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("reading the raft configuration: %w", err)
	}
	leader, _ := n.raft.LeaderWithID()
	out := []Peer{}
	for _, s := range f.Configuration().Servers {
		out = append(out, Peer{ID: string(s.ID), Address: string(s.Address), Suffrage: s.Suffrage.String(), Leader: s.Address == leader})
	}
	return out, nil
}

// RemovePeer removes a server, by ID or address, from the cluster. It
// must run on the leader: a follower says which replica is.
func (n *Node) RemovePeer(idOrAddr string) error {
	peers, err := n.Peers()
	if err != nil {
		return err
	}
	var id string
	for _, p := range peers {
		if p.ID == idOrAddr || p.Address == idOrAddr {
			id = p.ID
		}
	}
	if id == "" {
		return fmt.Errorf("no raft peer %q: `weft operator raft list-peers` lists them", idOrAddr)
	}
	if n.raft.State() != raft.Leader {
		leader, _ := n.raft.LeaderWithID()
		if leader == "" {
			return n.noLeaderError(nil)
		}
		return fmt.Errorf("this replica is not the leader: run the command against the leader, whose raft address is %s", leader)
	}
	if err := n.raft.RemoveServer(raft.ServerID(id), 0, applyTimeout).Error(); err != nil {
		return fmt.Errorf("removing raft peer %s: %w", id, err)
	}
	n.log.Info("raft: removed a peer", "id", id)
	return nil
}

// A saved snapshot (`weft operator snapshot save`) is a header line,
// then the state as raft snapshots it (the CA state sealed with the
// state key: restoring needs the same key).
const snapshotMagic = "weft-state-snapshot v1"

type snapshotHeader struct {
	Magic   string    `json:"magic"`
	Index   uint64    `json:"index"`
	SavedAt time.Time `json:"saved_at"`
	Replica string    `json:"replica"`
}

// SaveSnapshot writes the replicated state to w. On the leader it first
// waits for every committed entry to be applied, so the snapshot holds
// every write acknowledged before the call.
func (n *Node) SaveSnapshot(w io.Writer) error {
	if n.raft.State() == raft.Leader {
		if err := n.raft.Barrier(applyTimeout).Error(); err != nil {
			return fmt.Errorf("saving a snapshot: %w", err)
		}
	}
	snap, err := n.fsm.Snapshot()
	if err != nil {
		return err
	}
	h, _ := json.Marshal(snapshotHeader{Magic: snapshotMagic, Index: n.raft.AppliedIndex(), SavedAt: time.Now().UTC(), Replica: n.id})
	if _, err := w.Write(append(h, '\n')); err != nil {
		return fmt.Errorf("saving a snapshot: %w", err)
	}
	if _, err := w.Write(snap.(*fsmSnapshot).b); err != nil {
		return fmt.Errorf("saving a snapshot: %w", err)
	}
	return nil
}

// RestoreSnapshot replaces the replicated state with a saved one, on
// every replica. It runs on the leader only.
func (n *Node) RestoreSnapshot(r io.Reader) error {
	if n.raft.State() != raft.Leader {
		leader, _ := n.raft.LeaderWithID()
		if leader == "" {
			return n.noLeaderError(nil)
		}
		return fmt.Errorf("this replica is not the leader: restore through the leader, whose raft address is %s", leader)
	}
	br := bufio.NewReader(io.LimitReader(r, maxSnapshotBytes+4096))
	line, err := br.ReadSlice('\n')
	if err != nil {
		return errors.New("restoring a snapshot: no header line: not a file `weft operator snapshot save` wrote")
	}
	var h snapshotHeader
	if err := json.Unmarshal(line, &h); err != nil || h.Magic != snapshotMagic {
		return errors.New("restoring a snapshot: the header is not " + snapshotMagic + ": not a file `weft operator snapshot save` wrote")
	}
	body, err := io.ReadAll(br)
	if err != nil {
		return fmt.Errorf("restoring a snapshot: %w", err)
	}
	// Check it whole (and that its CA opens with our key) before raft
	// takes it: a bad snapshot never replaces a good state.
	d, err := readSnapshotData(bytesReader(body))
	if err != nil {
		return err
	}
	if d.CASealed != nil {
		if _, err := n.fsm.openCA(d.CASealed); err != nil {
			return fmt.Errorf("restoring a snapshot: %w", err)
		}
	}
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Index: h.Index, Term: 1, Size: int64(len(body))}
	if err := n.raft.Restore(meta, bytesReader(body), 2*applyTimeout); err != nil {
		return fmt.Errorf("restoring a snapshot: %w", err)
	}
	n.log.Info("raft: state restored from a snapshot", "saved_at", h.SavedAt, "saved_by", h.Replica, "index", h.Index)
	return nil
}
