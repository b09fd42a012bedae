package plugins_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/weftmesh/weft/plugins"
	"github.com/weftmesh/weft/plugins/plugintest"
)

// verifier is a fake adapter that also checks credentials.
type verifier struct{ fake }

func (verifier) VerifyIdentity(_ context.Context, req *plugins.VerifyIdentityRequest) (*plugins.VerifyIdentityResponse, error) {
	if req.Credential != "good" {
		return nil, errors.New("the credential is signed by nobody we know")
	}
	return &plugins.VerifyIdentityResponse{InstanceID: req.InstanceID, Service: "api", Namespace: "default"}, nil
}

func TestVerifyIdentityThroughShims(t *testing.T) {
	ctx := context.Background()
	a := plugintest.GRPC(t, &verifier{})
	v, ok := a.(plugins.IdentityVerifier)
	if !ok {
		t.Fatal("the gRPC client shim does not implement IdentityVerifier")
	}
	got, err := v.VerifyIdentity(ctx, &plugins.VerifyIdentityRequest{InstanceID: "api-0", Credential: "good"})
	if err != nil {
		t.Fatal(err)
	}
	if *got != (plugins.VerifyIdentityResponse{InstanceID: "api-0", Service: "api", Namespace: "default"}) {
		t.Errorf("response = %+v", got)
	}
	_, err = v.VerifyIdentity(ctx, &plugins.VerifyIdentityRequest{InstanceID: "api-0", Credential: "forged"})
	if err == nil || !strings.Contains(err.Error(), "signed by nobody we know") {
		t.Errorf("forged credential: %v, want the adapter's reason", err)
	}

	// An adapter without the capability answers Unimplemented, clearly.
	plain := plugintest.GRPC(t, &fake{}).(plugins.IdentityVerifier)
	_, err = plain.VerifyIdentity(ctx, &plugins.VerifyIdentityRequest{InstanceID: "x", Credential: "good"})
	if err == nil || !strings.Contains(err.Error(), "does not verify scheduler credentials") {
		t.Errorf("adapter without the capability: %v", err)
	}
}
