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

// TestMintApplicationToken holds the SDK's application tokens to core/ca:
// a node token whose claims name the service and its namespace (defaulted),
// which a node token's claims do not.
func TestMintApplicationToken(t *testing.T) {
	secret := []byte("controller secret, 32 bytes long")
	mesh := sdk.MeshContext{JoinKey: ca.DeriveJoinKey(secret, "local")}
	v := ca.NewJoinVerifier(secret)
	for _, tc := range []struct{ ns, wantNS string }{{"", "default"}, {"shop", "shop"}} {
		tok, err := sdk.MintApplicationToken(mesh, "local", "node-a", tc.ns, "api", time.Minute)
		if err != nil {
			t.Fatalf("minting: %v", err)
		}
		c, err := v.VerifyNodeAnd(tok, "api-0", nil)
		if err != nil || !c.IsApplicationToken() || c.Node != "node-a" || c.Service != "api" || c.Namespace != tc.wantNS {
			t.Errorf("application token (namespace %q): %+v, %v; want an application token for %s/api on node-a", tc.ns, c, err, tc.wantNS)
		}
	}
	node, err := sdk.MintNodeToken(mesh, "local", "node-a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := v.VerifyNodeAnd(node, "api-0", nil); err != nil || c.IsApplicationToken() {
		t.Errorf("node token: %+v, %v; want a node token that is no application token", c, err)
	}
	for _, bad := range [][2]string{{"", "api"}, {"node-a", ""}} {
		if _, err := sdk.MintApplicationToken(mesh, "local", bad[0], "", bad[1], time.Minute); err == nil {
			t.Errorf("minting an application token with node %q, service %q: no error", bad[0], bad[1])
		}
	}
}
