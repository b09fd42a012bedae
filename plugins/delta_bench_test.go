package plugins

import (
	"fmt"
	"testing"

	gproto "google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/plugins/proto"
)

// BenchmarkWatchEvent: one change (one port moved) to a snapshot of 10,000
// instances, from the adapter's WatchEvent to the host's, through the
// protocol's bytes: whole, as before deltas, and as a delta.
func BenchmarkWatchEvent(b *testing.B) {
	snaps := [2][]model.Instance{}
	for k := range snaps {
		ins := make([]model.Instance, 10000)
		for i := range ins {
			ins[i] = model.Instance{ID: fmt.Sprintf("svc-%04d-%d", i/10, i%10), Service: fmt.Sprintf("svc-%04d", i/10),
				Address: fmt.Sprintf("127.%d.%d.%d", 1+i/62500, i/250%250, 1+i%250), Health: model.HealthPassing,
				Ports: map[string]int{model.PortApp: 8080, model.PortMesh: 20000}}
		}
		ins[5000].Ports = map[string]int{model.PortApp: 8080, model.PortMesh: 20000 + k}
		snaps[k] = ins
	}
	roundTrip := func(b *testing.B, p *proto.WatchEvent) *proto.WatchEvent {
		data, err := gproto.Marshal(p)
		if err != nil {
			b.Fatal(err)
		}
		var out proto.WatchEvent
		if err := gproto.Unmarshal(data, &out); err != nil {
			b.Fatal(err)
		}
		return &out
	}
	b.Run("whole", func(b *testing.B) {
		i := 0
		for b.Loop() {
			ev := WatchEvent{Snapshot: model.Snapshot{Instances: snaps[i%2]}}
			_ = watchEventFromProto(roundTrip(b, watchEventToProto(ev)))
			i++
		}
	})
	b.Run("delta", func(b *testing.B) {
		var (
			enc deltaEncoder
			dec deltaDecoder
		)
		if _, err := dec.decode(roundTrip(b, enc.encode(WatchEvent{Snapshot: model.Snapshot{Instances: snaps[1]}}))); err != nil {
			b.Fatal(err)
		}
		i := 0
		for b.Loop() {
			ev := WatchEvent{Snapshot: model.Snapshot{Instances: snaps[i%2]}}
			if _, err := dec.decode(roundTrip(b, enc.encode(ev))); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
