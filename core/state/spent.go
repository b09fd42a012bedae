package state

import (
	"fmt"
	"time"

	"github.com/weftmesh/weft/core/ca"
)

// SpentTokens is the ca.SpentStore of a replicated controller: a join
// token spent through any replica is spent on every one, and stays spent
// across restarts of all of them (it is in the raft log and snapshots).
type SpentTokens struct {
	n   *Node
	now func() time.Time
}

// SpentTokens returns the replica's spent-token store.
func (n *Node) SpentTokens() *SpentTokens { return &SpentTokens{n: n, now: time.Now} }

var _ ca.SpentStore = (*SpentTokens)(nil)

// Spend commits the token as spent through the leader. Of concurrent
// spends of one token, through any replicas, exactly one reports true.
func (s *SpentTokens) Spend(id string, exp time.Time) (bool, error) {
	if id == "" || len(id) > 64 {
		return false, fmt.Errorf("%w: malformed token ID", ca.ErrSpend)
	}
	cmd, err := encodeCommand(cmdSpend, spend{ID: id, Exp: exp.Unix(), Now: s.now().Unix(), Req: requestID()})
	if err != nil {
		return false, fmt.Errorf("%w: %v", ca.ErrSpend, err)
	}
	res, _, err := s.n.apply(cmd)
	if err != nil {
		return false, fmt.Errorf("%w: %w", ca.ErrSpend, err)
	}
	if res.Err != "" {
		return false, fmt.Errorf("%w: %s", ca.ErrSpend, res.Err)
	}
	return res.OK, nil
}

// Spent reports whether this replica has seen the token spent; Spend, at
// the leader, decides.
func (s *SpentTokens) Spent(id string) bool { return s.n.fsm.isSpent(id, s.now().Unix()) }
