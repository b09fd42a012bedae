package meshserver

import (
	"context"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/meshapi"
)

// TestVersionsCompareAcrossReplicas: a sidecar that held version applied
// from another replica subscribes to this server, whose configurations
// were compiled from the policy at index serverIndex. It never gets an
// older policy's configuration as newer, and it gets the first one this
// server compiles from its policy or a newer one, with a version above
// the one it holds.
func TestVersionsCompareAcrossReplicas(t *testing.T) {
	const theirCount = 900 // the other replica stamped more than this one
	for _, tc := range []struct {
		name        string
		serverIndex uint64 // this replica's policy when the sidecar comes
		sidecar     uint64 // the policy index of the version it applied
		// heldBack: this replica's configuration is from an older policy
		// than the sidecar's; it is not sent, and the first one sent is
		// compiled from the sidecar's policy.
		heldBack bool
	}{
		{name: "same policy, the other replica counted further", serverIndex: 5, sidecar: 5},
		{name: "this replica has a newer policy", serverIndex: 7, sidecar: 5},
		{name: "this replica has not applied the sidecar's policy yet", serverIndex: 5, sidecar: 7, heldBack: true},
		{name: "no replicated policy (index 0)", serverIndex: 0, sidecar: 0},
		{name: "a replicated policy after the files'", serverIndex: 1, sidecar: 0},
		{name: "this replica still serves the files' policy", serverIndex: 0, sidecar: 3, heldBack: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t)
			h.addInstance("api-0", "api")
			cert, err := join(t, h.dial(t, nil), "api-0", h.token(t, "api-0", "api"))
			if err != nil {
				t.Fatal(err)
			}
			h.srv.SetPolicyIndex(tc.serverIndex)
			h.srv.Update(map[string]*meshapi.ProxyConfig{"api-0": cfg("api-0", "api", 1)})
			_, before, _ := h.srv.Config("api-0")
			if got := policyIndexOf(before); got != tc.serverIndex {
				t.Fatalf("version %d begins with policy index %d, want %d", before, got, tc.serverIndex)
			}
			applied := uint64(theirCount)
			if tc.sidecar != 0 {
				applied = replicated | tc.sidecar<<32 | theirCount
			}

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			st, err := h.dial(t, cert).StreamConfig(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Send(&meshapi.ConfigRequest{InstanceId: "api-0", AppliedVersion: applied}); err != nil {
				t.Fatal(err)
			}
			// The subscription is taken (and the held version raised or
			// not) under the lock before the stream is in status.
			deadline := time.Now().Add(5 * time.Second)
			for len(h.srv.Status()) == 0 {
				if time.Now().After(deadline) {
					t.Fatal("the stream is not in status within 5s")
				}
				time.Sleep(2 * time.Millisecond) // Status has no change signal
			}
			_, held, _ := h.srv.Config("api-0")
			if tc.heldBack {
				if held >= applied {
					t.Fatalf("this replica's configuration of policy %d got version %d, above the sidecar's %d of policy %d: an older policy would be taken as newer",
						tc.serverIndex, held, applied, tc.sidecar)
				}
				// This replica applies the sidecar's policy: its
				// configuration comes, above what the sidecar holds.
				h.srv.SetPolicyIndex(tc.sidecar)
				h.srv.Update(map[string]*meshapi.ProxyConfig{"api-0": cfg("api-0", "api", 2)})
			}
			first, err := st.Recv()
			if err != nil {
				t.Fatal(err)
			}
			if first.Version <= applied {
				t.Fatalf("sent version %d, not above the sidecar's %d: it would refuse it and be stuck", first.Version, applied)
			}
			wantPort := uint32(1)
			if tc.heldBack {
				wantPort = 2
			}
			if got := first.Config.GetInbound().GetPort(); got != wantPort {
				t.Fatalf("first configuration sent has inbound port %d, want %d (compiled from policy %d)", got, wantPort, policyIndexOf(first.Version))
			}
			if got, want := policyIndexOf(first.Version), max(tc.serverIndex, tc.sidecar); got != want {
				t.Fatalf("version %d begins with policy index %d, want %d", first.Version, got, want)
			}
		})
	}
}
