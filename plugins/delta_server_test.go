package plugins

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/plugins/proto"
)

// sendRecorder is the server side of a Watch stream that keeps what is
// sent on it.
type sendRecorder struct {
	grpc.ServerStream
	ctx  context.Context
	sent []*proto.WatchEvent
}

func (s *sendRecorder) Send(ev *proto.WatchEvent) error { s.sent = append(s.sent, ev); return nil }
func (s *sendRecorder) Context() context.Context        { return s.ctx }
func (s *sendRecorder) SetHeader(metadata.MD) error     { return nil }
func (s *sendRecorder) SendHeader(metadata.MD) error    { return nil }
func (s *sendRecorder) SetTrailer(metadata.MD)          {}

// watchOnly is an Adapter whose Watch sends events and returns.
type watchOnly struct{ events []WatchEvent }

func (w watchOnly) Info(context.Context) (*InfoResponse, error) { return &InfoResponse{}, nil }
func (w watchOnly) Configure(context.Context, *ConfigureRequest) (*ConfigureResponse, error) {
	return &ConfigureResponse{}, nil
}
func (w watchOnly) Watch(ctx context.Context, _ *WatchRequest, events chan<- WatchEvent) error {
	for _, ev := range w.events {
		select {
		case events <- ev:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// TestServerSendsDeltasOnlyWhenAsked: a host built before deltas (it does
// not set accepts_deltas) gets every snapshot whole; a host that asks gets
// the first whole and the next as deltas.
func TestServerSendsDeltasOnlyWhenAsked(t *testing.T) {
	in := func(id string, port int) model.Instance {
		return model.Instance{ID: id, Service: "web", Address: "127.0.0.1", Ports: map[string]int{model.PortMesh: port}}
	}
	events := []WatchEvent{
		{Snapshot: model.Snapshot{Instances: []model.Instance{in("a", 1), in("b", 2), in("c", 3)}}},
		{Snapshot: model.Snapshot{Instances: []model.Instance{in("a", 1), in("b", 9), in("c", 3)}}},
		{Snapshot: model.Snapshot{Instances: []model.Instance{in("a", 1), in("b", 9)}}},
	}
	tests := []struct {
		name   string
		deltas bool
		want   []string // "whole" or "delta", per event
	}{
		{"a host before deltas", false, []string{"whole", "whole", "whole"}},
		{"a host that takes deltas", true, []string{"whole", "delta", "delta"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &sendRecorder{ctx: context.Background()}
			s := &GRPCServer{Impl: watchOnly{events: events}}
			if err := s.Watch(&proto.WatchRequest{AcceptsDeltas: tt.deltas}, rec); err != nil {
				t.Fatalf("Watch: %v", err)
			}
			if len(rec.sent) != len(tt.want) {
				t.Fatalf("sent %d events, want %d", len(rec.sent), len(tt.want))
			}
			var dec deltaDecoder
			for i, p := range rec.sent {
				got := "whole"
				if p.GetDelta() != nil {
					got = "delta"
				}
				if got != tt.want[i] || (p.GetDelta() != nil) == (p.GetSnapshot() != nil) {
					t.Errorf("event %d: %v, want %s", i, p, tt.want[i])
				}
				ev, err := dec.decode(p)
				if err != nil {
					t.Fatalf("event %d: %v", i, err)
				}
				if !sameInstances(ev.Snapshot.Instances, events[i].Snapshot.Instances) {
					t.Errorf("event %d: the host has %+v, want %+v", i, ev.Snapshot.Instances, events[i].Snapshot.Instances)
				}
			}
		})
	}
}
