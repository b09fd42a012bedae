package sdk_test

import (
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/ca"
	"github.com/weftmesh/weft/plugins/sdk"
)

// TestMintNodeToken holds the SDK's node tokens to core/ca's verifier: each
// instance once, a join token never taken for a node token.
func TestMintNodeToken(t *testing.T) {
	secret := []byte("controller secret, 32 bytes long")
	mesh := sdk.MeshContext{JoinKey: ca.DeriveJoinKey(secret, "local")}
	v := ca.NewJoinVerifier(secret)
	tok, err := sdk.MintNodeToken(mesh, "local", "node-a", time.Minute)
	if err != nil {
		t.Fatalf("minting: %v", err)
	}
	var seen []string
	accept := func(c ca.JoinClaims) error {
		seen = append(seen, c.Node)
		return nil
	}
	for _, id := range []string{"web-0", "api-0"} {
		if _, err := v.VerifyNodeAnd(tok, id, accept); err != nil {
			t.Fatalf("node token for %s: %v", id, err)
		}
	}
	if strings.Join(seen, ",") != "node-a,node-a" {
		t.Errorf("claims' nodes = %v, want node-a twice", seen)
	}
	if _, err := v.VerifyNodeAnd(tok, "web-0", accept); err == nil || !strings.Contains(err.Error(), "already used for this instance") {
		t.Errorf("second admission of web-0: error = %v, want already used", err)
	}
	join, err := sdk.MintJoinToken(mesh, "local", sdk.Instance{ID: "web-1", Service: "web"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.VerifyNodeAnd(join, "web-1", accept); err == nil || !strings.Contains(err.Error(), "not a node token") {
		t.Errorf("join token as node token: error = %v, want not a node token", err)
	}
	if _, err := sdk.MintNodeToken(mesh, "local", "", time.Minute); err == nil {
		t.Error("minting a node token without a node: no error")
	}
}
