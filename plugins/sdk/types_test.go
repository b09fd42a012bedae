package sdk_test

import (
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/ca"
	"github.com/weftmesh/weft/plugins/sdk"
)

func TestMintJoinToken(t *testing.T) {
	secret := []byte("controller secret, 32 bytes long")
	in := sdk.Instance{ID: "web-1", Service: "web"}
	tests := []struct {
		name    string
		key     []byte
		wantErr string
	}{
		{name: "key from the controller", key: ca.DeriveJoinKey(secret, "local")},
		{name: "no key", key: nil, wantErr: "announce CapJoinTokens"},
		{name: "key of another adapter", key: ca.DeriveJoinKey(secret, "nomad"), wantErr: "does not verify"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := sdk.MintJoinToken(sdk.MeshContext{JoinKey: tt.key}, "local", in, time.Minute)
			if err == nil {
				var c ca.JoinClaims
				c, err = ca.NewJoinVerifier(secret).Verify(tok)
				if err == nil && (c.Adapter != "local" || c.Instance != "web-1" || c.Service != "web" || c.Namespace != "default") {
					t.Errorf("claims = %+v, want local/web-1/web/default", c)
				}
			}
			if tt.wantErr == "" && err != nil {
				t.Fatalf("minting and verifying: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
