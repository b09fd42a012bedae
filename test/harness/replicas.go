package harness

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// Replicas are the controller replicas of one raft cluster that a test
// kills and restarts (SIGKILL, then the same options again), and which of
// them run: what the HA proofs on the local adapter (test/e2e) and on
// Nomad (test/nomad) share. The test starts the controllers itself, in
// its own layout, and hands them over.
type Replicas struct {
	T    testing.TB
	Ctls []*Controller
	// Alive are the replicas running, in order.
	Alive []int
}

// NewReplicas are ctls, all running.
func NewReplicas(t testing.TB, ctls []*Controller) Replicas {
	r := Replicas{T: t, Ctls: ctls}
	for i := range ctls {
		r.Alive = append(r.Alive, i)
	}
	return r
}

// Kill SIGKILLs replica i and fails the test if it does not die.
func (r *Replicas) Kill(i int) {
	r.T.Helper()
	r.Ctls[i].Kill(r.T)
	r.Alive = slices.DeleteFunc(r.Alive, func(j int) bool { return j == i })
}

// Restart starts replica i again with the options it first ran with (the
// same data and raft directories); it returns at once.
func (r *Replicas) Restart(i int) {
	r.T.Helper()
	r.Ctls[i] = r.Ctls[i].Restart()
	if !slices.Contains(r.Alive, i) {
		r.Alive = append(r.Alive, i)
		slices.Sort(r.Alive)
	}
}

// EachAlive reads the status of every live replica, in order, and hands
// it to f; it returns the first error, naming the replica.
func (r *Replicas) EachAlive(f func(i int, s *Status) error) error {
	for _, i := range r.Alive {
		s, err := r.Ctls[i].Status()
		if err != nil {
			return fmt.Errorf("replica %d: %w", i, err)
		}
		if err := f(i, s); err != nil {
			return fmt.Errorf("replica %d: %w", i, err)
		}
	}
	return nil
}

// Sidecars waits, within bound, until each of want's sidecars (instance
// IDs) has a stream on a live replica with its configuration ACKed there,
// and returns which replica each one is on and how long the wait took.
func (r *Replicas) Sidecars(what string, want []string, bound time.Duration) (map[string]int, time.Duration) {
	r.T.Helper()
	var on map[string]int
	took := Eventually(r.T, what, bound, func() error {
		on = map[string]int{}
		err := r.EachAlive(func(i int, s *Status) error {
			for _, sc := range s.Sidecars {
				if sc.Version != 0 && sc.AckedVersion == sc.Version {
					on[sc.Instance] = i
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, id := range want {
			if _, ok := on[id]; !ok {
				return fmt.Errorf("sidecar %s is on no live replica with its config ACKed; ACKed: %v", id, on)
			}
		}
		return nil
	})
	return on, took
}

// Leader waits (30s at most) until every live replica can issue and names
// the same live replica as its leader, and returns it. A replica that has
// not noticed a kill yet still names the dead one, and is waited out.
func (r *Replicas) Leader() int {
	r.T.Helper()
	leader := -1
	Eventually(r.T, "every live replica to name the same live leader", 30*time.Second, func() error {
		leader = -1
		addrs := map[string]int{} // each live replica's own raft address
		var named []string
		err := r.EachAlive(func(i int, s *Status) error {
			if s.Raft == nil || !s.Raft.CanIssue {
				return fmt.Errorf("cannot issue: %+v", s.Raft)
			}
			addrs[s.Raft.Addr] = i
			named = append(named, s.Raft.Leader)
			return nil
		})
		if err != nil {
			return err
		}
		for k, addr := range named {
			i, ok := addrs[addr]
			if !ok {
				return fmt.Errorf("replica %d names %q, no live replica", r.Alive[k], addr)
			}
			if leader >= 0 && i != leader {
				return fmt.Errorf("replicas name two leaders: %d and %d", leader, i)
			}
			leader = i
		}
		return nil
	})
	return leader
}

// AllAcked says which sidecar connected to the controller has not ACKed
// the configuration it holds for it now, nil when none.
func (s *Status) AllAcked() error {
	for _, sc := range s.Sidecars {
		if sc.AckedVersion != sc.Version {
			return fmt.Errorf("sidecar %s ACKed version %d of %d", sc.Instance, sc.AckedVersion, sc.Version)
		}
	}
	return nil
}
