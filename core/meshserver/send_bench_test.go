package meshserver

import (
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/weftmesh/weft/core/meshapi"
)

// BenchmarkStreamEncode is what each stream's Send costs the controller
// in gRPC's proto codec (proto.Size, then Marshal) for one configuration
// of 100 endpoints: "marshal" is a ConfigUpdate holding the configuration
// (each stream encoded it again before issue 12), "pre-encoded" is the
// message send builds around the bytes encoded once (the codec copies
// them).
func BenchmarkStreamEncode(b *testing.B) {
	cfg := &meshapi.ProxyConfig{InstanceId: "svc-0-0", Service: "svc-0", Namespace: "default",
		Inbound: &meshapi.Inbound{BindAddress: "127.0.0.1", Port: 20000}}
	for u := range 10 {
		up := &meshapi.Upstream{Name: fmt.Sprint("up-", u), Service: fmt.Sprint("up-", u), LocalPort: uint32(30001 + u)}
		for e := range 10 {
			up.Endpoints = append(up.Endpoints, &meshapi.Endpoint{InstanceId: fmt.Sprintf("up-%d-%d", u, e), Address: "127.0.0.1", Port: 20000})
		}
		cfg.Upstreams = append(cfg.Upstreams, up)
	}
	_, enc := digest(cfg, nil)
	msg := stamp(frame(enc), 1)
	codec := func(m proto.Message) {
		n := proto.Size(m)
		if _, err := (proto.MarshalOptions{UseCachedSize: true}).MarshalAppend(make([]byte, 0, n), m); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			codec(&meshapi.ConfigUpdate{Version: 1, Config: cfg})
		}
	})
	b.Run("pre-encoded", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			u := &meshapi.ConfigUpdate{}
			u.ProtoReflect().SetUnknown(protoreflect.RawFields(msg))
			codec(u)
		}
	})
}
