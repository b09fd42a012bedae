package meshserver

import (
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/core/meshapi"
)

// TestApply: a delta replaces only the configurations it names, drops the
// removed ones and keeps the rest; every stream of a changed instance
// gets the new version, and no other stream gets anything.
func TestApply(t *testing.T) {
	h := start(t)
	h.addInstance("api-0", "api")
	h.addInstance("api-1", "api")
	cert, err := join(t, h.dial(t, nil), "api-0", h.token(t, "api-0", "api"))
	if err != nil {
		t.Fatal(err)
	}
	c := h.dial(t, cert)
	h.srv.Update(map[string]*meshapi.ProxyConfig{"api-0": cfg("api-0", "api", 1), "api-1": cfg("api-1", "api", 1), "store-0": cfg("store-0", "store", 1)})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	subscribe := func(id string) meshapi.Mesh_StreamConfigClient {
		st, err := c.StreamConfig(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Send(&meshapi.ConfigRequest{InstanceId: id}); err != nil {
			t.Fatal(err)
		}
		if u, err := st.Recv(); err != nil || u.Config.InstanceId != id {
			t.Fatalf("first update of %s: %v, %v", id, u, err)
		}
		return st
	}
	a, b, other := subscribe("api-0"), subscribe("api-0"), subscribe("api-1")

	if n := h.srv.Apply(map[string]*meshapi.ProxyConfig{"api-0": cfg("api-0", "api", 2)}, nil); n != 1 {
		t.Fatalf("Apply changed %d configs, want 1", n)
	}
	_, v2, _ := h.srv.Config("api-0")
	for i, st := range []meshapi.Mesh_StreamConfigClient{a, b} {
		u, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if u.Version != v2 || u.Config.Inbound.Port != 2 || !proto.Equal(u.Config.Trust, trustOf(h.ca)) {
			t.Errorf("stream %d of api-0 got version %d port %d trust %v; want version %d, port 2 and the CA's bundle", i, u.Version, u.Config.Inbound.Port, u.Config.Trust, v2)
		}
	}
	if n := h.srv.Apply(map[string]*meshapi.ProxyConfig{"api-0": cfg("api-0", "api", 2)}, nil); n != 0 {
		t.Errorf("an unchanged delta changed %d configs, want 0", n)
	}

	// api-1 was not in the delta: its stream's next update is the one
	// that changes it, not a copy of its first.
	h.srv.Apply(map[string]*meshapi.ProxyConfig{"api-1": cfg("api-1", "api", 3)}, []string{"store-0"})
	_, v3, _ := h.srv.Config("api-1")
	if u, err := other.Recv(); err != nil || u.Version != v3 || u.Config.Inbound.Port != 3 {
		t.Errorf("api-1's next update = %v, %v; want version %d with port 3", u, err, v3)
	}
	if _, _, ok := h.srv.Config("store-0"); ok {
		t.Error("store-0 was removed but still has a configuration")
	}
	if got, _, ok := h.srv.Config("api-0"); !ok || got.Inbound.Port != 2 {
		t.Errorf("api-0, in neither list, = %v, %v; want it kept", got, ok)
	}
	// A configuration both changed and removed is kept.
	h.srv.Apply(map[string]*meshapi.ProxyConfig{"api-1": cfg("api-1", "api", 4)}, []string{"api-1"})
	if got, _, ok := h.srv.Config("api-1"); !ok || got.Inbound.Port != 4 {
		t.Errorf("api-1, changed and removed, = %v, %v; want the new one", got, ok)
	}
}

// TestEncodedOnce: what the server holds for an instance is the encoded
// ConfigUpdate its streams send: it decodes to the version and the
// configuration held, and its config field is the encoding the digest
// was made from.
func TestEncodedOnce(t *testing.T) {
	h := start(t)
	h.srv.Update(map[string]*meshapi.ProxyConfig{"api-0": cfg("api-0", "api", 1)})
	h.srv.Apply(map[string]*meshapi.ProxyConfig{"api-0": cfg("api-0", "api", 2)}, nil)
	h.srv.RootsChanged() // no change to the roots: nothing happens
	if _, err := h.srv.RotateRoot(); err != nil {
		t.Fatal(err)
	}
	v, ok := h.srv.current("api-0")
	if !ok {
		t.Fatal("no configuration for api-0")
	}
	var u meshapi.ConfigUpdate
	if err := proto.Unmarshal(v.msg, &u); err != nil {
		t.Fatalf("decoding the held message: %v", err)
	}
	if u.Version != v.version || !proto.Equal(u.Config, v.cfg) || u.Config.Inbound.Port != 2 || u.Config.Trust.GetActiveRootId() != h.ca.ActiveRootID() {
		t.Errorf("held message = version %d %v; want version %d, %v with the rotated root", u.Version, u.Config, v.version, v.cfg)
	}
	enc, err := proto.MarshalOptions{Deterministic: true}.Marshal(v.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(enc) != v.sum {
		t.Error("the digest is not of the configuration's encoding")
	}
	if got := v.msg[len(v.msg)-len(enc):]; string(got) != string(enc) {
		t.Error("the held message does not end with the configuration's encoding")
	}
}
